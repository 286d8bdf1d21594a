"""A recorded process is alive only while that very process runs: not a zombie, not a reused pid."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from pipeline.processes import process_start_time, started_no_later_than


def test_a_running_process_is_alive_and_started_before_now():
    start = process_start_time(os.getpid())
    assert start is not None and start <= time.time()
    assert started_no_later_than(os.getpid(), time.time())


def test_a_process_that_exited_is_gone_even_before_it_is_reaped():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    recorded = time.time()
    deadline = time.monotonic() + 60
    while started_no_later_than(proc.pid, recorded) and time.monotonic() < deadline:
        time.sleep(0.05)  # exited but not waited for: a zombie, which is not alive
    assert not started_no_later_than(proc.pid, recorded)
    proc.wait()
    assert process_start_time(proc.pid) is None


def test_a_pid_recorded_before_its_process_started_belongs_to_someone_else():
    # After a crash or reboot the number comes back for a newer process.
    assert not started_no_later_than(os.getpid(), process_start_time(os.getpid()) - 60)
    assert process_start_time(0) is None and process_start_time(-5) is None


def test_ps_and_proc_agree_on_when_a_process_started():
    """macOS has no /proc: `ps` answers there; on Linux both must give the same time."""
    from pipeline.processes import _linux_start, _ps_start

    if not sys.platform.startswith("linux"):
        assert _ps_start(os.getpid()) is not None
        return
    assert abs(_ps_start(os.getpid()) - _linux_start(os.getpid())) < 2
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert _ps_start(proc.pid) is None


def test_machine_id_is_the_same_in_every_process():
    from pipeline.processes import machine_id

    other = subprocess.run(
        [sys.executable, "-c", "from pipeline.processes import machine_id; print(machine_id())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert machine_id() and other.stdout.strip() == machine_id()
