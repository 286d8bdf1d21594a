"""The stable endpoint: a threaded reverse proxy to the current backend, plus swap control.

Every request is first checked (`serve_guard`): its Host must be a loopback name (DNS
rebinding) and its Origin, if any, allowlisted or the endpoint's own; otherwise 403. CORS
headers are sent only to allowlisted origins, and the backend's own are dropped.

Admitted requests are forwarded as they came (method, path, headers, body) to the backend that
is current when they arrive, and finish there even if a swap happens meanwhile; responses
without a length (streamed completions) are relayed chunk by chunk as they arrive.
`/nightshift/status` is answered here (with a proof of the token for a client's nonce);
`/nightshift/swap` and `/nightshift/rollback` also need the serving token (`serve_token`) and
come from loopback only. Malformed requests get a 400 with a short reason that repeats nothing
of the request. The client's Authorization is replaced by the backend's own key.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import traceback
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from pipeline.serve import ServeConfig, SwapError
from pipeline.serve_backend import Backend, Deployment
from pipeline.serve_guard import (
    CONTROL_BODY_MAX,
    BadRequest,
    allowed_origin,
    bearer_token,
    check_request,
    content_length,
    control_body,
    loopback_host,
    origin_admitted,
    registry_version,
)
from pipeline.serve_token import NONCE, TokenError, ensure_token, status_proof, token_matches

# Per-connection headers (RFC 9110 7.6.1) are not forwarded; lengths and Host are set anew.
# Origin stays here: the backend must not make CORS decisions of its own; Authorization is
# the backend's key, never what the client sent.
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length", "origin", "authorization",
}  # fmt: skip
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
VERSION_HEADER = "X-Nightshift-Version"  # which deployment answered, whatever the backend
FORWARD_BODY_MAX = 64 * 2**20  # a prompt of a whole long context is a few MB
CLIENT_TIMEOUT_S = 60  # a client silent this long mid-request (or idle) is let go
# After refusing a request with its body unread, read up to this much (for up to this long)
# before closing, so that the client gets to read the reply.
LINGER_BYTES, LINGER_S = FORWARD_BODY_MAX, 5.0
CORS_METHODS = "GET, POST, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type"


class StableServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # bursts of new client connections during load

    def __init__(self, cfg: ServeConfig, deployment: Deployment) -> None:
        self.cfg, self.deployment = cfg, deployment
        # Clients reach a non-loopback bind address by that address; loopback names always work.
        self.bind_names = () if cfg.host in ("", "0.0.0.0", "::") else (cfg.host,)
        super().__init__((cfg.host, cfg.port), ProxyHandler)


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive with clients
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    timeout = CLIENT_TIMEOUT_S  # a short body or a stalled client never holds a thread forever
    server: StableServer

    def setup(self) -> None:
        super().setup()
        self.upstream: dict[Backend, http.client.HTTPConnection] = {}
        self.linger = False

    def finish(self) -> None:
        for conn in self.upstream.values():
            conn.close()
        if self.linger:
            self._linger()
        super().finish()

    def log_message(self, format: str, *args) -> None:
        pass  # thousands of requests a second; the backends keep their own logs

    def send_error(self, code: int, message: str | None = None, explain: str | None = None):
        # The base class's page quotes the request line; say only what went wrong.
        self._reply(code, {"error": HTTPStatus(code).phrase}, close=True)

    # Routes

    def do_GET(self) -> None:
        if not self._admit():
            return
        route = urlsplit(self.path).path
        if route == "/nightshift/status":
            self._status()
        elif route.startswith("/nightshift/"):
            self._nightshift_route(route)
        else:
            self._forward()

    def do_POST(self) -> None:
        if not self._admit():
            return
        deployment = self.server.deployment
        route = urlsplit(self.path).path
        if route == "/nightshift/swap":
            self._control(("version",), lambda body: deployment.swap(body["version"]))
        elif route == "/nightshift/rollback":
            self._control((), lambda body: deployment.rollback())
        elif route.startswith("/nightshift/"):
            self._nightshift_route(route)
        else:
            self._forward()

    def do_HEAD(self) -> None:
        if self._admit():
            self._forward()

    do_PUT = do_PATCH = do_DELETE = do_HEAD

    def do_OPTIONS(self) -> None:
        """CORS preflight: answered here, with CORS headers only for an allowlisted Origin."""
        if not self._admit():
            return
        try:
            self._read_body(0)
        except BadRequest as exc:
            self._reply(400, {"error": str(exc)}, close=True)
            return
        self.send_response(204)
        self.send_header("Allow", CORS_METHODS)
        self.send_header("Content-Length", "0")
        if self._cors_origin():
            self.send_header("Access-Control-Allow-Methods", CORS_METHODS)
            self.send_header("Access-Control-Allow-Headers", CORS_HEADERS)
            self.send_header("Access-Control-Max-Age", "600")
        self._send_cors_headers()
        self.end_headers()

    def _status(self) -> None:
        """The deployment's status; with `?nonce=`, the proof that this process holds the token
        (clients check it before they send the token or signal the pid)."""
        status = self.server.deployment.status()
        nonces = parse_qs(urlsplit(self.path).query).get("nonce")
        if nonces is not None:
            if len(nonces) != 1 or not NONCE.fullmatch(nonces[0]):
                self._reply(400, {"error": "the nonce must be 16-128 URL-safe characters"})
                return
            port = self.server.server_address[1]
            try:
                status["proof"] = status_proof(ensure_token(), nonces[0], status["pid"], port)
            except TokenError as exc:  # names the file and the fix; clients refuse without it
                status["proof_error"] = str(exc)
        self._reply(200, status)

    def _nightshift_route(self, route: str) -> None:
        """Never forwarded: a known route with the wrong method, or an unknown one."""
        known = route in ("/nightshift/status", "/nightshift/swap", "/nightshift/rollback")
        status = HTTPStatus.METHOD_NOT_ALLOWED if known else HTTPStatus.NOT_FOUND
        self._reply(status, {"error": status.phrase}, close=True)

    # Admission and replies

    def _admit(self) -> bool:
        """A well-formed request from a loopback Host and an admitted Origin, or a 400 or 403
        that says which rule refused it."""
        try:
            check_request(self.command, self.path, self.headers)
        except BadRequest as exc:
            self._reply(400, {"error": str(exc)}, close=True)
            return False
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1 or not loopback_host(hosts[0], self.server.bind_names):
            reason = "this endpoint answers to loopback names only (localhost, 127.0.0.1, [::1])"
            self._reply(403, {"error": reason}, close=True)
            return False
        origins = self.headers.get_all("Origin") or []
        cfg = self.server.cfg
        if len(origins) > 1 or not origin_admitted(
            origins[0] if origins else None, hosts[0], cfg.cors_origins
        ):
            reason = "requests from other web origins are refused; allow one with --cors-origin"
            self._reply(403, {"error": reason}, close=True)
            return False
        return True

    def _cors_origin(self) -> str | None:
        headers = getattr(self, "headers", None)
        origin = headers.get("Origin") if headers is not None else None
        return allowed_origin(origin, self.server.cfg.cors_origins) if origin else None

    def _send_cors_headers(self) -> None:
        if self.server.cfg.cors_origins:
            self.send_header("Vary", "Origin")  # caches must not hand one origin's answer on
        if origin := self._cors_origin():
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Expose-Headers", VERSION_HEADER)

    def _reply(
        self, status: int, body: dict, close: bool = False, headers: dict | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self._send_cors_headers()
        if close:
            # What is left of the request is unread: this connection cannot carry another.
            self.send_header("Connection", "close")
            self.close_connection = True
            self.linger = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _linger(self) -> None:
        """Half-close, then read what the client is still sending: closing a socket with
        unread data resets the connection, and the reset can destroy the reply in flight."""
        deadline = time.monotonic() + LINGER_S
        try:
            self.connection.shutdown(socket.SHUT_WR)
            left = LINGER_BYTES
            while left > 0 and (wait := deadline - time.monotonic()) > 0:
                self.connection.settimeout(wait)
                if not (chunk := self.connection.recv(min(1 << 20, left))):
                    break
                left -= len(chunk)
        except OSError:
            pass

    def _read_body(self, limit: int, required: bool = False) -> bytes:
        """The request body, within `limit` bytes; BadRequest for anything malformed."""
        length = content_length(self.headers)
        if self.headers.get_all("Transfer-Encoding"):
            raise BadRequest("chunked bodies are not accepted; send a Content-Length")
        if length is None:
            if required:
                raise BadRequest("send a Content-Length")
            return b""
        if length > limit:
            raise BadRequest(f"the body is over the {limit:,}-byte limit")
        try:
            raw = self.rfile.read(length)
        except TimeoutError:
            raise BadRequest("the body did not arrive in time") from None
        if len(raw) < length:
            raise BadRequest("the body ended before its Content-Length")
        return raw

    def _control(self, fields: tuple[str, ...], action: Callable[[dict], dict]) -> None:
        """Parse, then authenticate, then act: 400, 403 (not loopback), 401, 403, or the
        action's answer. The body is read first so that every refusal leaves a clean stream."""
        try:
            raw = self._read_body(CONTROL_BODY_MAX, required=True)
            body = control_body(raw, dict.fromkeys(fields, str), required=fields)
            if "version" in body:
                registry_version(body["version"])
        except BadRequest as exc:
            self._reply(400, {"error": str(exc)}, close=True)
            return
        if self.client_address[0] not in LOOPBACK:
            self._reply(403, {"error": "swaps are accepted from loopback only"})
            return
        token = bearer_token(self.headers)
        if token is None:
            challenge = {"WWW-Authenticate": 'Bearer realm="nightshift"'}
            error = "send the serving token: Authorization: Bearer <token> (see `nightshift serve`)"
            self._reply(401, {"error": error}, headers=challenge)
            return
        try:
            if not token_matches(token):
                self._reply(403, {"error": "wrong serving token"})
                return
            self._reply(200, action(body))
        except TokenError as exc:  # names the token file and the fix, never the token
            self._reply(500, {"error": str(exc)})
        except SwapError as exc:  # the old backend still serves; the caller gets the reason
            print(f"refused {urlsplit(self.path).path}: {exc}", flush=True)
            self._reply(exc.status, {"error": str(exc)})
        except Exception:
            traceback.print_exc()  # to the serving process's own log
            error = "the serving process failed on this request; its log has the traceback"
            self._reply(500, {"error": error})

    # Forwarding

    def _forward(self) -> None:
        try:
            body = self._read_body(FORWARD_BODY_MAX)
        except BadRequest as exc:
            self._reply(400, {"error": str(exc)}, close=True)
            return
        deployment = self.server.deployment
        backend = deployment.acquire()
        if backend is None:
            self._reply(503, {"error": "no model is deployed yet"})
            return
        try:
            try:
                resp = self._upstream_response(backend, body)
            except ValueError:  # http.client refuses what check_request missed: still a 400
                self._reply(400, {"error": "malformed request line or header"}, close=True)
                return
            except OSError as exc:
                self._reply(502, {"error": f"backend {backend.version}: {exc!r}"})
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
        if key := getattr(backend, "key", None):
            headers["Authorization"] = f"Bearer {key}"
        while True:
            reused = backend in self.upstream
            conn = self.upstream.get(backend) or http.client.HTTPConnection(
                "127.0.0.1", backend.port, timeout=600
            )
            self.upstream[backend] = conn
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                return conn.getresponse()
            except ValueError:  # a request http.client will not send: the connection is spent
                self.upstream.pop(backend).close()
                raise
            except OSError:
                self.upstream.pop(backend).close()
                # The backend may close an idle kept-alive connection just as we reuse it;
                # a fresh connection gets one more try, and any other failure is real.
                if not reused:
                    raise

    def _relay(self, resp: http.client.HTTPResponse, version: str) -> None:
        self.send_response_only(resp.status, resp.reason)  # the backend's Date and Server pass
        for key, value in resp.getheaders():
            name = key.lower()
            # The backend answers every Origin; only this endpoint's allowlist decides.
            if name not in HOP_BY_HOP and not name.startswith("access-control-"):
                self.send_header(key, value)
        self.send_header(VERSION_HEADER, version)
        self._send_cors_headers()
        length = resp.getheader("Content-Length")
        if self.command == "HEAD" or resp.status in (204, 304):
            self.end_headers()
            resp.read()
        elif length is not None and resp.getheader("Transfer-Encoding") is None:
            self.send_header("Content-Length", length)
            self.end_headers()
            while chunk := resp.read(65536):
                self.wfile.write(chunk)
        elif self.request_version == "HTTP/1.0":  # no chunked encoding: the close ends the body
            self.send_header("Connection", "close")
            self.close_connection = True
            self.end_headers()
            while chunk := resp.read1(65536):
                self.wfile.write(chunk)
        else:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while chunk := resp.read1(65536):  # whatever has arrived: tokens stream through
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
