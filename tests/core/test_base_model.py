from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from pipeline.base_model import (
    base_model_version,
    build_base_model,
    read_base_model_info,
    workspace_corpus,
)
from pipeline.config import BaseModelConfig
from pipeline.gguf import PARITY_STRINGS, chat, load_llama, tokenizer_parity


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_build_is_deterministic_small_and_llama(sample, tmp_path, monkeypatch):
    lines = list(workspace_corpus(sample.root))
    cfg = BaseModelConfig(pretrain_steps=10)
    monkeypatch.setenv("NIGHTSHIFT_CACHE", str(tmp_path / "cache-a"))
    a = build_base_model(tmp_path / "a", lines, cfg)
    monkeypatch.setenv("NIGHTSHIFT_CACHE", str(tmp_path / "cache-b"))  # built again, not copied
    b = build_base_model(tmp_path / "b", lines, cfg)
    assert _files(a.path) == _files(b.path)
    assert a.parameters < 1_000_000
    config = json.loads((a.path / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert read_base_model_info(a.path) == a


def test_the_default_build_is_pretrained_and_cached(tiny_model, sample, tmp_path):
    build = json.loads((tiny_model.path / "nightshift_base.json").read_text())
    assert build["config"]["pretrain_steps"] == 150
    assert build["pretrain_loss_last"][0] < build["pretrain_loss_first"][0] / 2
    started = time.monotonic()
    again = build_base_model(tmp_path / "again", workspace_corpus(sample.root))
    assert time.monotonic() - started < 10  # the cache, not another pretraining
    assert _files(again.path) == _files(tiny_model.path)


def test_other_seed_or_corpus_gives_another_model(tiny_model, sample, tmp_path):
    lines = list(workspace_corpus(sample.root))
    cfg = BaseModelConfig(seed=1, pretrain_steps=0)
    other = build_base_model(tmp_path / "seed1", lines, cfg)
    assert other.weights_sha256 != tiny_model.weights_sha256
    assert base_model_version(lines, BaseModelConfig()) != base_model_version(
        lines[:-50], BaseModelConfig()
    )


def test_transformers_renders_chatml_and_ends_turns(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model.path))
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert tok.eos_token == "<|im_end|>"
    assert len(tok.encode("<|im_start|>", add_special_tokens=False)) == 1


def test_mlx_lm_loads_and_generates(tiny_model):
    from mlx_lm import load, stream_generate

    model, tokenizer = load(str(tiny_model.path))
    # Counted in tokens: the first one may be EOS, which decodes to no text at all.
    steps = list(stream_generate(model, tokenizer, prompt="git status", max_tokens=8))
    assert steps and steps[-1].generation_tokens >= 1
    assert all(isinstance(s.text, str) for s in steps)


def test_tokenizer_parity_transformers_and_llama_cpp(tiny_model, tiny_f16):
    results = tokenizer_parity(tiny_model.path, tiny_f16, PARITY_STRINGS)
    for r in results:
        assert len(r.transformers_ids) > 5
        assert r.transformers_ids == r.llama_cpp_ids, r.text


def test_q4_k_m_gguf_loads_and_generates(tiny_q4, toolchain):
    sys.path.insert(0, str(toolchain.gguf_py))
    import gguf

    reader = gguf.GGUFReader(str(tiny_q4))
    ftype = reader.get_field("general.file_type").contents()
    assert ftype == gguf.LlamaFileType.MOSTLY_Q4_K_M
    template = reader.get_field("tokenizer.chat_template").contents()
    assert "<|im_start|>" in template
    llm = load_llama(tiny_q4)
    out = llm.create_completion("<|im_start|>user\ngit", max_tokens=8, temperature=0.0)
    assert out["usage"]["completion_tokens"] >= 1
    reply = chat(tiny_q4, [{"role": "user", "content": "Fix this command: gti stauts"}], 8)
    assert reply.tokens >= 1


def _corpus(*roots: Path) -> tuple[list[str], dict[str, str]]:
    """The corpus lines and the skipped files (name: reason), read in a thread so that a read
    that blocks (a FIFO) fails the test instead of hanging it."""
    import threading

    skipped: dict[str, str] = {}
    out: list[list[str]] = []

    def read() -> None:
        out.append(list(workspace_corpus(*roots, on_skip=lambda p, r: skipped.update({p.name: r}))))

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(60)  # a guard against a hang, with a wide margin: the read takes milliseconds
    assert out, "reading the corpus hung"
    return out[0], skipped


def test_database_content_is_text_blobs_decoded_and_null_left_out(tmp_path, caplog):
    import sqlite3

    db = tmp_path / "feedback.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE messages(id INTEGER PRIMARY KEY, content)")
        con.executemany(
            "INSERT INTO messages(content) VALUES (?)",
            [("plain text",), ("blob café\nsecond line".encode(),), (None,), (b"\xff\xfe bad",)],
        )
    con.close()
    lines = list(workspace_corpus(db))  # no on_skip: a skip is logged
    assert lines == ["plain text", "blob café", "second line"]
    [warning] = [r.getMessage() for r in caplog.records if r.name == "pipeline.base_model"]
    assert warning == f"tokenizer corpus: skipped {db}: 1 message(s) whose BLOB content is " + (
        "not UTF-8 text left out"
    )


