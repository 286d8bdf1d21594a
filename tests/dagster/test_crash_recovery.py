"""A run killed with SIGKILL never blocks the next one: the project's own dagster.yaml, a real
dagster-daemon, real processes killed.

Two ways a run dies: its worker process (and the training under it) is killed while the daemon
lives on, and the daemon dies with everything it started (a crash, a reboot) and comes back.
Either way the dead run ends as FAILURE and its `nightshift_model` slot is freed by run
monitoring; the next run, which needs that slot, completes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.launcher import WorkerStatus

from pipeline.artifacts import ArtifactStore
from pipeline.doctor import command_fix_split
from pipeline.processes import machine_id
from resources.run_launcher import HOST_TAG
from tests.small_fs import fill, small_tmpfs

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
Status = dg.DagsterRunStatus
DONE = {Status.SUCCESS, Status.FAILURE, Status.CANCELED}
# Bounds, not expectations: with dagster.yaml's 15 s poll and 15 s slot release a dead run's
# slot is free within about 45 s of its death on an idle machine.
START_S, RECOVER_S = 240, 360

TRAIN_DEFS = """
import dagster as dg

import definitions
from assets.training import lora_adapter

defs = dg.Definitions(
    assets=[lora_adapter],
    jobs=[dg.define_asset_job("train", selection=[lora_adapter])],
    resources=definitions.defs.resources,
)
"""
# The pool's whole point without the model: a step that holds `nightshift_model` until killed.
HOLD_DEFS = """
import time

import dagster as dg


class Hold(dg.Config):
    seconds: float = 0.0


@dg.asset(pool="nightshift_model")
def holds_the_pool(context, config: Hold) -> None:
    context.log.info("holding the pool")
    time.sleep(config.seconds)


defs = dg.Definitions(
    assets=[holds_the_pool], jobs=[dg.define_asset_job("hold", selection=[holds_the_pool])]
)
"""
HOLD_AN_HOUR = {"ops": {"holds_the_pool": {"config": {"seconds": 3600}}}}


class Daemon:
    """dagster-daemon on the project's dagster.yaml, in its own process group."""

    def __init__(self, tmp_path: Path, defs: str, env: dict[str, str]) -> None:
        self.home = tmp_path / "dagster"
        self.home.mkdir(exist_ok=True)
        shutil.copyfile(ROOT / "dagster.yaml", self.home / "dagster.yaml")
        (tmp_path / "crash_defs.py").write_text(defs)
        self.target = ["-f", str(tmp_path / "crash_defs.py"), "-d", str(ROOT)]
        self.env = {**os.environ, **env, "DAGSTER_HOME": str(self.home)}
        self.logs = tmp_path
        self.proc: subprocess.Popen | None = None
        self.instance = dg.DagsterInstance.from_config(str(self.home))
        self.started = 0

    def start(self) -> None:
        self.started += 1
        log = (self.logs / f"daemon-{self.started}.log").open("w")
        self.proc = subprocess.Popen(
            [BIN / "dagster-daemon", "run", *self.target],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def kill_all(self) -> None:
        """SIGKILL the daemon and everything it started (its code server, run workers, steps)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=60)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill_all()
        # Processes a test killed leave no survivors: nothing of this group may outlive the test.
        if self.proc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def launch(self, job: str, config: dict | None = None) -> str:
        before = {r.run_id for r in self.instance.get_runs()}
        cmd = [BIN / "dagster", "job", "launch", *self.target, "-j", job]
        if config:
            cmd += ["--config-json", json.dumps(config)]
        out = subprocess.run(cmd, cwd=ROOT, env=self.env, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        [run_id] = {r.run_id for r in self.instance.get_runs()} - before
        return run_id

    def status(self, run_id: str) -> Status:
        return self.instance.get_run_by_id(run_id).status

    def messages(self, run_id: str) -> list[str]:
        return [e.message or "" for e in self.instance.all_logs(run_id)]

    def log_tail(self) -> str:
        return "".join(p.read_text()[-2000:] for p in sorted(self.logs.glob("daemon-*.log")))


def wait_for(what: str, predicate, timeout_s: float, daemon: Daemon) -> float:
    """Seconds until `predicate()` holds; fails with the daemon's log after `timeout_s`."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            pytest.fail(f"{what}: not within {timeout_s:.0f}s\n{daemon.log_tail()}")
        time.sleep(1)
    return time.monotonic() - started


def worker_pid(daemon: Daemon, run_id: str) -> int:
    """The run worker: the process the code server started for this run."""
    for record in daemon.instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        if (record.message or "").startswith("Started process for run"):
            return int(record.dagster_event.engine_event_data.metadata["pid"].value)
    raise AssertionError(f"run {run_id} recorded no worker process")


def descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True)
    children: dict[int, list[int]] = {}
    for line in out.stdout.splitlines():
        child, parent = map(int, line.split())
        children.setdefault(parent, []).append(child)
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def slot_holders(daemon: Daemon) -> list[str]:
    # A fresh instance: one opened before the daemon made the tables caches their absence.
    with dg.DagsterInstance.from_config(str(daemon.home)) as instance:
        info = instance.event_log_storage.get_concurrency_info("nightshift_model")
    return [slot.run_id for slot in info.claimed_slots]


