"""Crash-safe, resumable LoRA training with mlx-lm, in a child process.

The child (`pipeline.train_worker`) drives mlx-lm's own building blocks in a loop that writes
a checkpoint every `checkpoint_every` steps, so a crash or an out-of-memory kill cannot take
the caller with it, and the next call with the same model, data and settings picks up where
the last checkpoint left off. Events come back as JSON lines on the child's original stdout;
everything mlx-lm prints goes to `adapter_dir/train.log`.

Layout of `adapter_dir`:
    adapters.safetensors, adapter_config.json  what `mlx_lm.load(adapter_path=)` / fuse read
    metrics.json                               the train/val loss curve
    checkpoints/step-0000025/                  adapters, optimizer state, state.json
    train.log                                  the child's output, appended per run
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.config import LoraConfig
from pipeline.disk import DiskFullError, disk_full_guard

Event = dict[str, object]
OnEvent = Callable[[Event], None]

SPLITS = ("train", "valid")
CHECKPOINTS = "checkpoints"
CHECKPOINT_FILES = ("adapters.safetensors", "optimizer.safetensors", "state.json")
KEEP_CHECKPOINTS = 2  # the newest can be damaged by a crash mid-write; the one before cannot
FINAL_FILES = ("adapters.safetensors", "adapter_config.json", "metrics.json")
COSINE_FLOOR = 0.1  # cosine decays to this fraction of the peak rate, so late steps still learn
# How often a run reports, evaluates or saves never changes the weights it ends with, so these
# may differ between a checkpoint and the run that resumes from it.
_CADENCE = ("steps_per_report", "steps_per_eval", "val_batches", "checkpoint_every")


class TrainingError(RuntimeError):
    """Training failed; the message carries the end of the child's log."""


@dataclass
class TrainResult:
    adapter_dir: Path
    seconds: float
    events: list[Event] = field(default_factory=list)
    resumed_from: int = 0  # the checkpoint step this run continued from; 0 = a fresh start

    def last(self, kind: str) -> Event | None:
        return next((e for e in reversed(self.events) if e["event"] == kind), None)


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int


def plan_iterations(n_train: int, cfg: LoraConfig) -> int:
    """Optimizer steps for `n_train` examples: `cfg.iters` if set, else epochs' worth, clamped."""
    if cfg.iters is not None:
        return cfg.iters
    wanted = math.ceil(cfg.epochs * n_train / cfg.batch_size)
    return max(cfg.min_iters, min(cfg.max_iters, wanted))


def schedule_config(cfg: LoraConfig, iters: int) -> dict | None:
    """The learning-rate schedule in mlx-lm's `lr_schedule` form (None = constant)."""
    if cfg.lr_schedule == "constant":
        return None
    if cfg.lr_schedule != "cosine":
        raise TrainingError(f"lr_schedule must be 'cosine' or 'constant', not {cfg.lr_schedule!r}")
    peak = cfg.learning_rate
    decay_steps = max(1, iters - cfg.warmup_steps)
    schedule = {"name": "cosine_decay", "arguments": [peak, decay_steps, peak * COSINE_FLOOR]}
    return schedule | {"warmup": cfg.warmup_steps, "warmup_init": 0.0}


