"""Desktop notifications: macOS Notification Center, notify-send on Linux, else none.

The caller always logs the message too; a notification is a courtesy that may be unavailable
(no desktop session, no notify-send), so failures are returned, never raised.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

# The text travels as argv, never spliced into AppleScript, so quotes in an error are harmless.
_APPLESCRIPT = (
    "on run argv",
    "display notification (item 2 of argv) with title (item 1 of argv)",
    "end run",
)
TIMEOUT_S = 10
MAX_CHARS = 240  # Notification Center shows about two lines; the log has the rest


def notification_command(title: str, message: str, system: str | None = None) -> list[str] | None:
    """The command that shows a notification on this machine, or None where there is none."""
    system = system or platform.system()
    message = message if len(message) <= MAX_CHARS else message[: MAX_CHARS - 1] + "…"
    if system == "Darwin":
        osascript = shutil.which("osascript")
        if osascript:
            script = [arg for line in _APPLESCRIPT for arg in ("-e", line)]
            return [osascript, *script, title, message]
    elif system == "Linux":
        notify_send = shutil.which("notify-send")
        if notify_send:
            return [notify_send, "--app-name=nightshift", "--urgency=critical", title, message]
    return None


def notify(title: str, message: str, system: str | None = None) -> str:
    """Show a notification; return how: "osascript", "notify-send", or why it was log-only."""
    command = notification_command(title, message, system)
    if command is None:
        return "log only: no notifier on this machine"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"log only: {exc}"
    tool = Path(command[0]).name
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        return f"log only: {tool} exited {done.returncode}: {detail[-1] if detail else ''}"
    return tool
