"""Serving: one stable local endpoint in front of a model server that can be swapped live.

A swap starts the new model on a spare port, waits for its health check and a smoke prompt,
then points the stable endpoint at it in one assignment and stops the old server once its
in-flight requests are done. Any failure before the switch leaves the old server serving.
Rollback is a swap to the previous deployment. The HTTP side lives in `serve_proxy`.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.paths import atomic_write_text, nightshift_home
from pipeline.toolchain import locate_toolchain

BACKENDS = ("llama-server", "mlx_lm.server")
SMOKE_PROMPT = [{"role": "user", "content": "Say hello."}]


class SwapError(RuntimeError):
    """A swap or rollback did not happen; whatever served before still serves."""


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

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; use one of {', '.join(BACKENDS)}")

    @property
    def endpoint(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"


def serve_dir() -> Path:
    return nightshift_home() / "serve"


def state_path(port: int) -> Path:
    """What the server on this stable port serves, and its pid; it outlives the process."""
    return serve_dir() / f"{port}.json"


def read_state(port: int) -> dict:
    path = state_path(port)
    return json.loads(path.read_text()) if path.is_file() else {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _http_json(url: str, body: dict | None = None, timeout: float = 5.0) -> tuple[int, dict]:
    """One JSON request; HTTP error statuses are returned, a broken exchange is an OSError."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"error": raw.decode(errors="replace")[:500]}
    except http.client.HTTPException as exc:  # a server going away mid-answer
        raise ConnectionError(f"{url}: {exc!r}") from exc


