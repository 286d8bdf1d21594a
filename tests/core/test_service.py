from __future__ import annotations

import platform
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline import service
from pipeline.cli_service import service_app
from pipeline.notify import notify

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture
def spec(tmp_path) -> service.ServiceSpec:
    home = tmp_path / "night shift%home"  # a space and a % must survive both formats
    env = {"NIGHTSHIFT_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "PATH": "/usr/bin"}
    return service.ServiceSpec(repo=ROOT, bin_dir=BIN, home=home, env=env, port=3123)


def test_launchd_agents_round_trip_and_keep_the_mac_awake(spec, tmp_path):
    plan = service.launchd_plan(spec, tmp_path / "LaunchAgents", uid=501)
    by_label = {plistlib.loads(data)["Label"]: plistlib.loads(data) for data in plan.files.values()}
    daemon = by_label["io.nightshift.dagster-daemon"]
    web = by_label["io.nightshift.dagster-webserver"]
    assert daemon == service.launchd_plist(spec, service.DAEMON)  # plistlib round trip
    assert daemon["ProgramArguments"] == [
        "/usr/bin/caffeinate", "-i", "-s",
        str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml"),
    ]  # fmt: skip
    assert web["ProgramArguments"][-4:] == ["-h", "127.0.0.1", "-p", "3123"]
    assert "caffeinate" not in web["ProgramArguments"][0]
    for agent in (daemon, web):
        assert agent["RunAtLoad"] and agent["KeepAlive"]
        assert agent["WorkingDirectory"] == str(ROOT)
        assert agent["EnvironmentVariables"]["DAGSTER_HOME"] == str(spec.home / "dagster")
        assert Path(agent["StandardErrorPath"]).parent == spec.home / "logs"
    assert ["launchctl", "bootstrap", "gui/501", str(next(iter(plan.files)))] in plan.load
    assert ["launchctl", "bootout", "gui/501/io.nightshift.dagster-daemon"] in plan.unload
    if shutil.which("plutil"):  # macOS: Apple's own validator
        for path, data in plan.files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            lint = subprocess.run(["plutil", "-lint", path], capture_output=True, text=True)
            assert lint.returncode == 0, lint.stdout


def test_systemd_units_pass_systemd_analyze_verify(spec, tmp_path):
    plan = service.systemd_plan(spec, tmp_path / "units")
    names = sorted(p.name for p in plan.files)
    assert names == ["nightshift-dagster-daemon.service", "nightshift-dagster-webserver.service"]
    daemon = plan.files[tmp_path / "units" / names[0]].decode()
    assert f"ExecStart={BIN / 'dagster-daemon'} run -w {ROOT / 'workspace.yaml'}" in daemon
    assert '"NIGHTSHIFT_HOME=' + str(spec.home).replace("%", "%%") + '"' in daemon
    assert "WantedBy=default.target" in daemon and "Restart=on-failure" in daemon
    assert plan.load[-1][:4] == ["systemctl", "--user", "enable", "--now"]
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    for path, data in plan.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    out = subprocess.run([analyze, "verify", *plan.files], capture_output=True, text=True)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr


def test_the_spec_for_this_checkout_passes_settings_but_not_secrets(monkeypatch, tmp_path):
    monkeypatch.setenv("NIGHTSHIFT_HOME", str(tmp_path))
    environ = {"NIGHTSHIFT_TIMEZONE": "Europe/Berlin", "ANTHROPIC_API_KEY": "sk-x", "PATH": "/a"}
    spec = service.service_spec(environ=environ)
    assert spec.env["NIGHTSHIFT_TIMEZONE"] == "Europe/Berlin"
    assert "ANTHROPIC_API_KEY" not in spec.env
    assert spec.env["DAGSTER_HOME"] == str(tmp_path / "dagster")
    assert spec.env["PATH"].split(":")[0] == str(BIN) and spec.logs == tmp_path / "logs"


@pytest.mark.skipif(platform.system() != "Linux", reason="launchd would load the agents for real")
def test_cli_install_status_uninstall_without_a_user_manager(monkeypatch, tmp_path):
    # No bus address: systemctl --user cannot reach a manager, as in a container or bare SSH.
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("NIGHTSHIFT_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    unit_dir = tmp_path / "config" / "systemd" / "user"
    installed = runner.invoke(service_app, ["install"])
    assert installed.exit_code == 0, installed.output
    assert (unit_dir / "nightshift-dagster-daemon.service").is_file()
    assert "systemctl --user enable --now" in installed.output
    assert (tmp_path / "home" / "dagster" / "dagster.yaml").is_file()
    assert (tmp_path / "home" / "logs").is_dir()
    state = runner.invoke(service_app, ["status"])
    assert "nightshift-dagster-webserver.service" in state.output and "installed" in state.output
    removed = runner.invoke(service_app, ["uninstall"])
    assert removed.exit_code == 0 and "removed" in removed.output
    assert not list(unit_dir.iterdir())
    assert "nothing installed" in runner.invoke(service_app, ["uninstall"]).output


def test_cli_print_shows_the_files_without_installing(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    shown = CliRunner().invoke(service_app, ["install", "--print", "--port", "3999"])
    assert shown.exit_code == 0, shown.output
    assert "dagster-daemon" in shown.output and "3999" in shown.output
    assert not any(tmp_path.rglob("*nightshift*"))


def _recording_notifiers(tmp_path: Path) -> Path:
    """osascript and notify-send stand-ins that record their arguments, first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("osascript", "notify-send"):
        tool = bin_dir / name
        tool.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path}/{name}.args"\n')
        tool.chmod(0o755)
    return bin_dir


def test_notify_uses_the_platform_notifier_and_passes_text_as_arguments(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(_recording_notifiers(tmp_path)))
    message = 'lora_adapter failed: "quotes" and \\ stay text'
    assert notify("nightshift", message, system="Darwin") == "osascript"
    args = (tmp_path / "osascript.args").read_text().splitlines()
    assert args[-2:] == ["nightshift", message] and "display notification" in " ".join(args)
    assert notify("nightshift", message, system="Linux") == "notify-send"
    assert (tmp_path / "notify-send.args").read_text().splitlines()[-1] == message


def test_notify_falls_back_to_the_log(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert notify("t", "m", system="Linux").startswith("log only")
    failing = tmp_path / "notify-send"
    failing.write_text("#!/bin/sh\necho 'no DBus session' >&2\nexit 1\n")
    failing.chmod(0o755)
    assert notify("t", "m", system="Linux") == "log only: notify-send exited 1: no DBus session"
