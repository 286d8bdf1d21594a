"""The quantize step through nightshift against the bare `llama-quantize` command."""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path

from pipeline.base_model import build_base_model, workspace_corpus
from pipeline.gguf import convert_to_gguf, quantize
from pipeline.sample import create_sample_workspace
from pipeline.toolchain import locate_toolchain


def bench_quantize(tmp: Path, rounds: int = 9, qtype: str = "Q4_K_M") -> dict:
    tc = locate_toolchain()
    sample = create_sample_workspace(tmp / "ws", seed=0)
    model = build_base_model(tmp / "tiny", workspace_corpus(sample.root))
    f16 = convert_to_gguf(tc, model.path, tmp / "f16.gguf")
    ours, bare = [], []
    for _ in range(rounds):  # interleaved, so load on the machine hits both alike
        t0 = time.perf_counter()
        subprocess.run(
            [tc.bin("llama-quantize"), f16, tmp / "bare.gguf", qtype],
            check=True,
            capture_output=True,
        )
        bare.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        quantize(tc, f16, tmp / "ours.gguf", qtype)
        ours.append(time.perf_counter() - t0)
    same = (tmp / "bare.gguf").read_bytes() == (tmp / "ours.gguf").read_bytes()
    o, b = statistics.median(ours), statistics.median(bare)
    return {
        "qtype": qtype,
        "rounds": rounds,
        "f16_mb": round(f16.stat().st_size / 1e6, 2),
        "ours_seconds": round(o, 4),
        "bare_seconds": round(b, 4),
        "ratio": round(o / b, 3),
        "identical_output": same,
    }
