"""Whether a process recorded earlier is still the same, live process (no Dagster import).

A pid alone is not enough: after a crash or a reboot the number is handed to someone else, so
a process counts as ours only if it started no later than the moment it was recorded.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

START_SLACK_S = 2.0  # clock ticks and `ps` round start times; a reused pid starts much later


@functools.cache
def machine_id() -> str:
    """This machine, stably: a pid means something only here. Not the host name, which macOS
    changes with the network; that is the fallback where no machine id exists."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            if found := Path(path).read_text().strip():
                return found
        except OSError:
            continue
    if sys.platform == "darwin":
        out = subprocess.run(
            ["ioreg", "-rd1", "-c", "IOPlatformExpertDevice"], capture_output=True, text=True
        )
        if found := re.search(r'"IOPlatformUUID" = "([^"]+)"', out.stdout):
            return found.group(1)
    return socket.gethostname()


def process_start_time(pid: int) -> float | None:
    """When process `pid` started (epoch seconds); None if there is no such live process."""
    if pid <= 0:
        return None
    if sys.platform.startswith("linux"):
        return _linux_start(pid)
    return _ps_start(pid)


def started_no_later_than(pid: int, recorded_at: float) -> bool:
    """True while the process recorded as `pid` at `recorded_at` is alive (not a reused pid)."""
    start = process_start_time(pid)
    return start is not None and start <= recorded_at + START_SLACK_S


def _linux_start(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
    if fields[0] in ("Z", "X"):  # a zombie has exited; only its parent has not reaped it
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _ps_start(pid: int) -> float | None:
    """macOS and other Unixes: `ps` gives the state and the time since start."""
    out = subprocess.run(
        ["ps", "-o", "state=,etime=", "-p", str(pid)], capture_output=True, text=True
    )
    parts = out.stdout.split()
    if out.returncode != 0 or len(parts) != 2 or parts[0].startswith("Z"):
        return None
    days, _, clock = parts[1].rpartition("-")
    seconds = 0
    for part in clock.split(":"):
        seconds = seconds * 60 + int(part)
    return time.time() - seconds - int(days or 0) * 86400
