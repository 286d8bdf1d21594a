"""A loopback server speaking the Anthropic Messages and Message Batches wire protocol.

The real `anthropic` client is pointed at it by base URL. Answers are derived from the
request, so tests can assert on them: a prompt asking for "a JSON array of exactly N" gets N
question/answer objects, any other prompt gets "Improved answer (<hash>): <first line>".
Token counts are a quarter of the characters; a system block with `cache_control` is written
to the prompt cache on first sight and read from it after.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_KEY = "sk-ant-loopback-test"


def tokens(text: str) -> int:
    return max(1, len(text) // 4)


def default_answer(params: dict[str, Any]) -> str:
    prompt = params["messages"][-1]["content"]
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
    wanted = re.search(r"JSON array of exactly (\d+)", prompt)
    if wanted:
        n = int(wanted.group(1))
        return json.dumps(
            [
                {"question": f"Question {i} ({digest})?", "answer": f"Answer {i} ({digest})."}
                for i in range(n)
            ]
        )
    lines = prompt.splitlines()
    return f"Improved answer ({digest}): {lines[1] if len(lines) > 1 else lines[0]}"


@dataclass
class FakeAnthropic:
    """Server state: what was asked, and the failures to stage."""

    answer: Callable[[dict[str, Any]], str] = default_answer
    rate_limit_first: int = 0  # the first N requests (any endpoint) get 429 + retry-after-ms
    batch_polls: int = 0  # retrieves that still see a new batch in progress
    fail_if: Callable[[dict[str, Any]], bool] = lambda _params: False  # batch items to error
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, path), 429s included
    bodies: list[dict[str, Any]] = field(default_factory=list)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    cached_systems: set[str] = field(default_factory=set)
    lock: threading.RLock = field(default_factory=threading.RLock)
    base_url: str = ""

    def count(self, method: str, path: str) -> int:
        return sum(1 for c in self.calls if c == (method, path))

    def message(self, params: dict[str, Any]) -> dict[str, Any]:
        system = params.get("system") or []
        blocks = [{"text": system}] if isinstance(system, str) else system
        cached = cacheable = 0
        for block in blocks:
            if block.get("cache_control"):
                cacheable += tokens(block["text"])
                with self.lock:
                    hit = block["text"] in self.cached_systems
                    self.cached_systems.add(block["text"])
                cached += tokens(block["text"]) if hit else 0
        fresh = sum(tokens(m["content"]) for m in params["messages"])
        fresh += sum(tokens(b["text"]) for b in blocks if not b.get("cache_control"))
        text = self.answer(params)
        return {
            "id": "msg_" + hashlib.sha256(text.encode()).hexdigest()[:16],
            "type": "message",
            "role": "assistant",
            "model": params["model"],
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": fresh,
                "output_tokens": min(tokens(text), params["max_tokens"]),
                "cache_creation_input_tokens": cacheable - cached,
                "cache_read_input_tokens": cached,
            },
        }

    def batch_view(self, batch_id: str) -> dict[str, Any]:
        batch = self.batches[batch_id]
        ended = batch["polls"] > self.batch_polls
        results = batch["results"]
        counts = {k: 0 for k in ("processing", "succeeded", "errored", "canceled", "expired")}
        if ended:
            for r in results:
                counts[r["result"]["type"]] += 1
        else:
            counts["processing"] = len(results)
        return {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": counts,
            "created_at": "2026-11-02T03:00:00Z",
            "expires_at": "2026-11-03T03:00:00Z",
            "ended_at": "2026-11-02T03:05:00Z" if ended else None,
            "results_url": f"{self.base_url}/v1/messages/batches/{batch_id}/results"
            if ended
            else None,
        }

    def create_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        results = []
        for item in body["requests"]:
            if self.fail_if(item["params"]):
                error = {"type": "invalid_request_error", "message": "staged failure"}
                result = {"type": "errored", "error": {"type": "error", "error": error}}
            else:
                result = {"type": "succeeded", "message": self.message(item["params"])}
            results.append({"custom_id": item["custom_id"], "result": result})
        batch_id = f"msgbatch_{len(self.batches):04d}"
        self.batches[batch_id] = {"results": results, "polls": 0}
        return self.batch_view(batch_id)


def _handler(state: FakeAnthropic) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, body: bytes, kind: str, **headers: str) -> None:
            self.send_response(status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, doc: dict[str, Any], **headers: str) -> None:
            self._send(status, json.dumps(doc).encode(), "application/json", **headers)

        def _error(self, status: int, kind: str, message: str, **headers: str) -> None:
            doc = {"type": "error", "error": {"type": kind, "message": message}}
            self._json(status, doc, **headers)

        def _admit(self, method: str) -> bool:
            with state.lock:
                state.calls.append((method, self.path))
                limited = len(state.calls) <= state.rate_limit_first
            # SDK versions send the key as x-api-key or as a bearer token.
            keys = {self.headers.get("x-api-key"), self.headers.get("authorization")}
            if not keys & {API_KEY, f"Bearer {API_KEY}"}:
                self._error(401, "authentication_error", "invalid API key")
                return False
            if limited:
                self._error(429, "rate_limit_error", "slow down", retry_after_ms="20")
                return False
            return True

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])) or b"{}")
            if not self._admit("POST"):
                return
            with state.lock:
                state.bodies.append({"path": self.path, **body})
            if self.path == "/v1/messages":
                self._json(200, state.message(body))
            elif self.path == "/v1/messages/count_tokens":
                system = body.get("system") or []
                blocks = [{"text": system}] if isinstance(system, str) else system
                n = sum(tokens(b["text"]) for b in blocks)
                self._json(
                    200, {"input_tokens": n + sum(tokens(m["content"]) for m in body["messages"])}
                )
            elif self.path == "/v1/messages/batches":
                with state.lock:
                    view = state.create_batch(body)
                self._json(200, view)
            else:
                self._error(404, "not_found_error", self.path)

        def do_GET(self) -> None:
            if not self._admit("GET"):
                return
            match = re.fullmatch(r"/v1/messages/batches/(\w+)(/results)?", self.path)
            if not match or match.group(1) not in state.batches:
                self._error(404, "not_found_error", self.path)
                return
            batch_id = match.group(1)
            if match.group(2):
                lines = "".join(json.dumps(r) + "\n" for r in state.batches[batch_id]["results"])
                self._send(200, lines.encode(), "application/binary")
                return
            with state.lock:
                state.batches[batch_id]["polls"] += 1
                view = state.batch_view(batch_id)
            self._json(200, view)

    return Handler


class AnthropicServer:
    """`with AnthropicServer(state) as url:` serves `state` on a free loopback port."""

    def __init__(self, state: FakeAnthropic | None = None):
        self.state = state or FakeAnthropic()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.state.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # A short poll interval: shutdown waits for one, once per test.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> str:
        self.thread.start()
        return self.state.base_url

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