@pytest.fixture
def store_with_inputs(tmp_path, tiny_model) -> ArtifactStore:
    """What lora_adapter reads, without running the data stages: a split and the tiny model."""
    store = ArtifactStore(tmp_path / "artifacts")
    with store.write_version("validated_splits", "splits-test") as tmp:
        command_fix_split(tmp, seed=0, n=64)
    store.set_current("validated_splits", "splits-test")
    with store.write_version("base_model", "base-test") as tmp:
        (tmp / "source.json").write_text(json.dumps({"path": str(tiny_model.path)}))
    store.set_current("base_model", "base-test")
    return store


@pytest.mark.slow
def test_killed_training_run_fails_and_the_next_run_completes(
    tmp_path, toolchain, store_with_inputs
):
    daemon = Daemon(tmp_path, TRAIN_DEFS, {"NIGHTSHIFT_HOME": str(tmp_path)})
    endless = {"resources": {"mlx": {"config": {"iters": 100_000}}}}
    short = {"resources": {"mlx": {"config": {"iters": 10}}}}
    work = tmp_path / "artifacts" / "lora_adapter"
    daemon.start()
    try:
        first = daemon.launch("train", endless)
        t_train = wait_for(
            "the first run writes a training checkpoint",
            lambda: any(work.glob("*.work/checkpoints/step-*")) or daemon.status(first) in DONE,
            START_S,
            daemon,
        )
        assert daemon.status(first) == Status.STARTED, daemon.messages(first)[-10:]
        assert slot_holders(daemon) == [first]
        worker = worker_pid(daemon, first)
        tree = [worker, *descendants(worker)]
        assert len(tree) >= 3, tree  # the worker, the step process, the training child
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):  # one may have exited meanwhile
                os.kill(pid, signal.SIGKILL)
        killed, killed_at = time.monotonic(), time.time()
        second = daemon.launch("train", short)  # queued while the first still looks STARTED
        wait_for(
            "the killed run is marked failed",
            lambda: daemon.status(first) == Status.FAILURE,
            RECOVER_S,
            daemon,
        )
        t_failed = daemon.instance.get_run_record_by_id(first).end_time - killed_at
        wait_for("the next run finishes", lambda: daemon.status(second) in DONE, RECOVER_S, daemon)
        t_total = time.monotonic() - killed
        assert daemon.status(second) == Status.SUCCESS, daemon.messages(second)[-15:]
        assert first not in slot_holders(daemon)
        stats = daemon.instance.get_run_stats(second)
        print(
            f"\ntraining started {t_train:.0f}s after launch; killed {len(tree)} processes; "
            f"first run FAILURE {t_failed:.1f}s after the kill; next run SUCCESS "
            f"{t_total:.0f}s after the kill ({stats.end_time - stats.start_time:.0f}s running)"
        )
    finally:
        daemon.stop()


