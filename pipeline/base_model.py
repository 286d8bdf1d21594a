"""The embedded default base model: a tiny llama with a locally trained SentencePiece tokenizer.

Nothing is downloaded: the tokenizer is trained on the user's own text (the sample workspace
by default) and the weights are seeded random numbers. Real users name a Hugging Face model
id or a local directory instead; this one exists so every stage runs on a CPU in minutes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import sqlite3
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipeline.artifacts import sha256_file
from pipeline.config import CHATML_TEMPLATE, IM_END, IM_START, BaseModelConfig
from pipeline.paths import atomic_dir, cache_root
from pipeline.ratings_values import text as stored_text

SPECIAL = ("<unk>", "<s>", "</s>")  # ids 0, 1, 2 as in llama-2's tokenizer
TEXT_KEYS = ("content", "text", "thinking", "prompt", "description", "summary", "stdout")
# Always seen by the tokenizer, so the roles and ChatML scaffolding get their own pieces.
SEED_TEXT = (
    "system\nuser\nassistant\ntool\nYou are a helpful coding assistant.",
    "The quick brown fox jumps over the lazy dog. 0123456789",
)
_SQLITE_MAGIC = b"SQLite format 3\x00"
# Called with each file left out of the corpus and why; the default logs a warning.
OnSkip = Callable[[Path, str], None]


@dataclass(frozen=True)
class BaseModelInfo:
    path: Path
    parameters: int
    vocab_size: int
    corpus_lines: int
    corpus_sha256: str
    weights_sha256: str


def _strings(value: object) -> Iterator[str]:
    """Text fields anywhere in a JSON record (message content, tool input, results), in order."""
    stack = [value]  # a loop, not recursion: json.loads accepts nesting deeper than Python's stack
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item  # only text is pushed: a text key's value, or a string in a list
        elif isinstance(item, dict):
            stack.extend(
                inner
                for key, inner in reversed(item.items())
                if (isinstance(inner, str) and key in TEXT_KEYS) or isinstance(inner, dict | list)
            )
        elif isinstance(item, list):
            stack.extend(reversed(item))


def _log_skip(path: Path, reason: str) -> None:
    logging.getLogger(__name__).warning("tokenizer corpus: skipped %s: %s", path, reason)


def workspace_corpus(*roots: Path, on_skip: OnSkip = _log_skip) -> Iterator[str]:
    """Lines of text from workspaces: session logs, skill docs and rated conversations.

    A file that cannot be read as what its name says is left out and passed to `on_skip`.
    """
    for root in roots:
        yield from _root_corpus(root, on_skip)


def _root_corpus(root: Path, on_skip: OnSkip) -> Iterator[str]:
    if root.is_file():
        yield from _database_corpus(root, on_skip)
        return
    for path in sorted(root.rglob("*.jsonl")):
        yield from _jsonl_corpus(path, on_skip)
    for path in sorted(root.rglob("*.md")):
        if _regular(path, on_skip):
            try:
                yield from path.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError as exc:
                on_skip(path, f"cannot read it: {exc.strerror or exc}")
    for path in sorted([*root.rglob("*.sqlite"), *root.rglob("*.db")]):
        yield from _database_corpus(path, on_skip)


def _regular(path: Path, on_skip: OnSkip) -> bool:
    """Whether `path` (or what its link points at) is a regular file; a FIFO would hang a read."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:  # a dangling or looping link, a folder we may not enter
        on_skip(path, f"cannot see it: {exc.strerror or exc}")
        return False
    if not stat.S_ISREG(mode):
        on_skip(path, "not a regular file")
        return False
    return True


def _jsonl_corpus(path: Path, on_skip: OnSkip) -> Iterator[str]:
    if not _regular(path, on_skip):
        return
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                except (ValueError, RecursionError):
                    continue  # damaged lines are the session reader's business, not ours
                for found in _strings(record):
                    yield from found.splitlines()
    except OSError as exc:
        on_skip(path, f"cannot read it: {exc.strerror or exc}")