def test_unreadable_files_in_a_workspace_are_skipped_with_a_reason(tmp_path):
    import os
    import sqlite3

    root = tmp_path / "ws"
    project = root / "projects" / "p"
    project.mkdir(parents=True)
    deep = {"x": json.loads("[" * 900 + '{"text": "deep text"}' + "]" * 900)}
    good = [{"message": {"content": "good line"}}, deep, "[" * 1500 + "]" * 1500]
    (project / "good.jsonl").write_text("\n".join(json.dumps(r) for r in good[:2]) + "\n" + good[2])
    os.mkfifo(project / "fifo.jsonl")
    (project / "folder.jsonl").mkdir()
    (project / "dangling.jsonl").symlink_to(project / "gone.jsonl")
    (project / "self.jsonl").symlink_to(project / "self.jsonl")
    os.mkfifo(root / "fifo.db")
    (root / "folder.sqlite").mkdir()
    (root / "notes.db").write_text("not a database, whatever its name says\n")
    with sqlite3.connect(root / "other.db") as con:
        con.execute("CREATE TABLE things(content TEXT)")
    con.close()
    ok = root / "chat.db"
    with sqlite3.connect(ok) as con:
        con.execute("CREATE TABLE messages(content TEXT)")
        con.executemany(
            "INSERT INTO messages VALUES (?)", [(f"row {i} " * 40,) for i in range(300)]
        )
    con.close()
    (root / "cut.db").write_bytes(ok.read_bytes()[:2048])  # a partial copy: header, no pages
    lines, skipped = _corpus(root)
    assert lines[:2] == ["good line", "deep text"]
    assert len(lines) == 302 and "None" not in lines
    assert skipped.keys() == {
        "fifo.jsonl", "folder.jsonl", "dangling.jsonl", "self.jsonl",
        "fifo.db", "folder.sqlite", "notes.db", "other.db", "cut.db",
    }  # fmt: skip
    assert skipped["fifo.jsonl"] == skipped["folder.sqlite"] == "not a regular file"
    assert skipped["dangling.jsonl"].startswith("cannot see it: No such file")
    assert skipped["self.jsonl"].startswith("cannot see it: Too many levels of symbolic links")
    assert skipped["notes.db"] == "not a SQLite database (no SQLite header)"
    assert skipped["other.db"] == "cannot read its messages: no such table: messages"
    assert skipped["cut.db"].startswith(
        "cannot read its messages: database disk image is malformed"
    )
