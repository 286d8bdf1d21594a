"""The serving token file: made 0600 from its first byte, refused when others could read it."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli_serve import serve_app
from pipeline.cli_service import service_app
from pipeline.serve import free_port
from pipeline.serve_token import (
    TOKEN_FILE,
    TokenError,
    ensure_token,
    read_token,
    token_matches,
    token_path,
)

ROOT = Path(__file__).resolve().parents[2]


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_the_token_is_made_0600_whatever_the_umask(tmp_path):
    path = tmp_path / "home" / TOKEN_FILE
    old = os.umask(0)  # the most permissive umask: the mode must not come from it
    try:
        token = ensure_token(path)
    finally:
        os.umask(old)
    assert _mode(path) == 0o600 and path.stat().st_uid == os.getuid()
    assert len(token) >= 43 and token == read_token(path) == ensure_token(path)
    assert [p.name for p in path.parent.iterdir()] == [TOKEN_FILE]  # no temporary left behind
    assert token_matches(token, path) and not token_matches(token + "x", path)
    assert not token_matches("", path) and not token_matches(None, path)
    assert ensure_token(tmp_path / "other") != token  # random, not derived


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_a_token_others_can_read_is_refused_with_the_fix(tmp_path, mode):
    path = tmp_path / TOKEN_FILE
    ensure_token(path)
    path.chmod(mode)
    with pytest.raises(TokenError, match=f"chmod 600 {path}"):
        ensure_token(path)
    path.chmod(0o600)
    assert ensure_token(path)


def test_a_symlink_a_folder_or_a_damaged_token_is_refused(tmp_path):
    real = tmp_path / "elsewhere"
    ensure_token(real)
    link = tmp_path / "link" / TOKEN_FILE
    link.parent.mkdir()
    link.symlink_to(real)
    with pytest.raises(TokenError, match="delete"):
        ensure_token(link)
    folder = tmp_path / "folder" / TOKEN_FILE
    folder.mkdir(parents=True, mode=0o700)
    with pytest.raises(TokenError, match="not a regular file"):
        ensure_token(folder)
    short = tmp_path / "short"
    short.write_text("abc\n")
    short.chmod(0o600)
    with pytest.raises(TokenError, match="damaged"):
        ensure_token(short)


def test_processes_racing_to_make_the_token_agree_on_one(tmp_path):
    path = tmp_path / "home" / TOKEN_FILE
    code = "import sys; from pipeline.serve_token import ensure_token; print(ensure_token())"
    env = {**os.environ, "NIGHTSHIFT_HOME": str(path.parent)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env
        )
        for _ in range(8)
    ]
    tokens = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert tokens == {read_token(path)} and _mode(path) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [TOKEN_FILE]


def test_serve_start_refuses_an_unsafe_token_before_it_listens(tmp_path, monkeypatch):
    monkeypatch.setenv("NIGHTSHIFT_HOME", str(tmp_path))
    ensure_token()
    token_path().chmod(0o644)
    result = CliRunner().invoke(serve_app, ["start", "--port", str(free_port())])
    assert result.exit_code == 1
    assert f"chmod 600 {token_path()}" in result.output


@pytest.mark.skipif(platform.system() != "Linux", reason="launchd would load the agents for real")
def test_service_install_makes_the_token_and_keeps_it(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)  # no user manager: files only
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("NIGHTSHIFT_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    printed = runner.invoke(service_app, ["install", "--print"])
    assert printed.exit_code == 0 and not token_path().exists()  # --print writes nothing
    first = runner.invoke(service_app, ["install"])
    assert first.exit_code == 0, first.output
    token = read_token()
    assert _mode(token_path()) == 0o600
    assert f"serving token: {token_path()}" in first.output and token not in first.output
    again = runner.invoke(service_app, ["install"])
    assert again.exit_code == 0 and read_token() == token  # clients keep working
    token_path().chmod(0o644)
    unsafe = runner.invoke(service_app, ["install"])
    assert unsafe.exit_code == 1 and "chmod 600" in unsafe.output
    runner.invoke(service_app, ["uninstall"])