def _database_corpus(path: Path, on_skip: OnSkip = _log_skip) -> Iterator[str]:
    """Message text of a ratings database (a `messages` table with `content`), if it has one."""
    if not _regular(path, on_skip):
        return
    try:
        with path.open("rb") as fh:
            head = fh.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        on_skip(path, f"cannot read it: {exc.strerror or exc}")
        return
    if head != _SQLITE_MAGIC:
        on_skip(path, "not a SQLite database (no SQLite header)")
        return
    undecodable = 0
    try:
        # Read-only: never creates, changes or journals the user's database.
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT content FROM messages ORDER BY rowid")
            while batch := rows.fetchmany(1000):
                for (content,) in batch:
                    found = stored_text(content)
                    undecodable += found is None and content is not None
                    yield from (found or "").splitlines()
    except sqlite3.Error as exc:
        on_skip(path, f"cannot read its messages: {exc}")
    if undecodable:
        on_skip(path, f"{undecodable} message(s) whose BLOB content is not UTF-8 text left out")


def train_tokenizer(lines: Iterable[str], vocab_size: int) -> bytes:
    """A byte-fallback BPE SentencePiece model with the ChatML markers as whole pieces."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(lines)),
        model_writer=buf,
        model_type="bpe",
        vocab_size=vocab_size,
        hard_vocab_limit=False,  # a small corpus gives fewer pieces instead of an error
        user_defined_symbols=[IM_START, IM_END],
        byte_fallback=True,  # any byte stays encodable: no <unk> in code or emoji
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        character_coverage=1.0,
        split_digits=True,
        add_dummy_prefix=False,  # ChatML text starts with a marker, not a word
        remove_extra_whitespaces=False,  # indentation matters in code
        normalization_rule_name="identity",
        input_sentence_size=0,
        shuffle_input_sentence=False,  # with one thread, training is deterministic
        num_threads=1,
        minloglevel=2,
    )
    return buf.getvalue()


def _weights(cfg: BaseModelConfig, vocab: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(cfg.seed)
    h, inter = cfg.hidden_size, cfg.intermediate_size
    kv = cfg.num_key_value_heads * (h // cfg.num_attention_heads)

    def dense(rows: int, cols: int, std: float = cfg.init_std) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * std).astype(np.float32)

    w = {"model.embed_tokens.weight": dense(vocab, h, cfg.embed_std)}
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        w[p + "self_attn.q_proj.weight"] = dense(h, h)
        w[p + "self_attn.k_proj.weight"] = dense(kv, h)
        w[p + "self_attn.v_proj.weight"] = dense(kv, h)
        w[p + "self_attn.o_proj.weight"] = dense(h, h)
        w[p + "mlp.gate_proj.weight"] = dense(inter, h)
        w[p + "mlp.up_proj.weight"] = dense(inter, h)
        w[p + "mlp.down_proj.weight"] = dense(h, inter)
        w[p + "input_layernorm.weight"] = np.ones(h, np.float32)
        w[p + "post_attention_layernorm.weight"] = np.ones(h, np.float32)
    w["model.norm.weight"] = np.ones(h, np.float32)
    return w


def _model_config(cfg: BaseModelConfig, vocab: int, im_end: int) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": cfg.hidden_size // cfg.num_attention_heads,
        "max_position_embeddings": cfg.max_position_embeddings,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": True,
        "bos_token_id": 1,
        "eos_token_id": im_end,
        "torch_dtype": "float32",
    }


def _tokenizer_config(pieces: list[str]) -> dict:
    special = [*SPECIAL, IM_START, IM_END]
    decoder = {
        str(pieces.index(tok)): {
            "content": tok,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for tok in special
    }
    return {
        "tokenizer_class": "LlamaTokenizer",
        "bos_token": "<s>",
        "eos_token": IM_END,  # a chat turn ends the generation
        "unk_token": "<unk>",
        "pad_token": IM_END,
        "add_bos_token": False,
        "add_eos_token": False,
        "add_prefix_space": False,
        "legacy": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 2048,
        "chat_template": CHATML_TEMPLATE,
        "added_tokens_decoder": decoder,
    }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _prepare_corpus(corpus: Iterable[str], cfg: BaseModelConfig) -> list[str]:
    lines = [ln for ln in (s.strip("\r") for s in corpus) if ln.strip()]
    return [*SEED_TEXT, *lines[: cfg.max_corpus_lines]]


def base_model_version(corpus: Iterable[str], cfg: BaseModelConfig) -> str:
    """Same corpus and config, same version: the build is skipped when it already exists."""
    lines = _prepare_corpus(corpus, cfg)
    key = json.dumps({"corpus": _sha256("\n".join(lines).encode()), "config": asdict(cfg)})
    return "tiny-" + _sha256(key.encode())[:12]


def read_base_model_info(path: Path) -> BaseModelInfo:
    """The build record of a tiny model written by `build_base_model`."""
    build = json.loads((path / "nightshift_base.json").read_text())
    return BaseModelInfo(
        path,
        build["parameters"],
        json.loads((path / "config.json").read_text())["vocab_size"],
        build["corpus_lines"],
        build["corpus_sha256"],
        sha256_file(path / "model.safetensors"),
    )


def build_base_model(
    out: Path, corpus: Iterable[str], cfg: BaseModelConfig = BaseModelConfig()
) -> BaseModelInfo:
    """Write an HF-format llama directory to `out` (replaced atomically); same input, same bytes.

    A build is kept in the cache under its version, so the same corpus and config are
    pretrained once per machine.
    """
    lines = _prepare_corpus(corpus, cfg)
    cached = cache_root() / "base_models" / base_model_version(lines, cfg)
    if not (cached / "nightshift_base.json").is_file():
        with atomic_dir(cached) as tmp:
            _build(tmp, lines, cfg)
    with atomic_dir(out) as tmp:
        shutil.copytree(cached, tmp, dirs_exist_ok=True)
    return read_base_model_info(out)


def _build(out: Path, lines: list[str], cfg: BaseModelConfig) -> None:
    import sentencepiece as spm
    from safetensors.numpy import save_file

    from pipeline.pretrain import pretrain

    if cfg.hidden_size % cfg.num_attention_heads:
        raise ValueError("hidden_size must be a multiple of num_attention_heads")
    corpus_sha = _sha256("\n".join(lines).encode())
    spm_bytes = train_tokenizer(lines, cfg.vocab_size)
    sp = spm.SentencePieceProcessor(model_proto=spm_bytes)
    pieces = [sp.id_to_piece(i) for i in range(sp.vocab_size())]
    weights = _weights(cfg, len(pieces))
    (out / "tokenizer.model").write_bytes(spm_bytes)
    config = _model_config(cfg, len(pieces), pieces.index(IM_END))
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    gen = {"bos_token_id": 1, "eos_token_id": [pieces.index(IM_END), 2]}
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
    (out / "tokenizer_config.json").write_text(
        json.dumps(_tokenizer_config(pieces), indent=2) + "\n"
    )
    _write_fast_tokenizer(out)
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    losses = pretrain(out, lines, cfg.pretrain_steps, cfg.seed) if cfg.pretrain_steps else []
    params = int(sum(v.size for v in weights.values()))
    build = {"builder": "nightshift tiny llama", "config": asdict(cfg), "parameters": params}
    build |= {"corpus_lines": len(lines), "corpus_sha256": corpus_sha}
    build |= {"pretrain_loss_first": losses[:1], "pretrain_loss_last": losses[-1:]}
    (out / "nightshift_base.json").write_text(json.dumps(build, indent=2) + "\n")


def _write_fast_tokenizer(model_dir: Path) -> None:
    """tokenizer.json from the SentencePiece model, so loaders skip the slow conversion."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    tok.backend_tokenizer.save(str(model_dir / "tokenizer.json"))


def resolve_model(name: str) -> Path:
    """A local HF-format directory for a path or a Hugging Face id (downloaded by the hub cache)."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} has no config.json: not an HF-format model directory")
        return path.resolve()
    from huggingface_hub import snapshot_download

    return Path(
        snapshot_download(
            name, allow_patterns=["*.json", "*.safetensors", "*.model", "*.jinja", "*.txt"]
        )
    )


def write_external_pointer(out_dir: Path, name: str, resolved: Path) -> None:
    """A version directory that names a model kept elsewhere (a user's own or the hub cache)."""
    (out_dir / "source.json").write_text(json.dumps({"model": name, "path": str(resolved)}) + "\n")


def model_dir_of(version_dir: Path) -> Path:
    """The HF-format directory behind a base_model version: itself, or what it points at."""
    pointer = version_dir / "source.json"
    if pointer.is_file():
        return Path(json.loads(pointer.read_text())["path"])
    return version_dir


def token_counter(model_dir: Path) -> Callable[[list[str]], list[int]]:
    """Token counts in the model's own tokenizer, batched (the fast tokenizer runs in Rust)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    tok.model_max_length = 10**9  # counting lengths, not feeding the model: no overflow warning

    def count(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]

    return count
