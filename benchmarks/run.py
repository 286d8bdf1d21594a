"""`make bench`: every benchmark in one run, written as JSON with the machine described.

Targets are checked here and reported as `pass` fields; the process exits non-zero if one
misses, so a regression is loud without any timed unit test.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.machine import describe

Section = Callable[[Path], dict]


def _sections(quick: bool) -> dict[str, Section]:
    from benchmarks.data_dedup import bench_dedup
    from benchmarks.data_pipeline import bench_nightly, bench_validate
    from benchmarks.data_scrub import bench_scrub
    from benchmarks.data_sessions import bench_read
    from benchmarks.model_lora import bench_lora
    from benchmarks.model_quantize import bench_quantize

    n = 20_000 if quick else 200_000
    return {
        "session_extraction": lambda tmp: bench_read(tmp),
        "scrub": lambda tmp: bench_scrub(),
        "dedup_vs_datasketch": lambda tmp: bench_dedup(n=n),
        "validate_stage": lambda tmp: bench_validate(tmp, n=n),
        "nightly_vs_backfill": lambda tmp: bench_nightly(tmp),
        "lora_vs_bare_mlx_lm": lambda tmp: bench_lora(tmp),
        "quantize_vs_bare_llama_quantize": lambda tmp: bench_quantize(tmp),
    }


TARGETS = {
    "session_extraction": ("mb_per_s", ">=", 20.0),
    "scrub": ("speed_vs_head", ">=", 0.5),
    "dedup_vs_datasketch": ("speedup", ">=", 2.5),
    "validate_stage": ("examples_per_s", ">=", 10_000.0),
    "nightly_vs_backfill": ("ratio", "<=", 0.10),
    "lora_vs_bare_mlx_lm": ("ratio", ">=", 0.95),
    "quantize_vs_bare_llama_quantize": ("ratio", "<=", 1.10),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench-results.json"))
    parser.add_argument("--only", nargs="*", help="run only these sections")
    parser.add_argument("--quick", action="store_true", help="20K instead of 200K examples")
    args = parser.parse_args()
    results: dict = {"machine": describe(), "started": time.time(), "sections": {}}
    ok = True
    for name, fn in _sections(args.quick).items():
        if args.only and name not in args.only:
            continue
        print(f"[bench] {name} ...", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
            figures = fn(Path(tmp))
        if name in TARGETS:
            key, op, bound = TARGETS[name]
            value = figures[key]
            figures["target"] = f"{key} {op} {bound}"
            figures["pass"] = value >= bound if op == ">=" else value <= bound
            if name == "dedup_vs_datasketch":
                figures["pass"] = figures["pass"] and figures["agreement"] >= 0.99
                figures["target"] += " and agreement >= 0.99"
            if name == "scrub":
                figures["pass"] = (
                    figures["pass"]
                    and figures["recall"] >= 0.99
                    and figures["benign_unchanged"] >= 0.95
                )
                figures["target"] += " and recall >= 0.99 and benign_unchanged >= 0.95"
            ok = ok and figures["pass"]
        results["sections"][name] = figures
        print(f"[bench] {name}: {json.dumps(figures)}", flush=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"[bench] results written to {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
