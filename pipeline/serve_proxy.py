"""The stable endpoint: a threaded reverse proxy to the current backend, plus swap control.

Every request is forwarded as it came (method, path, headers, body) to the backend that is
current when it arrives, and finishes there even if a swap happens meanwhile; responses
without a length (streamed completions) are relayed chunk by chunk as they arrive.
`/nightshift/status`, `/nightshift/swap` and `/nightshift/rollback` are answered here, the
last two only from loopback.
"""

from __future__ import annotations

import http.client
import json
import signal
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pipeline.serve import Backend, Deployment, ServeConfig, SwapError

# Per-connection headers (RFC 9110 7.6.1) are not forwarded; lengths and Host are set anew.
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length",
}  # fmt: skip
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
VERSION_HEADER = "X-Nightshift-Version"  # which deployment answered, whatever the backend


class StableServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # bursts of new client connections during load

    def __init__(self, cfg: ServeConfig, deployment: Deployment) -> None:
        self.deployment = deployment
        super().__init__((cfg.host, cfg.port), ProxyHandler)


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive with clients
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: StableServer

    def setup(self) -> None:
        super().setup()
        self.upstream: dict[Backend, http.client.HTTPConnection] = {}

    def finish(self) -> None:
        for conn in self.upstream.values():
            conn.close()
        super().finish()

    def log_message(self, format: str, *args) -> None:
        pass  # thousands of requests a second; the backends keep their own logs

    def do_GET(self) -> None:
        if self.path == "/nightshift/status":
            self._json(200, self.server.deployment.status())
        else:
            self._forward()

    def do_POST(self) -> None:
        deployment = self.server.deployment
        if self.path == "/nightshift/swap":
            self._control(lambda body: deployment.swap(body["model"], str(body["version"])))
        elif self.path == "/nightshift/rollback":
            self._control(lambda body: deployment.rollback())
        else:
            self._forward()

    def do_HEAD(self) -> None:
        self._forward()

    do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding"):
            self._json(411, {"error": "send a Content-Length; chunked uploads are not proxied"})
            return None
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _control(self, action: Callable[[dict], dict]) -> None:
        raw = self._read_body()
        if raw is None:
            return
        if self.client_address[0] not in LOOPBACK:
            self._json(403, {"error": "swaps are accepted from loopback only"})
            return
        try:
            self._json(200, action(json.loads(raw or b"{}")))
        except (KeyError, ValueError) as exc:
            self._json(400, {"error": f"bad request: {exc!r}; send model and version"})
        except Exception as exc:  # the old backend still serves; the caller gets the reason
            self._json(409 if isinstance(exc, SwapError) else 500, {"error": str(exc)})

    def _forward(self) -> None:
        body = self._read_body()
        if body is None:
            return
        deployment = self.server.deployment
        backend = deployment.acquire()
        if backend is None:
            self._json(503, {"error": "no model is deployed yet"})
            return
        try:
            try:
                resp = self._upstream_response(backend, body)
            except OSError as exc:
                self._json(502, {"error": f"backend {backend.version}: {exc!r}"})
                return
            try:
                self._relay(resp, backend.version)
            except BaseException:
                self.upstream.pop(backend).close()  # mid-response: the connection is unusable
                raise
        finally:
            deployment.release(backend)

    def _upstream_response(self, backend: Backend, body: bytes) -> http.client.HTTPResponse:
        for stale in [b for b in self.upstream if b is not backend]:
            self.upstream.pop(stale).close()  # a swapped-out backend is never used again
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if body or self.command in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        while True:
            reused = backend in self.upstream
            conn = self.upstream.get(backend) or http.client.HTTPConnection(
                "127.0.0.1", backend.port, timeout=600
            )
            self.upstream[backend] = conn
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                return conn.getresponse()
            except OSError:
                self.upstream.pop(backend).close()
                # The backend may close an idle kept-alive connection just as we reuse it;
                # a fresh connection gets one more try, and any other failure is real.
                if not reused:
                    raise

    def _relay(self, resp: http.client.HTTPResponse, version: str) -> None:
        self.send_response_only(resp.status, resp.reason)  # the backend's Date and Server pass
        for key, value in resp.getheaders():
            if key.lower() not in HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header(VERSION_HEADER, version)
        length = resp.getheader("Content-Length")
        if self.command == "HEAD" or resp.status in (204, 304):
            self.end_headers()
            resp.read()
        elif length is not None and resp.getheader("Transfer-Encoding") is None:
            self.send_header("Content-Length", length)
            self.end_headers()
            while chunk := resp.read(65536):
                self.wfile.write(chunk)
        else:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while chunk := resp.read1(65536):  # whatever has arrived: tokens stream through
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")


def serve_forever(
    cfg: ServeConfig,
    model: Path | None = None,
    version: str | None = None,
    progress: Callable[[str], None] = print,
) -> None:
    """Run the stable endpoint until SIGTERM or SIGINT; serve `model`, or what served last."""
    deployment = Deployment(cfg)
    server = StableServer(cfg, deployment)  # bound first: a taken port fails before any load
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    try:
        if model is not None:
            deployment.swap(model, version or Path(model).stem)
        else:
            try:
                deployment.resume()
            except SwapError as exc:  # still worth running: the next swap deploys something
                progress(f"could not resume the last deployment: {exc}")
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        thread.start()
        current = deployment.status()["current"]
        serving = f"{current['version']} ({current['model']})" if current else "nothing yet"
        progress(f"serving {serving} on {cfg.endpoint}")
        while not stop.wait(0.5):
            pass
    finally:
        deployment.close()  # before the listener goes: status answers until backends are gone
        if thread.is_alive():
            server.shutdown()
        server.server_close()
