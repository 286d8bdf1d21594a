"""GGUF quants of the fused model: F16, an importance matrix from the user's data, quantized
files, each validated the way it will be used (metadata, load, a greedy chat completion)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.artifacts import sha256_file
from pipeline.gguf import chat, convert_to_gguf, gguf_metadata, quantize
from pipeline.ingest import read_jsonl
from pipeline.toolchain import Toolchain, run_tool

ROLE_MARKERS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|start_header_id|>")


@dataclass(frozen=True)
class QuantConfig:
    types: tuple[str, ...] = ("Q4_K_M", "Q5_K_M", "Q8_0")
    imatrix: bool = True  # importance matrix from the train split: better low-bit quants
    imatrix_ctx: int = 256  # tokens per imatrix chunk
    imatrix_chunks: int = 64  # upper bound; small data gives fewer
    validate_prompts: int = 3  # training prompts answered greedily by each quant
    max_tokens: int = 48  # per validation completion
    threads: int = 0  # 0: llama.cpp's default


@dataclass
class QuantFile:
    qtype: str
    path: str
    bytes: int
    sha256: str
    seconds: float
    metadata: dict
    problems: list[str] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)


def train_text(rows: list[dict], template: callable, min_bytes: int) -> str:
    """The train split rendered as the model sees it; repeated if shorter than one chunk."""
    text = "".join(template(r["messages"]) for r in rows)
    if not text:
        raise ValueError("the train split is empty: no text for the importance matrix")
    return text * max(1, -(-min_bytes // len(text.encode())))


def compute_imatrix(tc: Toolchain, f16: Path, text_file: Path, out: Path, cfg: QuantConfig) -> Path:
    cmd = [tc.bin("llama-imatrix"), "-m", f16, "-f", text_file, "-o", out]
    cmd += ["-c", str(cfg.imatrix_ctx), "--chunks", str(cfg.imatrix_chunks)]
    if cfg.threads:
        cmd += ["-t", str(cfg.threads)]
    run_tool(cmd)
    return out


def validate_quant(
    tc: Toolchain, q: QuantFile, template: str, eos_id: int, prompts: list[list[dict]], cfg
) -> None:
    """Fill in `problems`: wrong metadata, no stop on EOS, role markers in the answer."""
    meta = q.metadata
    if meta["file_type"] != f"MOSTLY_{q.qtype}":
        q.problems.append(f"file type {meta['file_type']}, expected MOSTLY_{q.qtype}")
    if meta["chat_template"] != template:
        q.problems.append("chat template differs from the one used in training")
    if meta["eos_token_id"] != eos_id:
        q.problems.append(f"EOS id {meta['eos_token_id']}, the tokenizer's is {eos_id}")
    for messages in prompts:
        out = chat(Path(q.path), messages, max_tokens=cfg.max_tokens)
        leaked = [m for m in ROLE_MARKERS if m in out.text]
        q.samples.append(
            {
                "prompt": messages[-1]["content"][:200],
                "answer": out.text[:200],
                "finish_reason": out.finish_reason,
            }
        )
        if out.finish_reason != "stop":
            q.problems.append(f"no EOS within {cfg.max_tokens} tokens: {out.text[:60]!r}")
        if leaked:
            q.problems.append(f"role markers in the answer: {leaked}")


def build_quants(
    tc: Toolchain,
    fused: Path,
    train_jsonl: Path,
    out: Path,
    template: str,
    eos_id: int,
    render: callable,
    cfg: QuantConfig = QuantConfig(),
    log: callable = print,
) -> dict:
    """F16, imatrix and each quant under `out`; returns a manifest (written as quants.json)."""
    started = time.monotonic()
    rows = read_jsonl(train_jsonl)
    f16 = convert_to_gguf(tc, fused, out / "model-F16.gguf")
    log(f"F16 written: {f16.stat().st_size / 1e6:.1f} MB in {time.monotonic() - started:.1f}s")
    imatrix = None
    if cfg.imatrix:
        text_file = out / "imatrix-train.txt"
        text_file.write_text(train_text(rows, render, cfg.imatrix_ctx * 8), encoding="utf-8")
        imatrix = compute_imatrix(tc, f16, text_file, out / "imatrix.gguf", cfg)
        text_file.unlink()
        log(f"importance matrix from {train_jsonl.name}: {imatrix.name}")
    # The shortest training prompts: a behaviour probe, not a context-length test.
    rows.sort(key=lambda r: len(render(r["messages"][:-1])))
    prompts = [r["messages"][:-1] for r in rows[: cfg.validate_prompts]]
    files = []
    for qtype in cfg.types:
        t0 = time.monotonic()
        path = out / f"model-{qtype}.gguf"
        extra = ["--imatrix", str(imatrix)] if imatrix else []
        quantize(tc, f16, path, qtype, cfg.threads, extra)
        q = QuantFile(
            qtype,
            str(path),
            path.stat().st_size,
            sha256_file(path),
            round(time.monotonic() - t0, 3),
            gguf_metadata(tc, path),
        )
        validate_quant(tc, q, template, eos_id, prompts, cfg)
        log(f"{qtype}: {q.bytes / 1e6:.2f} MB, {'OK' if not q.problems else q.problems}")
        files.append(q)
    manifest = {
        "f16": {"path": str(f16), "bytes": f16.stat().st_size, "sha256": sha256_file(f16)},
        "imatrix": str(imatrix) if imatrix else None,
        "quants": [asdict(q) for q in files],
        "config": asdict(cfg),
        "seconds": round(time.monotonic() - started, 2),
    }
    (out / "quants.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
