"""The local run launcher, able to tell run monitoring that a run's process is gone.

Dagster's DefaultRunLauncher has no health check: a run whose worker dies is failed only by the
code server that started it, so when that server dies too (the daemon killed, a crash, a
reboot) the run stays STARTED for good and keeps its `nightshift_model` slot. This launcher
tags each run with the machine it runs on and reports the worker dead once the process that
recorded itself in the run's log (its pid, at that time) no longer exists; the monitoring
daemon then fails the run and frees its slots (dagster.yaml `run_monitoring`). Runs it did not
launch (in process: `nightshift demo`, `dagster asset materialize`) are checked too when they
carry the tag or the storage is SQLite, which only one machine uses.
"""

from __future__ import annotations

import socket
from pathlib import Path

import dagster as dg

# Not exported by `dagster`: the health-check types every run launcher returns.
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, WorkerStatus
from dagster._core.storage.runs import SqliteRunStorage

from pipeline.disk import LOW_WATER_BYTES, format_bytes, free_bytes
from pipeline.processes import machine_id, started_no_later_than

HOST_TAG = "nightshift/host"  # machine_id() of where the run's process runs; only it can check


def worker_process(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The pid of the run's first process and when it recorded itself: the launched worker's
    "Started process for run", or "Executing steps in process" for an in-process run."""
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = record.dagster_event.engine_event_data if record.dagster_event else None
        pid = data.metadata.get("pid") if data else None
        if pid is not None:
            return int(pid.value), record.timestamp
    return None


class NightshiftRunLauncher(dg.DefaultRunLauncher):
    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        self._instance.add_run_tags(run.run_id, {HOST_TAG: machine_id()})
        super().launch_run(context)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        # Monitoring fails a run on anything but RUNNING/SUCCESS, so "cannot tell" is RUNNING.
        here = machine_id()
        host = run.tags.get(HOST_TAG)
        if host is None and isinstance(self._instance.run_storage, SqliteRunStorage):
            host = here  # SQLite storage is one machine's: `dagster asset materialize` ran here
        if host != here:
            where = f"on machine {host}" if host else "with no host tag"
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"runs {where}: not checked here")
        worker = worker_process(self._instance, run.run_id)
        if worker is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no worker process recorded yet")
        pid, recorded_at = worker
        if started_no_later_than(pid, recorded_at):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"process {pid} is alive")
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"the run's process {pid} on {socket.gethostname()} is gone (killed, crashed, or "
            f"the machine restarted){self._disk_note()}; its pool slots are freed and the next "
            "run starts normally",
        )

    def _disk_note(self) -> str:
        """A worker that died on a full disk could not even record why: say it here."""
        home = Path(self._instance.root_directory)
        free = free_bytes(home)
        if free is None or free >= LOW_WATER_BYTES:
            return ""
        return f"; disk full: {format_bytes(free)} free on the disk holding {home}"