def test_a_run_orphaned_by_a_dead_daemon_is_failed_after_restart(tmp_path):
    daemon = Daemon(tmp_path, HOLD_DEFS, {})
    daemon.start()
    try:
        first = daemon.launch("hold", HOLD_AN_HOUR)
        wait_for(
            "the first run holds the pool",
            lambda: "holding the pool" in daemon.messages(first),
            START_S,
            daemon,
        )
        assert daemon.instance.get_run_by_id(first).tags[HOST_TAG] == machine_id()
        daemon.kill_all()  # the daemon, its code server, the run worker and the step, at once
        time.sleep(2)
        assert daemon.status(first) == Status.STARTED  # nobody left to say otherwise
        assert slot_holders(daemon) == [first]

        restarted = time.monotonic()
        daemon.start()
        second = daemon.launch("hold")
        wait_for(
            "the orphaned run is marked failed",
            lambda: daemon.status(first) == Status.FAILURE,
            RECOVER_S,
            daemon,
        )
        t_failed = time.monotonic() - restarted
        wait_for("the next run finishes", lambda: daemon.status(second) in DONE, RECOVER_S, daemon)
        t_done = time.monotonic() - restarted
        assert daemon.status(second) == Status.SUCCESS, daemon.messages(second)[-15:]
        assert any("Detected run worker status FAILED" in m for m in daemon.messages(first))
        assert slot_holders(daemon) == []
        print(
            f"\norphaned run FAILURE within {t_failed:.0f}s of the daemon's restart; next run "
            f"SUCCESS {t_done:.0f}s after the restart"
        )
    finally:
        daemon.stop()


IN_PROCESS = """
import sys

import dagster as dg

from pipeline.processes import machine_id
from resources.run_launcher import HOST_TAG

sys.path.insert(0, sys.argv[1])
from crash_defs import defs

with dg.DagsterInstance.get() as instance:
    defs.resolve_job_def("hold").execute_in_process(
        run_config={"ops": {"holds_the_pool": {"config": {"seconds": 3600}}}},
        instance=instance,
        tags={HOST_TAG: machine_id()},
    )
"""


def in_process_run(tmp_path: Path) -> tuple[Daemon, subprocess.Popen]:
    """A run executing in a process of its own (as `nightshift demo` does), holding the pool."""
    daemon = Daemon(tmp_path, HOLD_DEFS, {})  # never started: the health check alone
    script = tmp_path / "in_process.py"
    script.write_text(IN_PROCESS)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], cwd=ROOT, env=daemon.env)
    try:
        wait_for(
            "the in-process run holds the pool",
            lambda: any(
                "holding the pool" in daemon.messages(r.run_id) for r in daemon.instance.get_runs()
            ),
            START_S,
            daemon,
        )
    except BaseException:
        proc.kill()
        raise
    return daemon, proc


def test_health_check_sees_an_in_process_run_die(tmp_path):
    """`nightshift demo` runs the job in its own process: if that dies, monitoring must know."""
    daemon, proc = in_process_run(tmp_path)
    try:
        [run] = daemon.instance.get_runs()
        launcher = daemon.instance.run_launcher
        assert launcher.supports_check_run_worker_health
        assert launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
        elsewhere = run.with_tags({**run.tags, HOST_TAG: "another-machine"})
        proc.kill()
        proc.wait(timeout=60)
        health = launcher.check_run_worker_health(run)
        assert health.status == WorkerStatus.FAILED
        assert f"process {proc.pid} on {socket.gethostname()} is gone" in health.msg
        assert "disk full" not in health.msg
        # A pid means nothing on another machine: never judged from here.
        assert launcher.check_run_worker_health(elsewhere).status == WorkerStatus.RUNNING
        # Untagged (`dagster asset materialize`): SQLite storage means it ran on this machine.
        untagged = run.with_tags({k: v for k, v in run.tags.items() if k != HOST_TAG})
        assert launcher.check_run_worker_health(untagged).status == WorkerStatus.FAILED
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_run_that_died_on_a_full_disk_is_failed_saying_so(tmp_path):
    """Its own last words ("database or disk is full") never reached the log: monitoring's do."""
    with small_tmpfs(tmp_path / "dagster", "8m") as home:
        daemon, proc = in_process_run(tmp_path)
        proc.kill()
        proc.wait(timeout=60)
        fill(home, leave=200_000)  # nearly full: SQLite still has room to read
        [run] = daemon.instance.get_runs()
        health = daemon.instance.run_launcher.check_run_worker_health(run)
        assert health.status == WorkerStatus.FAILED
        assert "; disk full: " in health.msg and f"free on the disk holding {home}" in health.msg
