"""A training whose run died must stop and free its lock, so the next run can resume.

Dagster runs a step in a child of the run worker; `kill -9` of the run worker re-parents the
step, which must then stop its training child rather than train on, holding the adapter's lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipeline.doctor import command_fix_split

STEP = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from pipeline.config import LoraConfig
    from pipeline.train import TrainingError, train_lora
    model, data, out, report = sys.argv[1:5]
    cfg = LoraConfig(iters=5000, max_seq_length=64, checkpoint_every=5, steps_per_eval=10000)
    try:
        train_lora(model, Path(data), Path(out), cfg)
        Path(report).write_text(json.dumps({"error": None}))
    except TrainingError as exc:
        Path(report).write_text(json.dumps({"error": str(exc)}))
    """
)
# The run worker's stand-in: starts the step and waits, as Dagster's run worker does.
WORKER = "import subprocess, sys; subprocess.Popen(sys.argv[1:]).wait()"


def _locked(lock: Path) -> bool:
    with lock.open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {seconds} s waiting for {what}"
        time.sleep(0.2)


@pytest.mark.slow
def test_training_stops_when_the_run_worker_is_killed(tiny_model, tmp_path: Path):
    data = command_fix_split(tmp_path / "data", seed=0, n=32)
    out, report = tmp_path / "adapter", tmp_path / "report.json"
    args = [str(tiny_model.path), str(data), str(out), str(report)]
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, sys.executable, "-c", STEP, *args],
        start_new_session=True,  # so the test can clean up the whole group whatever happens
    )
    try:
        _wait(lambda: any((out / "checkpoints").glob("step-*")), 180, "a first checkpoint")
        assert _locked(out / ".train.lock")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        _wait(report.is_file, 30, "the orphaned step to stop its training")
        assert "the run that started this training died" in json.loads(report.read_text())["error"]
        _wait(lambda: not _locked(out / ".train.lock"), 30, "the adapter lock to be free")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
