"""A client for the serving process's HTTP side that sends exactly what a test says.

`send` writes the headers given and no others (Host too); `raw` writes bytes as they are,
for framings no client library would produce. Both wait at most 10 s for a reply, so a
request the endpoint leaves hanging fails the test instead of stalling it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.registry import Registry
from pipeline.serve import ServeConfig, ensure_server, free_port, stop_server
from pipeline.serve_token import ensure_token

SHIP = "model-Q4_K_M.gguf"  # the quant a version serves when its manifest names none
COMMON = {"base_model": "tiny", "data_version": "d1", "code_version": "c1"}


def fake_registry(base: Path) -> Registry:
    """v1 and v2: small GGUF-shaped files with verified manifests; they never load."""
    reg = Registry(base / "registry")
    for name in ("a", "b"):
        src = base / f"{name}.gguf"
        src.write_bytes(b"GGUF" + name.encode() * 4096)
        reg.register({SHIP: src}, **COMMON)
    return reg


@contextlib.contextmanager
def serving(registry: Registry, **settings) -> Iterator[str]:
    """A detached serving process on a free port, serving from `registry`; its endpoint."""
    cfg = ServeConfig(port=free_port(), registry=registry.root, **settings)
    ensure_server(cfg)
    try:
        yield cfg.endpoint
    finally:
        stop_server(cfg.endpoint)


@dataclass
class Reply:
    status: int
    headers: Message
    raw: bytes

    @property
    def error(self) -> str:
        return json.loads(self.raw)["error"]

    def cors(self) -> dict[str, str]:
        return {k: v for k, v in self.headers.items() if k.lower().startswith("access-control-")}


def send(
    endpoint: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    host: str | None = "",
    length: bool = True,
) -> Reply:
    """One request with exactly these headers; host "" is the endpoint's own, None none."""
    netloc = urlsplit(endpoint).netloc
    conn = http.client.HTTPConnection(netloc, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", host or netloc)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        if body is not None and length:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return Reply(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def raw(endpoint: str, request: bytes, half_close: bool = False) -> Reply:
    """Bytes as sent, for framings http.client will not produce; a reply must come (10 s)."""
    address = urlsplit(endpoint)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        return Reply(resp.status, resp.headers, resp.read())


def auth(token: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token or ensure_token()}"}


def swap_body(version: str = "v1") -> bytes:
    return json.dumps({"version": version}).encode()


def post_head(endpoint: str, path: str, lines: list[str]) -> bytes:
    netloc = urlsplit(endpoint).netloc
    head = [f"POST {path} HTTP/1.1", f"Host: {netloc}", *lines, "", ""]
    return "\r\n".join(head).encode()


class Squatter:
    """A stranger on a loopback port that answers like a serving process: its status is
    `status` (a dict, or a callable returning one), every other request a 500. It records each
    request (method, path, Authorization) so a test can see what a client sent it."""

    def __init__(self, status) -> None:
        self.status, self.seen = status, []
        squatter = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _answer(self) -> None:
                squatter.seen.append((self.command, self.path, self.headers["Authorization"]))
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                if self.command == "GET" and self.path.startswith("/nightshift/status"):
                    status = squatter.status
                    code, body = 200, status(self.path) if callable(status) else status
                else:
                    code, body = 500, {"error": "squatter"}
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def tokens(self) -> list[str]:
        return [auth for _, _, auth in self.seen if auth]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
