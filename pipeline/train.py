"""LoRA training with mlx-lm, in a child process.

The child runs mlx-lm's own `train_model` (the code path of `mlx_lm lora`), so a crash or an
out-of-memory kill cannot take the caller with it. Metrics come back as JSON lines on the
child's original stdout; everything mlx-lm prints goes to a log file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.config import LoraConfig

Event = dict[str, float | int | str]
OnEvent = Callable[[Event], None]


class TrainingError(RuntimeError):
    """Training failed; the message carries the end of the child's log."""


@dataclass
class TrainResult:
    adapter_dir: Path
    seconds: float
    events: list[Event] = field(default_factory=list)

    def last(self, kind: str) -> Event | None:
        return next((e for e in reversed(self.events) if e["event"] == kind), None)


def train_lora(
    base_model: str | Path,
    data_dir: Path,
    adapter_dir: Path,
    cfg: LoraConfig = LoraConfig(),
    on_event: OnEvent | None = None,
) -> TrainResult:
    """Train an adapter on `data_dir/{train,valid}.jsonl` into `adapter_dir`."""
    for split in ("train", "valid"):
        if not (data_dir / f"{split}.jsonl").is_file():
            raise TrainingError(f"{data_dir / f'{split}.jsonl'} is missing: mlx-lm needs both")
    adapter_dir.mkdir(parents=True, exist_ok=True)
    log = adapter_dir / "train.log"
    job = {"model": str(base_model), "data": str(data_dir), "adapter_path": str(adapter_dir)}
    job |= asdict(cfg)
    started = time.monotonic()
    result = TrainResult(adapter_dir, 0.0)
    with log.open("w") as log_fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.train", json.dumps(job)],
            stdout=subprocess.PIPE,
            stderr=log_fh,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            result.events.append(event)
            if on_event:
                on_event(event)
        code = proc.wait()
    result.seconds = time.monotonic() - started
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise TrainingError(f"mlx-lm training exited with {code}:\n{tail}\nfull log: {log}")
    if not (adapter_dir / "adapters.safetensors").is_file():
        raise TrainingError(f"training ended without writing {adapter_dir}/adapters.safetensors")
    return result


def _worker(job: dict) -> None:
    """Child side: mlx-lm's own LoRA path, with a callback that reports JSON lines."""
    events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever mlx-lm prints goes to the log, not into the event stream

    import types

    import mlx.optimizers  # noqa: F401  (mlx-lm expects it imported before training)
    import numpy as np
    from mlx_lm import lora
    from mlx_lm.tuner.callbacks import TrainingCallback
    from mlx_lm.tuner.datasets import load_dataset
    from mlx_lm.utils import load

    class Reporter(TrainingCallback):
        def on_train_loss_report(self, info: dict) -> None:
            events.write(json.dumps({"event": "train", **_plain(info)}) + "\n")

        def on_val_loss_report(self, info: dict) -> None:
            events.write(json.dumps({"event": "val", **_plain(info)}) + "\n")

    args = dict(lora.CONFIG_DEFAULTS)
    args |= {k: v for k, v in job.items() if k not in ("rank", "scale", "dropout")}
    args |= {"train": True, "test": False, "resume_adapter_file": None}
    args["lora_parameters"] = {
        "rank": job["rank"],
        "scale": job["scale"],
        "dropout": job["dropout"],
    }
    ns = types.SimpleNamespace(**args)
    if ns.num_layers < 0:
        ns.num_layers = 10**6  # resolved below, once the model's depth is known
    np.random.seed(ns.seed)
    model, tokenizer = load(ns.model)
    ns.num_layers = min(ns.num_layers, len(model.layers))
    train_set, valid_set, _ = load_dataset(ns, tokenizer)
    events.write(json.dumps({"event": "start", "train": len(train_set)}) + "\n")
    lora.train_model(ns, model, train_set, valid_set, Reporter())
    events.write(json.dumps({"event": "done"}) + "\n")


def _plain(info: dict) -> dict:
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in info.items()}


if __name__ == "__main__":
    _worker(json.loads(sys.argv[1]))
