"""`nightshift rollback` end to end: a real registry, a real serving process, the real CLI.

The registry lives under a per-test NIGHTSHIFT_HOME, where the CLI finds it by default; the
serving process is the detached one `ensure_server` starts, running the real llama-server on
the tiny GGUFs, and the test reaches it only over loopback HTTP, as a client would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.registry import Registry
from pipeline.serve import (
    ServeConfig,
    ensure_server,
    free_port,
    request_swap,
    server_status,
    stop_server,
)
from tests.core.test_serve import _chat  # one chat completion: status, version header, body

pytestmark = pytest.mark.slow

runner = CliRunner()
SHIP = "model-Q4_K_M.gguf"  # the file `_serve_champion` serves from a version (default quant)


@pytest.fixture
def registry(tmp_path, monkeypatch, tiny_f16, tiny_q4) -> Registry:
    """v1 (the F16 model) then v2 (the Q4 model) promoted in turn; v2 is the champion."""
    home = tmp_path / "home"
    monkeypatch.setenv("NIGHTSHIFT_HOME", str(home))
    monkeypatch.delenv("NIGHTSHIFT_SHIP_QUANT", raising=False)
    reg = Registry(home / "artifacts" / "registry")  # the CLI's default root
    common = {"base_model": "tiny", "data_version": "d1", "code_version": "c1"}
    gates = {"perplexity": True, "smoke": {"passed": True, "detail": "ok"}}
    assert reg.register({SHIP: tiny_f16}, gates=gates, **common) == "v1"
    assert reg.register({SHIP: tiny_q4}, gates=gates, **common) == "v2"
    reg.set_champion("v1")
    reg.set_champion("v2")
    return reg


@pytest.fixture
def endpoint(registry, monkeypatch):
    """A detached serving process on a free stable port, serving the champion v2 as "v2"."""
    cfg = ServeConfig(port=free_port(), threads=1, ctx=512)  # the default registry: the CLI's
    assert cfg.registry_root == registry.root.resolve()
    monkeypatch.setenv("NIGHTSHIFT_SERVE_PORT", str(cfg.port))
    try:
        ensure_server(cfg)
        request_swap(cfg.endpoint, "v2")
        yield cfg.endpoint
    finally:
        stop_server(cfg.endpoint)


def _assert_published(registry: Registry, version: str) -> None:
    """champion.json and latest.json both name `version`, with that version's own file."""
    assert registry.champion() == version
    latest = registry.latest()
    assert latest is not None and latest["version"] == version
    [entry] = latest["files"]
    own = registry.manifest(version)["files"][SHIP]
    assert entry["name"] == SHIP
    assert (entry["sha256"], entry["bytes"]) == (own["sha256"], own["bytes"])
    assert entry["url"] == (registry.root.resolve() / version / SHIP).as_uri()


def _assert_serving(endpoint: str, registry: Registry, version: str) -> None:
    status, header, reply = _chat(endpoint)
    assert (status, header, reply["model"]) == (200, version, version)  # header and --alias
    current = server_status(endpoint)["current"]
    assert current["version"] == version
    assert Path(current["model"]) == (registry.version_dir(version) / SHIP).resolve()


def test_rollback_swaps_the_running_server_and_back(registry, endpoint):
    _assert_serving(endpoint, registry, "v2")

    back = runner.invoke(app, ["rollback"])
    assert back.exit_code == 0, back.output
    assert "champion: v2 -> v1" in back.output
    assert f"serving v1 at {endpoint}" in back.output
    _assert_published(registry, "v1")
    _assert_serving(endpoint, registry, "v1")

    forward = runner.invoke(app, ["rollback", "--to", "v2"])
    assert forward.exit_code == 0, forward.output
    assert "champion: v1 -> v2" in forward.output
    assert f"serving v2 at {endpoint}" in forward.output
    _assert_published(registry, "v2")
    _assert_serving(endpoint, registry, "v2")
    assert registry.champion_stack() == ["v1", "v2"]


def test_rollback_without_a_server_moves_the_champion_and_says_how_to_serve(registry, monkeypatch):
    port = free_port()  # nothing listens here
    monkeypatch.setenv("NIGHTSHIFT_SERVE_PORT", str(port))
    result = runner.invoke(app, ["rollback"])
    assert result.exit_code == 0, result.output
    assert "champion: v2 -> v1" in result.output
    endpoint = f"http://127.0.0.1:{port}"
    assert f"no model server answers at {endpoint}; serve v1 with:" in result.output
    hint = f"nightshift serve start v1 --port {port}"  # a version of the default registry
    assert f"  {hint}\n" in result.output
    _assert_published(registry, "v1")

    # Following the hint serves v1 where the next rollback looks (`nightshift serve` is
    # `python -m pipeline.cli_serve`, as `ensure_server` runs it; one thread on shared cores).
    cmd = [sys.executable, "-m", "pipeline.cli_serve", *hint.split()[2:], "--threads", "1"]
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(cmd, cwd=repo, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"`{hint}` exited with code {proc.returncode}"
            try:
                server_status(endpoint)
                break
            except OSError:
                assert time.monotonic() < deadline, f"`{hint}` did not answer on {endpoint}"
                time.sleep(0.1)
        _assert_serving(endpoint, registry, "v1")
        again = runner.invoke(app, ["rollback", "--to", "v2"])
        assert again.exit_code == 0, again.output
        assert f"serving v2 at {endpoint}" in again.output
        _assert_serving(endpoint, registry, "v2")
    finally:
        stop_server(endpoint)
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_models_list_marks_the_champion(registry):
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    rows = {line[2:].split()[0]: line[:2] for line in lines[1:-1]}
    assert rows == {"v1": "  ", "v2": "* "}
    assert all("2/2 pass" in line and SHIP in line for line in lines[1:-1])
    assert lines[-1] == "champion: v2"

    as_json = runner.invoke(app, ["models", "list", "--json"])
    assert as_json.exit_code == 0, as_json.output
    listed = json.loads(as_json.output)
    assert listed["champion"] == "v2"
    assert [m["version"] for m in listed["versions"]] == ["v1", "v2"]


def test_rollback_refuses_to_swap_a_server_of_another_registry(registry, tmp_path, monkeypatch):
    # That server would look the version up in its own registry and serve something else.
    other = tmp_path / "other-registry"
    cfg = ServeConfig(port=free_port(), registry=other)
    monkeypatch.setenv("NIGHTSHIFT_SERVE_PORT", str(cfg.port))
    try:
        ensure_server(cfg)
        result = runner.invoke(app, ["rollback"])
        assert result.exit_code == 1
        assert "v1 is the champion, but switching the served model failed" in result.output
        assert f"serves the registry {other.resolve()}, not {registry.root.resolve()}" in (
            result.output.replace("\n", "")
        )
        assert server_status(cfg.endpoint)["current"] is None
    finally:
        stop_server(cfg.endpoint)
