"""dagster-daemon and dagster-webserver as per-user services: launchd (macOS), systemd (Linux).

The daemon fires the nightly schedule and the sensors and launches the queued runs; the
webserver is the UI on 127.0.0.1. Both read this project's instance (DAGSTER_HOME under the
project home) and log to `$NIGHTSHIFT_HOME/logs`.

Keeping a Mac awake: the daemon runs under `caffeinate -i -s`, which holds a no-idle-sleep and
(on AC power, as a Mac mini always is) no-system-sleep assertion for as long as it lives; the
display still sleeps. The assertion must exist before a run does: a sleeping Mac fires no 03:00
schedule and no sensor, so a hook at run start would come too late. Runs are children of the
daemon's code server and finish under the same assertion.
"""

from __future__ import annotations

import os
import platform
import plistlib
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.instance import REPO_ROOT, prepare_dagster_home
from pipeline.paths import nightshift_home
from pipeline.serve_token import TOKEN_FILE, TokenError, ensure_token

UI_HOST = "127.0.0.1"
UI_PORT = 3000
UI_URL = f"http://{UI_HOST}:{UI_PORT}"
DAEMON, WEBSERVER = "dagster-daemon", "dagster-webserver"
LAUNCHD_PREFIX = "io.nightshift."  # launchd labels are reverse-DNS by convention
SYSTEMD_PREFIX = "nightshift-"
CAFFEINATE = ("/usr/bin/caffeinate", "-i", "-s")
# Settings the services need from the installing shell; secrets are never written to disk.
PASSED_ON = ("LLAMA_CPP_DIR", "HF_HOME", "XDG_CACHE_HOME")

Runner = Callable[[list[str]], subprocess.CompletedProcess]


class ServiceError(RuntimeError):
    """The services cannot be installed here; the message says what to do instead."""


@dataclass(frozen=True)
class ServiceSpec:
    """Everything the generated files name: programs, folders, environment, port."""

    repo: Path  # holds workspace.yaml; the services' working directory
    bin_dir: Path  # the virtual environment's bin/, with dagster-daemon and dagster-webserver
    home: Path  # NIGHTSHIFT_HOME
    env: Mapping[str, str] = field(default_factory=dict)
    port: int = UI_PORT

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    def argv(self, name: str) -> list[str]:
        workspace = str(self.repo / "workspace.yaml")
        if name == DAEMON:
            return [str(self.bin_dir / DAEMON), "run", "-w", workspace]
        return [str(self.bin_dir / WEBSERVER), "-w", workspace, "-h", UI_HOST, "-p", str(self.port)]

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"


def service_spec(port: int = UI_PORT, environ: Mapping[str, str] = os.environ) -> ServiceSpec:
    """The spec for this checkout, this virtual environment and this project home."""
    home = nightshift_home()
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in environ.items() if k.startswith("NIGHTSHIFT_") or k in PASSED_ON}
    # Services start with a bare PATH; keep the shell's so brew's llama.cpp and git are found.
    path = os.pathsep.join([str(bin_dir), environ.get("PATH", "/usr/bin:/bin")])
    env |= {"NIGHTSHIFT_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "PATH": path}
    return ServiceSpec(repo=REPO_ROOT, bin_dir=bin_dir, home=home, env=env, port=port)


def launchd_plist(spec: ServiceSpec, name: str) -> dict:
    argv = spec.argv(name)
    if name == DAEMON:
        argv = [*CAFFEINATE, *argv]
    return {
        "Label": LAUNCHD_PREFIX + name,
        "ProgramArguments": argv,
        "WorkingDirectory": str(spec.repo),
        "EnvironmentVariables": dict(spec.env),
        "RunAtLoad": True,
        "KeepAlive": True,  # restarted if it exits; launchd waits ThrottleInterval in between
        "ThrottleInterval": 30,
        "StandardOutPath": str(spec.log_file(name)),
        "StandardErrorPath": str(spec.log_file(name)),
    }


def systemd_unit(spec: ServiceSpec, name: str) -> str:
    what = (
        "schedules, sensors and the run queue" if name == DAEMON else f"the UI on port {spec.port}"
    )
    env = " ".join(_systemd_quote(f"{k}={v}") for k, v in sorted(spec.env.items()))
    log = _systemd_escape(str(spec.log_file(name)))
    return "\n".join(
        [
            "[Unit]",
            f"Description=nightshift {name}: {what}",
            "",
            "[Service]",
            "Type=simple",
            f"WorkingDirectory={_systemd_escape(str(spec.repo))}",
            f"Environment={env}",
            "ExecStart=" + " ".join(_systemd_quote(a, exec_line=True) for a in spec.argv(name)),
            "Restart=on-failure",
            "RestartSec=30",
            f"StandardOutput=append:{log}",
            f"StandardError=append:{log}",
            "",
            "[Install]",
            "WantedBy=default.target",
            "",
        ]
    )


@dataclass(frozen=True)
class ServicePlan:
    """The files to write and the commands that load or unload them on this machine."""

    manager: str  # "launchd" or "systemd"
    files: dict[Path, bytes]
    load: list[list[str]]
    unload: list[list[str]]
    manual: str  # what to run by hand when there is no service manager to talk to


def launchd_plan(spec: ServiceSpec, agents_dir: Path, uid: int) -> ServicePlan:
    files, load, unload = {}, [], []
    for name in (DAEMON, WEBSERVER):
        path = agents_dir / f"{LAUNCHD_PREFIX}{name}.plist"
        files[path] = plistlib.dumps(launchd_plist(spec, name))
        target = f"gui/{uid}/{LAUNCHD_PREFIX}{name}"
        unload.append(["launchctl", "bootout", target])
        load.append(["launchctl", "bootstrap", f"gui/{uid}", str(path)])
    manual = "\n".join(shlex.join(c) for c in load)
    return ServicePlan("launchd", files, load, unload, manual)


def systemd_plan(spec: ServiceSpec, unit_dir: Path) -> ServicePlan:
    units = [f"{SYSTEMD_PREFIX}{name}.service" for name in (DAEMON, WEBSERVER)]
    files = {
        unit_dir / unit: systemd_unit(spec, name).encode()
        for unit, name in zip(units, (DAEMON, WEBSERVER), strict=True)
    }
    load = [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "--now", *units],
    ]
    unload = [["systemctl", "--user", "disable", "--now", *units]]
    manual = (
        "\n".join(shlex.join(c) for c in load)
        + f"\nloginctl enable-linger {os.environ.get('USER', '$USER')}"
        + "   # keep them running after you log out"
    )
    return ServicePlan("systemd", files, load, unload, manual)


