"""LoRA training speed: `train_lora` against the bare `python -m mlx_lm lora --train`.

Both train the tiny model on the same command-fix split with the same settings, alternating
bare, ours, bare, ours so machine load hits both alike; each figure is the median over rounds.
Throughput is trained (loss) tokens over the wall time of the training loop alone: from the
first validation to the final adapter save, so model load and imports are excluded for both,
while our per-step work (checkpoints included) counts. The bare run is mlx-lm's own CLI entry
point with a timer wrapped around its `train` call; nothing else in it is changed.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from pipeline.base_model import build_base_model, workspace_corpus
from pipeline.config import LoraConfig
from pipeline.doctor import command_fix_split
from pipeline.sample import create_sample_workspace
from pipeline.train import train_lora

# Runs mlx_lm.lora.main() with the given CLI arguments, timing its `train` call and
# recording the reports mlx-lm hands its training callback.
_BARE = """
import json, sys, time
import mlx_lm.lora as lora
from mlx_lm.tuner.callbacks import TrainingCallback

reports = []

class Capture(TrainingCallback):
    def on_train_loss_report(self, info):
        reports.append(info)

def timed_train(*args, **kwargs):
    kwargs["training_callback"] = Capture()
    started = time.perf_counter()
    inner(*args, **kwargs)
    seconds = time.perf_counter() - started
    tokens = reports[-1]["trained_tokens"]
    before = [0] + [r["trained_tokens"] for r in reports]
    step_seconds = sum(
        (r["trained_tokens"] - b) / r["tokens_per_second"] for b, r in zip(before, reports)
    )
    print("BENCH " + json.dumps({"tokens": tokens, "loop_seconds": seconds,
                                 "step_seconds": step_seconds}))

inner = lora.train
lora.train = timed_train
sys.argv = ["mlx_lm.lora", *sys.argv[1:]]
lora.main()
"""


def _bare(model: Path, data: Path, out: Path, cfg: LoraConfig) -> dict:
    args = ["--train", "--model", str(model), "--data", str(data), "--adapter-path", str(out)]
    args += ["--iters", str(cfg.iters), "--batch-size", str(cfg.batch_size)]
    args += ["--max-seq-length", str(cfg.max_seq_length), "--num-layers", str(cfg.num_layers)]
    args += ["--learning-rate", str(cfg.learning_rate), "--seed", str(cfg.seed)]
    args += ["--steps-per-report", str(cfg.steps_per_report), "--val-batches", str(cfg.val_batches)]
    args += ["--steps-per-eval", str(cfg.steps_per_eval), "--mask-prompt"]
    # rank 8, scale 20, dropout 0 and the Adam optimizer are mlx-lm's defaults as well as ours.
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _BARE, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"bare mlx_lm lora failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("BENCH "))
    figures = json.loads(line.removeprefix("BENCH "))
    return figures | {"process_seconds": time.perf_counter() - started}


def _ours(model: Path, data: Path, out: Path, cfg: LoraConfig) -> dict:
    result = train_lora(model, data, out, cfg)
    done = result.last("done") or {}
    reports = [e for e in result.events if e["event"] == "train"]
    before = [0] + [r["trained_tokens"] for r in reports]
    step_seconds = sum(
        (r["trained_tokens"] - b) / r["tokens_per_second"]
        for b, r in zip(before, reports, strict=False)
    )
    return {
        "tokens": done["trained_tokens"],
        "loop_seconds": done["loop_seconds"],
        "step_seconds": step_seconds,
        "process_seconds": result.seconds,
    }


def bench_lora(tmp: Path, rounds: int = 2, iters: int = 60) -> dict:
    sample = create_sample_workspace(tmp / "sample", seed=0)
    model = build_base_model(tmp / "tiny", workspace_corpus(sample.root)).path
    data = command_fix_split(tmp / "data", seed=0, n=256)
    cfg = LoraConfig(
        iters=iters,
        batch_size=8,
        max_seq_length=256,
        num_layers=-1,
        rank=8,
        learning_rate=1e-3,
        lr_schedule="constant",  # mlx-lm's default; the schedule costs nothing either way
        steps_per_report=10,
        steps_per_eval=200,  # mlx-lm's default: validation at the start and the end only
        val_batches=25,  # mlx-lm's default
    )
    runs: dict[str, list[dict]] = {"bare": [], "ours": []}
    for i in range(rounds):
        runs["bare"].append(_bare(model, data, tmp / f"bare-{i}", cfg))
        runs["ours"].append(_ours(model, data, tmp / f"ours-{i}", cfg))

    def median(name: str, key: str) -> float:
        return statistics.median(r["tokens"] / r[key] for r in runs[name])

    ours, bare = median("ours", "loop_seconds"), median("bare", "loop_seconds")
    ours_step, bare_step = median("ours", "step_seconds"), median("bare", "step_seconds")
    return {
        "ours_tokens_per_s": round(ours, 1),
        "bare_tokens_per_s": round(bare, 1),
        "ratio": round(ours / bare, 3),
        "ours_step_tokens_per_s": round(ours_step, 1),  # step time only, as mlx-lm reports it
        "bare_step_tokens_per_s": round(bare_step, 1),
        "step_ratio": round(ours_step / bare_step, 3),
        "iters": iters,
        "batch_size": cfg.batch_size,
        "max_seq_length": cfg.max_seq_length,
        "rank": cfg.rank,
        "rounds": rounds,
        "trained_tokens": {k: [r["tokens"] for r in v] for k, v in runs.items()},
        "process_seconds": {
            k: [round(r["process_seconds"], 1) for r in v] for k, v in runs.items()
        },
    }


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-lora-") as tmp:
        print(json.dumps(bench_lora(Path(tmp)), indent=2))
