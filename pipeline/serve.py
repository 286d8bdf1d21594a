"""Serving: one stable local endpoint in front of a model server that can be swapped live.

This module holds the settings and the clients (the CLI and the Dagster asset talk to the
serving process over loopback HTTP). The serving process itself is `serve_backend` (model
servers and swaps) behind `serve_proxy` (the HTTP side); `serve_guard` decides what gets in
and `serve_token` holds the credential that swaps and rollbacks need.

Only registry versions are served: a swap names `v3`, and the serving process resolves and
verifies the file through the registry, so no request can point it at an arbitrary path.
"""

from __future__ import annotations

import contextlib
import hmac
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.instance import artifacts_root
from pipeline.paths import nightshift_home
from pipeline.serve_guard import origin_allowlist
from pipeline.serve_token import ensure_token, new_nonce, status_proof, token_path

BACKENDS = ("llama-server", "mlx_lm.server")


class SwapError(RuntimeError):
    """A swap or rollback did not happen; whatever served before still serves.

    `status` is the HTTP status the serving process answers it with."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class UnprovenServer(SwapError):
    """Something answers on the serving port but cannot prove it holds the token: nothing is
    sent to it (no token, no request) and no process is signalled on its word."""

    def __init__(self, endpoint: str, token_given: bool) -> None:
        where = urlsplit(endpoint).netloc
        message = (
            f"the process answering on {where} is not nightshift's serving process (it cannot "
            "prove it holds the token); nothing was sent"
        )
        if not token_given:
            message += (
                f". This client's token is {token_path()}; a serving process started with "
                "another NIGHTSHIFT_HOME holds that home's token: use that NIGHTSHIFT_HOME"
            )
        super().__init__(message, 502)


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"  # the stable endpoint; backends always bind loopback
    port: int = 8080  # the stable port clients use
    threads: int = 2  # compute threads per model server
    ctx: int = 512  # context tokens per model server (llama-server -c)
    backend: str = "llama-server"  # or "mlx_lm.server" (an MLX model directory)
    health_timeout_s: float = 120.0  # loading a large GGUF from a cold disk takes a while
    smoke_timeout_s: float = 60.0
    drain_timeout_s: float = 60.0  # a long streamed answer keeps the old server busy
    registry: Path | None = None  # the registry served from; None: the artifact store's
    # Web origins (scheme://host[:port]) whose pages may call the endpoint from a browser. None
    # by default: no CORS headers at all, and a request from any other web page is refused.
    cors_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; use one of {', '.join(BACKENDS)}")
        object.__setattr__(self, "cors_origins", origin_allowlist(self.cors_origins))

    @property
    def endpoint(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def registry_root(self) -> Path:
        root = self.registry or artifacts_root() / "registry"
        return Path(root).expanduser().resolve()


def serve_dir() -> Path:
    return nightshift_home() / "serve"


def state_path(port: int) -> Path:
    """What the server on this stable port serves, and its pid; it outlives the process."""
    return serve_dir() / f"{port}.json"


def read_state(port: int) -> dict:
    path = state_path(port)
    try:
        state = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}  # damaged: serve nothing until the next swap rather than refuse to start
    return state if isinstance(state, dict) else {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_json(
    url: str, body: dict | None = None, timeout: float = 5.0, token: str | None = None
) -> tuple[int, dict]:
    """One JSON request; HTTP error statuses are returned, a broken exchange is an OSError."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with _NO_REDIRECTS.open(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read())
        except ValueError:
            return exc.code, {"error": f"answered {exc.code} {exc.reason}"}
    except http.client.HTTPException as exc:  # a server going away mid-answer
        raise ConnectionError(f"{url}: {exc!r}") from exc