def fingerprint(base_model: str | Path, data_dir: Path, cfg: LoraConfig, iters: int) -> str:
    """What a checkpoint must match to be resumed from: base model, data bytes, settings."""
    settings = {k: v for k, v in asdict(cfg).items() if k not in _CADENCE} | {"iters": iters}
    doc = {
        "base_model": _model_identity(base_model),
        "data": {split: _sha256(data_dir / f"{split}.jsonl") for split in SPLITS},
        "settings": settings,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def find_checkpoint(root: Path, fp: str) -> tuple[Checkpoint | None, dict[str, str]]:
    """The newest complete checkpoint made with `fp`, and why each unusable one was passed over."""
    found: Checkpoint | None = None
    unusable: dict[str, str] = {}
    for path in sorted(root.glob("step-*"), reverse=True):
        reason, step = _check(path, fp)
        if reason:
            unusable[path.name] = reason
        elif found is None:
            found = Checkpoint(path, step)
    return found, unusable


def train_lora(
    base_model: str | Path,
    data_dir: Path,
    adapter_dir: Path,
    cfg: LoraConfig = LoraConfig(),
    on_event: OnEvent | None = None,
) -> TrainResult:
    """Train an adapter on `data_dir/{train,valid}.jsonl` into `adapter_dir`, resuming if it can."""
    for split in SPLITS:
        if not (data_dir / f"{split}.jsonl").is_file():
            raise TrainingError(f"{data_dir / f'{split}.jsonl'} is missing: mlx-lm needs both")
    if cfg.fine_tune_type not in ("lora", "dora"):
        raise TrainingError(f"fine_tune_type must be 'lora' or 'dora', not {cfg.fine_tune_type!r}")
    adapter_dir.mkdir(parents=True, exist_ok=True)
    iters = plan_iterations(_count_lines(data_dir / "train.jsonl"), cfg)
    schedule_config(cfg, iters)  # an unknown schedule fails here, before a model loads
    fp = fingerprint(base_model, data_dir, cfg, iters)
    # A full disk fails as DiskFullError naming the path and the free space, here or in the child.
    with disk_full_guard(adapter_dir), _exclusive(adapter_dir) as lock_fd:
        root = adapter_dir / CHECKPOINTS
        resume, unusable = find_checkpoint(root, fp)
        _clear_stale(adapter_dir, root, unusable)
        job = {
            "model": str(base_model),
            "data": str(data_dir),
            "adapter_dir": str(adapter_dir),
            "cfg": asdict(cfg),
            "iters": iters,
            "fingerprint": fp,
            "resume": str(resume.path) if resume else None,
            "ignored_checkpoints": unusable,
        }
        return _run_child(job, adapter_dir, lock_fd, on_event)


def _run_child(job: dict, adapter_dir: Path, lock_fd: int, on_event: OnEvent | None) -> TrainResult:
    log = adapter_dir / "train.log"
    started = time.monotonic()
    result = TrainResult(adapter_dir, 0.0)
    with log.open("a") as log_fh:
        log_fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {job['iters']} steps ---\n")
        log_fh.flush()
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.train_worker", json.dumps(job)],
            stdout=subprocess.PIPE,
            stderr=log_fh,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            pass_fds=(lock_fd,),  # the lock lives as long as the child, even if we die first
        )
        assert proc.stdout is not None
        orphaned = _watch_parent(proc)
        try:
            for line in proc.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                result.events.append(event)
                if event["event"] == "start":
                    result.resumed_from = int(event["resumed_from"])
                if on_event:
                    on_event(event)
        except BaseException:
            proc.kill()  # on_event raised or we were interrupted: the child must not outlive us
            raise
        finally:
            code = proc.wait()
    result.seconds = time.monotonic() - started
    if orphaned.is_set():
        raise TrainingError(
            "the run that started this training died, so training stopped and freed its lock; "
            "the next run resumes from the last checkpoint"
        )
    full = result.last("disk_full")
    if full:
        raise DiskFullError(Path(full["path"]), full["detail"], full["free_at_failure"])
    if code != 0:
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise TrainingError(f"training {how} (the next call resumes):\n{tail}\nfull log: {log}")
    if not (adapter_dir / "adapters.safetensors").is_file():
        raise TrainingError(f"training ended without writing {adapter_dir}/adapters.safetensors")
    return result


def _watch_parent(proc: subprocess.Popen) -> threading.Event:
    """Stop the child when our parent (the Dagster run worker) dies: a killed run must not leave
    an orphan training that holds the adapter's lock and blocks the next run's resume."""
    parent, orphaned = os.getppid(), threading.Event()

    def watch() -> None:
        while proc.poll() is None:
            if os.getppid() != parent:  # re-parented: whoever started us is gone
                orphaned.set()
                proc.kill()
                return
            time.sleep(1.0)

    threading.Thread(target=watch, name="train-parent-watch", daemon=True).start()
    return orphaned


@contextmanager
def _exclusive(adapter_dir: Path) -> Iterator[int]:
    """One trainer per adapter directory; the OS drops the lock when its holders die."""
    with (adapter_dir / ".train.lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise TrainingError(f"another training run is writing {adapter_dir}") from exc
        yield fh.fileno()


def _clear_stale(adapter_dir: Path, root: Path, unusable: dict[str, str]) -> None:
    """Remove what this run must not mix with: other configs' checkpoints, half-written ones
    (atomic_dir's dot-prefixed temporaries) and a previous run's final files."""
    for name in unusable:
        shutil.rmtree(root / name, ignore_errors=True)
    for leftover in root.glob(".*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for name in FINAL_FILES:
        (adapter_dir / name).unlink(missing_ok=True)


def _check(path: Path, fp: str) -> tuple[str, int]:
    """Why the checkpoint at `path` cannot be resumed ("" if it can), and its step."""
    if not all((path / name).is_file() for name in CHECKPOINT_FILES):
        return "incomplete", 0
    try:
        state = json.loads((path / "state.json").read_text())
        step = int(state["step"])
    except (ValueError, KeyError, TypeError):
        return "unreadable state.json", 0
    if state.get("fingerprint") != fp:
        return "made with a different base model, data or config", step
    return "", step


def _model_identity(base_model: str | Path) -> object:
    path = Path(base_model)
    if not path.is_dir():
        return str(base_model)  # a Hugging Face id: the name is all there is to go on
    # Names, sizes and mtimes rather than contents: real weights are gigabytes to hash, and a
    # rebuilt model gets new mtimes.
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return [[str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())
