"""Clients trust only a serving process that proves it holds the token.

Something else on the serving port (a squatter) gets no token and no request, and no process
is signalled on its word; a squatter relaying the real process's status cannot keep the
proof valid. Against loopback HTTP servers and the real detached serving process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from urllib.parse import urlsplit

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.cli_serve import serve_app
from pipeline.serve import (
    ServeConfig,
    UnprovenServer,
    ensure_server,
    request_rollback,
    request_swap,
    server_status,
    signalable,
    stop_server,
)
from pipeline.serve_token import ensure_token, new_nonce, status_proof
from tests.serving import SHIP, Squatter, send

REFUSAL = r"is not nightshift's serving process \(it cannot prove it holds the token\)"


@pytest.fixture
def bystander():
    """A process a squatter names as the serving process: it must survive every test."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def squatter(bystander):
    stranger = Squatter({"pid": bystander.pid, "registry": "/elsewhere", "current": None})
    yield stranger
    stranger.close()


def _relay(real: str, pid: int | None = None):
    """A status that is the real serving process's reply to the client's own nonce."""

    def status(path: str) -> dict:
        with urllib.request.urlopen(real + path, timeout=10) as resp:
            body = json.loads(resp.read())
        return body if pid is None else {**body, "pid": pid}

    return status


def test_stop_server_signals_nothing_a_squatter_names(squatter, bystander):
    for pid in (bystander.pid, -1, 0, 1):
        squatter.status = {"pid": pid, "registry": "/elsewhere"}
        with pytest.raises(UnprovenServer, match=REFUSAL):
            stop_server(squatter.endpoint, timeout=1)
    assert bystander.poll() is None  # alive
    assert squatter.tokens() == []
    cli = CliRunner().invoke(serve_app, ["stop", "--port", str(urlsplit(squatter.endpoint).port)])
    assert cli.exit_code == 1 and "nothing was sent" in cli.output
    assert bystander.poll() is None


def test_swaps_and_rollbacks_send_a_squatter_nothing(squatter):
    netloc = urlsplit(squatter.endpoint).netloc
    for call in (lambda: request_swap(squatter.endpoint, "v1"),
                 lambda: request_rollback(squatter.endpoint),
                 lambda: request_swap(squatter.endpoint, "v1", token=ensure_token())):  # fmt: skip
        with pytest.raises(UnprovenServer) as refused:
            call()
        message = str(refused.value)
        assert message.startswith(f"the process answering on {netloc} is not nightshift's")
        assert "(it cannot prove it holds the token); nothing was sent" in message
    assert {method for method, _, _ in squatter.seen} == {"GET"}  # status only: no POST
    assert squatter.tokens() == []
    port = str(urlsplit(squatter.endpoint).port)
    for args in (["swap", "v1"], ["rollback"], ["status"]):
        cli = CliRunner().invoke(serve_app, [*args, "--port", port])
        assert cli.exit_code == 1 and "cannot prove it holds the token" in cli.output, args
    assert squatter.tokens() == []


def test_ensure_server_refuses_a_squatter(squatter, control_registry):
    cfg = ServeConfig(port=urlsplit(squatter.endpoint).port, registry=control_registry.root)
    with pytest.raises(UnprovenServer, match=REFUSAL):
        ensure_server(cfg, timeout=10)
    assert squatter.tokens() == []


def test_a_relayed_proof_is_refused(control_endpoint, squatter, bystander):
    """The proof binds the port that answers and the pid it names: a squatter that relays
    the real serving process's status (with its pid, or another) is still refused."""
    for pid in (None, bystander.pid):
        squatter.status = _relay(control_endpoint, pid)
        with pytest.raises(UnprovenServer, match=REFUSAL):
            server_status(squatter.endpoint)
        with pytest.raises(UnprovenServer, match=REFUSAL):
            stop_server(squatter.endpoint, timeout=1)
        with pytest.raises(UnprovenServer, match=REFUSAL):
            request_swap(squatter.endpoint, "v1")
    assert bystander.poll() is None and squatter.tokens() == []
    assert server_status(control_endpoint)["current"] is None  # the real one: proven, untouched


def test_the_real_serving_process_proves_its_token(control_endpoint):
    port = urlsplit(control_endpoint).port
    nonce = new_nonce()
    reply = send(control_endpoint, "GET", f"/nightshift/status?nonce={nonce}")
    status = json.loads(reply.raw)
    assert status["proof"] == status_proof(ensure_token(), nonce, status["pid"], port)
    assert status["proof"] != status_proof(ensure_token(), nonce, status["pid"], port + 1)
    assert status["proof"] != status_proof("x" * 43, nonce, status["pid"], port)
    assert ensure_token() not in reply.raw.decode()
    assert "proof" not in json.loads(send(control_endpoint, "GET", "/nightshift/status").raw)
    for bad in ("short", "a" * 129, "not%20url%20safe%20nonce%20at%20all", f"{nonce}&nonce=x"):
        assert send(control_endpoint, "GET", f"/nightshift/status?nonce={bad}").status == 400


@pytest.mark.parametrize("pid", [-1, 0, 1, True, "4242", None, 2.5, [4242]])
def test_no_group_init_or_self_is_ever_signalled(pid):
    assert not signalable(pid)


def test_a_real_pid_is_signalable(bystander):
    assert signalable(bystander.pid) and not signalable(os.getpid())


def test_the_rollback_command_refuses_a_squatter(squatter, tmp_path, monkeypatch):
    """`nightshift rollback` moves the champion, then swaps only a proven serving process."""
    monkeypatch.setenv("NIGHTSHIFT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NIGHTSHIFT_SERVE_PORT", str(urlsplit(squatter.endpoint).port))
    from pipeline.registry import Registry

    reg = Registry(tmp_path / "home" / "artifacts" / "registry")
    gates = {"perplexity": True, "smoke": {"passed": True, "detail": "ok"}}
    for name in ("a", "b"):
        src = tmp_path / f"{name}.gguf"
        src.write_bytes(b"GGUF" + name.encode() * 4096)
        version = reg.register(
            {SHIP: src}, gates=gates, base_model="tiny", data_version="d", code_version="c"
        )
        reg.set_champion(version)
    result = CliRunner().invoke(app, ["rollback"])
    assert result.exit_code == 1
    assert "cannot prove it holds the token" in result.output, result.output
    assert reg.champion() == "v1"  # the pointer moved; serving was refused, plainly
    assert squatter.tokens() == [] and {m for m, _, _ in squatter.seen} == {"GET"}


def test_mlx_lm_server_answers_no_other_web_origin(tmp_path):
    """mlx_lm.server has no API key: its CORS is limited to its own origin (it serves no
    pages) instead of its default `*`, so no other page can read its answers."""
    from pipeline.serve_backend import Backend

    backend = Backend(ServeConfig(backend="mlx_lm.server"), tmp_path, "v1")
    cmd = backend.command()
    origins = cmd[cmd.index("--allowed-origins") + 1]
    assert origins == f"http://127.0.0.1:{backend.port}" and backend.key is None