def plan_for_this_machine(spec: ServiceSpec, system: str | None = None) -> ServicePlan:
    system = system or platform.system()
    if system == "Darwin":
        return launchd_plan(spec, Path.home() / "Library" / "LaunchAgents", os.getuid())
    if system == "Linux":
        config = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
        return systemd_plan(spec, config / "systemd" / "user")
    raise ServiceError(f"no service manager support on {system}; run `nightshift ui` instead")


def manager_available(plan: ServicePlan, run: Runner) -> bool:
    """launchd always answers on macOS; a systemd user manager is absent in containers and
    in SSH sessions of users without lingering."""
    if plan.manager == "launchd":
        return True
    if shutil.which("systemctl") is None:
        return False
    return run(["systemctl", "--user", "show-environment"]).returncode == 0


def install(spec: ServiceSpec, plan: ServicePlan, run: Runner) -> list[str]:
    """Write the service files, then load them if the service manager is reachable."""
    prepare_dagster_home()
    spec.logs.mkdir(parents=True, exist_ok=True)
    token = spec.home / TOKEN_FILE
    try:
        ensure_token(token)  # what swaps of the served model need; never printed
    except TokenError as exc:
        raise ServiceError(str(exc)) from None
    lines = [f"serving token: {token} (readable by you only)"]
    for path, data in plan.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        lines.append(f"wrote {path}")
    if not manager_available(plan, run):
        return [
            *lines,
            f"no {plan.manager} user manager here; to start the services run:",
            plan.manual,
        ]
    if plan.manager == "launchd":
        for command in plan.unload:
            run(command)  # a reinstall replaces loaded agents; not loaded is fine
    for command in plan.load:
        _checked(run, command)
        lines.append("ran " + shlex.join(command))
    return [*lines, f"UI: http://{UI_HOST}:{spec.port}  logs: {spec.logs}"]


def uninstall(plan: ServicePlan, run: Runner) -> list[str]:
    """Stop and unload the services, then delete their files; what is absent is skipped."""
    lines = []
    if any(p.exists() for p in plan.files) and manager_available(plan, run):
        for command in plan.unload:
            done = run(command)
            lines.append(f"ran {shlex.join(command)} (exit {done.returncode})")
    for path in plan.files:
        if path.exists():
            path.unlink()
            lines.append(f"removed {path}")
    if plan.manager == "systemd" and manager_available(plan, run):
        run(["systemctl", "--user", "daemon-reload"])
    return lines or ["nothing installed"]


def status(plan: ServicePlan, run: Runner) -> list[str]:
    """Each service file, whether it exists, and what the service manager says of it."""
    reachable = manager_available(plan, run)
    lines = []
    for path in plan.files:
        state = "installed" if path.exists() else "not installed"
        if reachable and path.exists():
            state += ", " + _state(plan.manager, path, run)
        lines.append(f"{path.name:<40} {state}")
    return lines


def subprocess_runner(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def _state(manager: str, path: Path, run: Runner) -> str:
    if manager == "launchd":
        done = run(["launchctl", "print", f"gui/{os.getuid()}/{path.stem}"])
        running = [ln.strip() for ln in done.stdout.splitlines() if ln.strip().startswith("state")]
        return running[0] if running else "not loaded"
    return run(["systemctl", "--user", "is-active", path.name]).stdout.strip() or "unknown"


def _checked(run: Runner, command: list[str]) -> None:
    done = run(command)
    if done.returncode != 0:
        raise ServiceError(f"{shlex.join(command)} failed: {(done.stderr or done.stdout).strip()}")


def _systemd_escape(text: str) -> str:
    """Unit files expand %-specifiers everywhere."""
    return text.replace("%", "%%")


def _systemd_quote(text: str, exec_line: bool = False) -> str:
    """One word in a unit file's space-separated list; ExecStart also expands $VARS."""
    text = _systemd_escape(text)
    if exec_line:
        text = text.replace("$", "$$")
    if text and not any(c in text for c in " \t\"'\\;"):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
