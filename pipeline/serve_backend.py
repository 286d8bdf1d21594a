"""The serving process's model servers, and the swaps between them.

A swap resolves a registry version to its verified file, starts it on a spare port, waits for
its health check and a smoke prompt, then points the stable endpoint at it in one assignment
and stops the old server once its in-flight requests are done. Any failure before the switch
leaves the old server serving. Rollback is a swap to the previous deployment's version.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.paths import atomic_write_text
from pipeline.registry import IntegrityError, Registry, RegistryError
from pipeline.serve import (
    ServeConfig,
    SwapError,
    free_port,
    http_json,
    read_state,
    serve_dir,
    state_path,
)
from pipeline.serve_guard import VERSION
from pipeline.toolchain import ToolchainError, locate_toolchain

SMOKE_PROMPT = [{"role": "user", "content": "Say hello."}]


class Backend:
    """One model server process on a loopback port, with a count of requests in flight.

    Model servers answer any web origin and check no Host, so a page that finds their port
    (a scan, DNS rebinding) could use them directly: llama-server gets a random per-backend API
    key that only the stable endpoint sends (it replaces the client's Authorization), through
    its environment so that `ps` does not show it."""

    def __init__(self, cfg: ServeConfig, model: Path, version: str) -> None:
        self.cfg, self.model, self.version = cfg, Path(model), version
        self.port = free_port()
        self.inflight = 0  # guarded by Deployment._lock
        self.repack = True  # llama.cpp's CPU weight repacking (AMX, interleaved quants)
        safe = re.sub(r"[^\w.-]", "_", version)
        self.log = serve_dir() / "logs" / f"{safe}-{self.port}.log"
        self.proc: subprocess.Popen | None = None
        self.key = secrets.token_urlsafe(32) if cfg.backend == "llama-server" else None

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
        # mlx_lm.server (0.32) has no API key: CORS is limited to its own origin, whose pages
        # it never serves, so no other page can read its answers. What remains: a page whose
        # DNS name is rebound to 127.0.0.1 on this port is same-origin and can use it, and a
        # blind cross-site POST still runs a completion (its answer unreadable).
        cmd = [sys.executable, "-m", "mlx_lm.server", "--model", str(self.model)]
        cmd += ["--allowed-origins", self.url]
        return cmd + ["--host", "127.0.0.1", "--port", port]

    def start(self) -> None:
        if not self.model.exists():
            raise SwapError(f"model {self.model} does not exist")
        try:
            cmd = self.command()
        except ToolchainError as exc:
            raise SwapError(str(exc), 503) from None
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as out:
            env = {**os.environ, "LLAMA_API_KEY": self.key} if self.key else None
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
            )

    def _failed(self, what: str) -> SwapError:
        # The model server's log may quote the model file (bad magic bytes and the like):
        # the reply names the log; only the serving process's own log shows its tail.
        text = self.log.read_text(errors="replace") if self.log.is_file() else ""
        tail = "\n".join(text.splitlines()[-15:])
        print(
            f"{self.version} on port {self.port}: {what}; the end of {self.log}:\n{tail}",
            flush=True,
        )
        return SwapError(f"{self.version} on port {self.port}: {what}; its log: {self.log}")

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
                status, _ = http_json(self.url + "/health", timeout=2.0, token=self.key)
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
            url = self.url + "/v1/chat/completions"
            status, reply = http_json(url, body, timeout, token=self.key)
        except (OSError, ValueError) as exc:
            raise self._failed(f"smoke prompt failed: {exc}") from exc
        if status != 200 or not reply.get("choices"):
            raise self._failed(f"smoke prompt answered {status} without a choice")
        # llama-server names its --alias; anything else on this port would be a stranger.
        if self.cfg.backend == "llama-server" and reply.get("model") != self.version:
            raise self._failed(f"port {self.port} answers as another model")

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
        self.registry = Registry(cfg.registry_root)
        self._lock = threading.Lock()  # makes "read current + count it in flight" one step
        self._swap_lock = threading.Lock()
        self.current: Backend | None = None
        self._closed = False
        self.since: float | None = None
        previous = read_state(cfg.port).get("previous")
        self.previous = _deployed(previous)

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
            "registry": str(self.registry.root),
            "current": {**current.describe(), "since": self.since} if current else None,
            "previous": asdict(self.previous) if self.previous else None,
            "pid": os.getpid(),
        }

    def swap(self, version: str) -> dict:
        """Resolve, verify, start, check, switch, drain, stop; raises SwapError (with its
        HTTP status) while the old backend keeps serving."""
        if not self._swap_lock.acquire(blocking=False):
            raise SwapError("another swap is in progress")
        try:
            if self._closed:
                raise SwapError("the serving process is shutting down", 503)
            return self._swap(self.resolve(version), version)
        finally:
            self._swap_lock.release()

    def resolve(self, version: str) -> Path:
        """The verified file of registry version `version`; SwapError naming what is wrong."""
        if not isinstance(version, str) or not VERSION.fullmatch(version):
            raise SwapError("a swap takes a registry version such as v3, never a path", 400)
        unchanged = self._unchanged()
        try:
            try:
                exists = self.registry.version_dir(version).is_dir()
            except RegistryError:  # a name the registry would never have made
                exists = False
            if not exists:
                raise SwapError(
                    f"no version {version} in the registry {self.registry.root} "
                    f"(`nightshift models list` shows them); {unchanged}",
                    404,
                )
            return self.registry.serving_file(version)
        except IntegrityError as exc:
            raise SwapError(f"{version} failed verification: {exc}; {unchanged}", 422) from None
        except RegistryError as exc:
            raise SwapError(f"{version} cannot be served: {exc}; {unchanged}", 409) from None

    def _unchanged(self) -> str:
        current = self.current
        return f"{current.version} still serves" if current else "nothing was serving"

    def rollback(self) -> dict:
        if self.previous is None:
            raise SwapError("nothing to roll back to: no previous deployment is recorded")
        return self.swap(self.previous.version)

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
            "registry": str(self.registry.root),
            "current": asdict(Deployed(current.version, str(current.model))) if current else None,
            "previous": asdict(self.previous) if self.previous else None,
        }
        atomic_write_text(state_path(self.cfg.port), json.dumps(state, indent=2))

    def resume(self) -> dict | None:
        """Serve again the version this stable port served before a restart, if any."""
        last = _deployed(read_state(self.cfg.port).get("current"))
        return self.swap(last.version) if last else None

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


def _deployed(record: object) -> Deployed | None:
    """A deployment recorded in the state file, or None when it is absent or damaged."""
    if isinstance(record, dict) and isinstance(record.get("version"), str):
        return Deployed(record["version"], str(record.get("model", "")))
    return None
