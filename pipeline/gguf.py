"""GGUF files: llama.cpp's converter and quantizer, and loading through llama-cpp-python."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.toolchain import Toolchain, run_tool


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop" when the model ended on EOS, "length" when it ran out
    tokens: int


def convert_to_gguf(
    toolchain: Toolchain, model_dir: Path, out_file: Path, outtype: str = "f16"
) -> Path:
    """llama.cpp's own converter (mlx-lm's GGUF export writes files llama.cpp rejects)."""
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(f".{out_file.name}.tmp")
    cmd = [sys.executable, toolchain.convert(), model_dir, "--outfile", tmp, "--outtype", outtype]
    run_tool(cmd)
    tmp.replace(out_file)
    return out_file


def quantize(
    toolchain: Toolchain,
    src: Path,
    out_file: Path,
    qtype: str,
    threads: int = 0,
    extra: list[str] | None = None,
) -> Path:
    """`llama-quantize [EXTRA] SRC OUT TYPE`, written under a temporary name and renamed."""
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(f".{out_file.name}.tmp")
    cmd: list[str | Path] = [toolchain.bin("llama-quantize"), *(extra or []), src, tmp, qtype]
    if threads:
        cmd.append(str(threads))
    run_tool(cmd)
    tmp.replace(out_file)
    return out_file


# llama.cpp's repacked weight layouts (AMX on recent Xeons, CPU_REPACK) assume rows of at least
# 256; the tiny model's 64-wide rows crash them (SIGSEGV), so small models load without them.
REPACK_MIN_WIDTH = 256
_PARAMS_LOCK = threading.Lock()


def embedding_width(path: Path) -> int | None:
    """`<arch>.embedding_length` from the GGUF header, read without loading any weights."""
    import llama_cpp
    from llama_cpp._internals import LlamaModel

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = LlamaModel(path_model=str(path), params=params, verbose=False)
    try:
        meta = model.metadata()
    finally:
        model.close()
    width = meta.get(f"{meta.get('general.architecture')}.embedding_length")
    return int(width) if width is not None else None


def repack_safe(path: Path) -> bool:
    width = embedding_width(path)
    return width is None or width >= REPACK_MIN_WIDTH


def open_llama(path: Path, **kwargs):
    """`llama_cpp.Llama` on the CPU, quiet, without repacked weights where they would crash.

    Llama() exposes no switch for them, so its default model parameters are wrapped for the
    duration of the constructor (under a lock, so two loads never interleave the swap)."""
    import llama_cpp.llama_cpp as C
    from llama_cpp import Llama

    kwargs = {"n_gpu_layers": 0, "seed": 0, "verbose": False, **kwargs}
    if repack_safe(path):
        return Llama(model_path=str(path), **kwargs)
    original = C.llama_model_default_params

    def plain_buffers():
        params = original()
        params.use_extra_bufts = False
        return params

    with _PARAMS_LOCK:
        C.llama_model_default_params = plain_buffers
        try:
            return Llama(model_path=str(path), **kwargs)
        finally:
            C.llama_model_default_params = original


def load_llama(path: Path, n_ctx: int = 512):
    """A llama-cpp-python model on the CPU, quiet unless it fails."""
    return open_llama(path, n_ctx=n_ctx)


def tokenize(path: Path, text: str) -> list[int]:
    """Token ids as llama.cpp sees them: no BOS added, special markers parsed."""
    import llama_cpp
    from llama_cpp._internals import LlamaModel

    # The vocabulary alone: a full context would load weights and warn about n_ctx_train.
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = LlamaModel(path_model=str(path), params=params, verbose=False)
    try:
        return model.tokenize(text.encode("utf-8"), add_bos=False, special=True)
    finally:
        model.close()


def chat(
    path: Path, messages: Sequence[dict[str, str]], max_tokens: int = 32, n_ctx: int = 2048
) -> Completion:
    """One greedy chat completion with the chat template stored in the GGUF."""
    llm = load_llama(path, n_ctx=n_ctx)
    out = llm.create_chat_completion(list(messages), max_tokens=max_tokens, temperature=0.0)
    choice = out["choices"][0]
    used = out["usage"]["completion_tokens"]
    return Completion(choice["message"]["content"] or "", choice["finish_reason"], used)


PARITY_STRINGS = (
    "<|im_start|>user\nFix this command: gti stauts --all 42\n<|im_end|>\n",
    "def add(a, b):\n    return a + b  # naïve 😀\n",
    "<|im_start|>assistant\ngit push origin main<|im_end|>\n",
)


@dataclass(frozen=True)
class Parity:
    text: str
    transformers_ids: list[int]
    llama_cpp_ids: list[int]

    @property
    def equal(self) -> bool:
        return self.transformers_ids == self.llama_cpp_ids


def tokenizer_parity(
    model_dir: Path, gguf: Path, texts: Sequence[str] = PARITY_STRINGS
) -> list[Parity]:
    """Token ids of the same texts in transformers (the training side) and llama.cpp."""
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(model_dir))
    return [
        Parity(t, list(hf.encode(t, add_special_tokens=False)), tokenize(gguf, t)) for t in texts
    ]


def gguf_metadata(toolchain: Toolchain, path: Path) -> dict:
    """Header fields through the converter's own gguf-py (same revision as the tools)."""
    if str(toolchain.gguf_py) not in sys.path:
        sys.path.insert(0, str(toolchain.gguf_py))
    import gguf

    reader = gguf.GGUFReader(str(path))

    def field(name: str):
        f = reader.get_field(name)
        return f.contents() if f is not None else None

    ftype = field("general.file_type")
    return {
        "architecture": field("general.architecture"),
        "file_type": gguf.LlamaFileType(ftype).name if ftype is not None else None,
        "chat_template": field("tokenizer.chat_template"),
        "eos_token_id": field("tokenizer.ggml.eos_token_id"),
        "tensors": len(reader.tensors),
        "tensor_types": sorted({t.tensor_type.name for t in reader.tensors}),
    }


@dataclass(frozen=True)
class ChatFacts:
    """What a GGUF must carry over from the HF tokenizer the model was trained with."""

    template: str
    eos_token_id: int
    render: Callable[[list[dict[str, str]]], str]


def chat_facts(model_dir: Path) -> ChatFacts:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    template = tok.chat_template
    if not isinstance(template, str):
        raise ValueError(f"{model_dir} has no single chat template to carry into the GGUF")

    def render(messages: list[dict[str, str]]) -> str:
        return tok.apply_chat_template(messages, tokenize=False)

    return ChatFacts(template, int(tok.eos_token_id), render)