class Backend:
    """One model server process on a loopback port, with a count of requests in flight."""

    def __init__(self, cfg: ServeConfig, model: Path, version: str) -> None:
        self.cfg, self.model, self.version = cfg, Path(model), version
        self.port = free_port()
        self.inflight = 0  # guarded by Deployment._lock
        self.repack = True  # llama.cpp's CPU weight repacking (AMX, interleaved quants)
        safe = re.sub(r"[^\w.-]", "_", version)
        self.log = serve_dir() / "logs" / f"{safe}-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        port = str(self.port)
        if self.cfg.backend == "llama-server":
            cmd = [str(locate_toolchain().bin("llama-server")), "-m", str(self.model)]
            cmd += ["--host", "127.0.0.1", "--port", port, "--alias", self.version]
            cmd += ["-t", str(self.cfg.threads), "-c", str(self.cfg.ctx)]
            return cmd if self.repack else [*cmd, "--no-repack"]
        cmd = [sys.executable, "-m", "mlx_lm.server", "--model", str(self.model)]
        return cmd + ["--host", "127.0.0.1", "--port", port]

    def start(self) -> None:
        if not self.model.exists():
            raise SwapError(f"model {self.model} does not exist")
        cmd = self.command()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )

    def log_tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.is_file() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _failed(self, what: str) -> SwapError:
        return SwapError(f"{self.version} on port {self.port}: {what}\n{self.log_tail()}")

    def wait_healthy(self, timeout: float) -> None:
        # Both servers answer /health with 503 while the model loads, 200 once it can serve.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if (code := self.proc.poll()) is not None:
                # llama.cpp's AMX kernels segfault on some models (ggml-org/llama.cpp#20824,
                # the tiny test model on Sapphire Rapids); without repacking they run.
                if code < 0 and self.repack and self.cfg.backend == "llama-server":
                    self.repack = False
                    self.start()
                    continue
                raise self._failed(f"exited with code {code} before it was healthy")
            try:
                status, _ = _http_json(self.url + "/health", timeout=2.0)
                if status == 200:
                    return
            except (OSError, ValueError):
                pass  # not listening yet
            time.sleep(0.05)
        raise self._failed(f"not healthy after {timeout:.0f}s")

    def smoke(self, timeout: float) -> None:
        """One short chat completion must come back with a choice, from this very server."""
        body = {"messages": SMOKE_PROMPT, "max_tokens": 8, "temperature": 0.0}
        try:
            status, reply = _http_json(self.url + "/v1/chat/completions", body, timeout)
        except (OSError, ValueError) as exc:
            raise self._failed(f"smoke prompt failed: {exc}") from exc
        if status != 200 or not reply.get("choices"):
            raise self._failed(f"smoke prompt answered {status}: {json.dumps(reply)[:300]}")
        # llama-server names its --alias; anything else on this port would be a stranger.
        if self.cfg.backend == "llama-server" and reply.get("model") != self.version:
            raise self._failed(f"port {self.port} answers as {reply.get('model')!r}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def describe(self) -> dict:
        return {
            "version": self.version,
            "model": str(self.model),
            "port": self.port,
            "repack": self.repack,
        }


@dataclass
class Deployed:
    version: str
    model: str


class Deployment:
    """The backend the stable endpoint forwards to, and the swaps between backends."""

    def __init__(self, cfg: ServeConfig) -> None:
        self.cfg = cfg
        self._lock = threading.Lock()  # makes "read current + count it in flight" one step
        self._swap_lock = threading.Lock()
        self.current: Backend | None = None
        self._closed = False
        self.since: float | None = None
        state = read_state(cfg.port)
        self.previous = Deployed(**state["previous"]) if state.get("previous") else None

    def acquire(self) -> Backend | None:
        """The backend for one request; pair with `release`. None when nothing is deployed."""
        with self._lock:
            backend = self.current
            if backend is not None:
                backend.inflight += 1
            return backend

    def release(self, backend: Backend) -> None:
        with self._lock:
            backend.inflight -= 1

    def status(self) -> dict:
        current = self.current
        return {
            "endpoint": self.cfg.endpoint,
            "backend": self.cfg.backend,
            "current": {**current.describe(), "since": self.since} if current else None,
            "previous": asdict(self.previous) if self.previous else None,
            "pid": os.getpid(),
        }

    def swap(self, model: Path | str, version: str) -> dict:
        """Start, check, switch, drain, stop; raises SwapError with the old backend serving."""
        if not self._swap_lock.acquire(blocking=False):
            raise SwapError("another swap is in progress")
        try:
            if self._closed:
                raise SwapError("the serving process is shutting down")
            return self._swap(Path(model).expanduser().resolve(), version)
        finally:
            self._swap_lock.release()

    def rollback(self) -> dict:
        if self.previous is None:
            raise SwapError("nothing to roll back to: no previous deployment is recorded")
        return self.swap(self.previous.model, self.previous.version)

    def _swap(self, model: Path, version: str) -> dict:
        started = time.time()
        new = Backend(self.cfg, model, version)
        try:
            new.start()
            new.wait_healthy(self.cfg.health_timeout_s)
            healthy_at = time.time()
            new.smoke(self.cfg.smoke_timeout_s)
            smoked_at = time.time()
        except BaseException:
            new.stop()
            raise
        with self._lock:
            old, self.current = self.current, new
            self.since = switched_at = time.time()
        if old is not None:
            self.previous = Deployed(old.version, str(old.model))
        self._write_state()
        drained = self._drain(old) if old is not None else True
        if old is not None:
            old.stop()
        return {
            "version": version,
            "model": str(model),
            "port": new.port,
            "repack": new.repack,  # False: restarted without it after a crash on load
            "started_at": started,
            "healthy_at": healthy_at,
            "switched_at": switched_at,
            "stopped_at": time.time(),
            "health_s": round(healthy_at - started, 3),
            "smoke_s": round(smoked_at - healthy_at, 3),
            "drained": drained,  # False: the drain timed out and in-flight requests were cut
            "replaced": old.describe() if old is not None else None,
        }

    def _drain(self, old: Backend) -> bool:
        deadline = time.monotonic() + self.cfg.drain_timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if old.inflight == 0:
                    return True
            time.sleep(0.01)
        return False

    def _write_state(self) -> None:
        current = self.current
        state = {
            "pid": os.getpid(),
            "host": self.cfg.host,
            "port": self.cfg.port,
            "backend": self.cfg.backend,
            "current": asdict(Deployed(current.version, str(current.model))) if current else None,
            "previous": asdict(self.previous) if self.previous else None,
        }
        atomic_write_text(state_path(self.cfg.port), json.dumps(state, indent=2))

    def resume(self) -> dict | None:
        """Serve again what this stable port served before a restart, if anything."""
        last = read_state(self.cfg.port).get("current")
        return self.swap(last["model"], last["version"]) if last else None

    def close(self) -> None:
        with self._swap_lock:  # a swap under way finishes first, and none starts after
            self._closed = True
            with self._lock:
                backend, self.current = self.current, None
            if backend is not None:
                self._drain(backend)
                backend.stop()
        state = read_state(self.cfg.port)
        if state.get("pid") == os.getpid():
            state["pid"] = None
            atomic_write_text(state_path(self.cfg.port), json.dumps(state, indent=2))


# Clients: other processes (the Dagster asset, the CLI) talk to the server over HTTP.


def server_status(endpoint: str, timeout: float = 2.0) -> dict:
    """The serving process's status; OSError when nothing answers there."""
    status, body = _http_json(endpoint.rstrip("/") + "/nightshift/status", timeout=timeout)
    if status != 200:
        raise ConnectionError(f"{endpoint} answered {status}: {body}")
    return body


def _control(endpoint: str, action: str, body: dict, timeout: float) -> dict:
    url = f"{endpoint.rstrip('/')}/nightshift/{action}"
    status, reply = _http_json(url, body, timeout=timeout)
    if status != 200:
        raise SwapError(reply.get("error") or f"{action} answered {status}")
    return reply


def request_swap(endpoint: str, model: Path | str, version: str, timeout: float = 300.0) -> dict:
    """Ask the server at `endpoint` to swap to `model`; its timings, or SwapError."""
    body = {"model": str(Path(model).expanduser().resolve()), "version": version}
    return _control(endpoint, "swap", body, timeout)


def request_rollback(endpoint: str, timeout: float = 300.0) -> dict:
    return _control(endpoint, "rollback", {}, timeout)


def ensure_server(cfg: ServeConfig, timeout: float = 240.0) -> dict:
    """Start a detached serving process on `cfg.port` unless one already answers there.

    It answers once it serves again what this port served last (a load of up to minutes).
    """
    try:
        return server_status(cfg.endpoint)
    except OSError:
        pass
    cmd = [sys.executable, "-m", "pipeline.cli_serve", "start", "--host", cfg.host]
    cmd += ["--port", str(cfg.port), "--threads", str(cfg.threads), "--ctx", str(cfg.ctx)]
    cmd += ["--backend", cfg.backend]
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


def stop_server(endpoint: str, timeout: float = 30.0) -> bool:
    """Stop the serving process answering at `endpoint`; False when none answers."""
    try:
        pid = server_status(endpoint)["pid"]
    except OSError:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            server_status(endpoint, timeout=0.5)
        except OSError:
            return True
        time.sleep(0.05)
    raise SwapError(f"serving process {pid} still answers {timeout:.0f}s after SIGTERM")