class _Refuse(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect would carry the Authorization header elsewhere


_NO_REDIRECTS = urllib.request.build_opener(_Refuse)


def server_status(endpoint: str, timeout: float = 2.0, *, token: str | None = None) -> dict:
    """The serving process's status, once it has proven it holds `token` (default: this
    user's); OSError when nothing answers there, UnprovenServer when something else does."""
    with _connect(endpoint, timeout) as conn:
        return _proven_status(conn, endpoint, token)


def _connect(endpoint: str, timeout: float) -> contextlib.closing[http.client.HTTPConnection]:
    host = urlsplit(endpoint).hostname or "127.0.0.1"
    return contextlib.closing(http.client.HTTPConnection(host, _port(endpoint), timeout=timeout))


def _port(endpoint: str) -> int:
    parts = urlsplit(endpoint)
    return parts.port or (443 if parts.scheme == "https" else 80)


def _exchange(
    conn: http.client.HTTPConnection, method: str, path: str, body=None, token=None
) -> tuple[int, dict]:
    """One JSON request on `conn`; a broken exchange is an OSError."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    except http.client.HTTPException as exc:  # a server going away mid-answer
        raise ConnectionError(f"{conn.host}:{conn.port}: {exc!r}") from exc
    try:
        reply = json.loads(raw or b"{}")
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        reply = {"error": f"answered {resp.status} {resp.reason}"}
    return resp.status, reply


def _proven_status(conn: http.client.HTTPConnection, endpoint: str, token: str | None) -> dict:
    nonce = new_nonce()
    status, body = _exchange(conn, "GET", f"/nightshift/status?nonce={nonce}")
    if status != 200:
        raise ConnectionError(f"{endpoint} answered {status}: {body.get('error', '')}")
    expected = status_proof(token or ensure_token(), nonce, body.get("pid"), _port(endpoint))
    proof = body.get("proof")
    if not isinstance(proof, str) or not hmac.compare_digest(proof.encode(), expected.encode()):
        raise UnprovenServer(endpoint, token is not None)
    return body


def _control(endpoint: str, action: str, body: dict, timeout: float, token: str | None) -> dict:
    given = token is not None
    with _connect(endpoint, timeout) as conn:
        # Proof and request on one connection, never reopened: the token goes to the very
        # process that proved it holds it, not to whatever took the port in between.
        _proven_status(conn, endpoint, token)
        conn.auto_open = 0
        status, reply = _exchange(
            conn, "POST", f"/nightshift/{action}", body, token or ensure_token()
        )
    if status == 200:
        return reply
    message = reply.get("error") or f"{action} answered {status}"
    if status in (401, 403) and not given:
        message += (
            f" (this client sent the token in {token_path()}; a serving process started "
            "with another NIGHTSHIFT_HOME reads another: restart it with `nightshift serve stop`)"
        )
    raise SwapError(message, status)


def request_swap(
    endpoint: str, version: str, timeout: float = 300.0, *, token: str | None = None
) -> dict:
    """Ask the server at `endpoint` to serve registry version `version`; its timings, or
    SwapError. The token defaults to this user's serving token (made if there is none)."""
    return _control(endpoint, "swap", {"version": version}, timeout, token)


def request_rollback(endpoint: str, timeout: float = 300.0, *, token: str | None = None) -> dict:
    return _control(endpoint, "rollback", {}, timeout, token)


def ensure_server(cfg: ServeConfig, timeout: float = 240.0) -> dict:
    """Start a detached serving process on `cfg.port` unless one already answers there.

    It answers once it serves again what this port served last (a load of up to minutes).
    Anything else answering there (it cannot prove it holds the token) is UnprovenServer.
    """
    try:
        status = server_status(cfg.endpoint)
    except OSError:
        pass
    else:
        if status.get("registry") != str(cfg.registry_root):
            raise SwapError(
                f"the serving process on {cfg.endpoint} serves from the registry "
                f"{status.get('registry')}, not {cfg.registry_root}; stop it with "
                f"`nightshift serve stop --port {cfg.port}`"
            )
        return status
    ensure_token()  # before the server starts, so neither side races to make it
    cmd = [sys.executable, "-m", "pipeline.cli_serve", "start", "--host", cfg.host]
    cmd += ["--port", str(cfg.port), "--threads", str(cfg.threads), "--ctx", str(cfg.ctx)]
    cmd += ["--backend", cfg.backend, "--registry", str(cfg.registry_root)]
    for origin in cfg.cors_origins:
        cmd += ["--cors-origin", origin]
    log = serve_dir() / f"{cfg.port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        # Its own session: the server outlives the Dagster run or shell that started it.
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=Path(__file__).resolve().parents[1],
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise SwapError(f"the serving process exited with code {proc.returncode}:\n{tail}")
        try:
            return server_status(cfg.endpoint)
        except OSError:
            time.sleep(0.1)
    raise SwapError(f"the serving process did not answer on {cfg.endpoint} in {timeout:.0f}s")


def signalable(pid: object) -> bool:
    """Whether `pid` may be sent a signal: one real process, never a group (0, -n), init
    (1) or this very process, whatever a status reply says."""
    return type(pid) is int and pid > 1 and pid != os.getpid()


def stop_server(endpoint: str, timeout: float = 30.0) -> bool:
    """Stop the serving process answering at `endpoint`; False when none answers.

    Only a process that proves it holds the token is signalled, and only its own pid."""
    try:
        pid = server_status(endpoint)["pid"]
    except OSError:
        return False
    if not signalable(pid):
        raise SwapError(f"the serving process on {endpoint} reports pid {pid!r}; nothing signalled")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            server_status(endpoint, timeout=0.5)
        except OSError:
            return True
        time.sleep(0.05)
    raise SwapError(f"serving process {pid} still answers {timeout:.0f}s after SIGTERM")
