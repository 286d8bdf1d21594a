"""Live swaps behind the stable endpoint, with the real llama-server and the tiny GGUFs.

The serving process runs detached, as `ensure_server` starts it for the Dagster asset; the
test process is only a client: load, swap and rollback requests all go over loopback HTTP,
naming versions of a temporary registry that holds the tiny GGUFs.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pipeline.registry import Registry
from pipeline.serve import (
    ServeConfig,
    SwapError,
    ensure_server,
    free_port,
    request_rollback,
    request_swap,
    server_status,
    stop_server,
)
from pipeline.serve_proxy import VERSION_HEADER
from tests.serving import raw

pytestmark = pytest.mark.slow

SHIP = "model-Q4_K_M.gguf"  # the file a version serves when its manifest names no quant
COMMON = {"base_model": "tiny", "data_version": "d1", "code_version": "c1"}

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, "temperature": 0.0}
# Text completions skip the chat template, which costs llama-server about 1 ms a request on
# the test's shared cores; most load uses them, so more requests fit in a short swap.
TEXT = {"prompt": "hi", "max_tokens": 1, "temperature": 0.0}
# A long streamed answer, with the top-20 alternatives of every token as an evaluation tool
# would ask, in flight on the old backend when the endpoint switches: the swap's drain waits
# for it (about 2 s here), which keeps the measured swap window long enough to see 1,000
# requests even though the tiny model itself loads in a tenth of a second.
LONG_STREAM = {**CHAT, "max_tokens": 2000, "ignore_eos": True, "stream": True}
LONG_STREAM |= {"logprobs": True, "top_logprobs": 20}
LONG_STREAMS = 3


@dataclass(frozen=True)
class Call:
    start: float  # wall clock, comparable with the serving process's timings
    end: float
    status: int  # 0: no HTTP answer at all
    version: str  # the X-Nightshift-Version header
    model: str  # the "model" field of the completion: llama-server's --alias
    error: str = ""


class Load:
    """Client threads sending short completions through the stable endpoint, nonstop."""

    def __init__(self, endpoint: str, clients: int) -> None:
        self.address = urlsplit(endpoint).netloc
        self.calls: list[Call] = []  # list.append is atomic; no lock needed
        self.stop = threading.Event()
        kinds = [("/v1/chat/completions", CHAT)] + [("/v1/completions", TEXT)] * (clients - 1)
        self.threads = [threading.Thread(target=self._client, args=kind) for kind in kinds]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.calls) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def _client(self, path: str, request: dict) -> None:
        body = json.dumps(request).encode()
        headers = {"Content-Type": "application/json"}
        conn = http.client.HTTPConnection(self.address, timeout=30)  # kept alive
        while not self.stop.is_set():
            start = time.time()
            try:
                conn.request("POST", path, body, headers)
                resp = conn.getresponse()
                raw = resp.read()
                reply = json.loads(raw) if resp.status == 200 else {}
                version = resp.getheader(VERSION_HEADER, "")
                error = "" if resp.status == 200 else raw[:200].decode(errors="replace")
                call = Call(start, time.time(), resp.status, version, reply.get("model", ""), error)
            except (OSError, ValueError, http.client.HTTPException) as exc:
                conn.close()
                call = Call(start, time.time(), 0, "", "", repr(exc))
            self.calls.append(call)
        conn.close()


def _chat(endpoint: str) -> tuple[int, str, dict]:
    conn = http.client.HTTPConnection(urlsplit(endpoint).netloc, timeout=30)
    try:
        headers = {"Content-Type": "application/json"}
        conn.request("POST", "/v1/chat/completions", json.dumps(CHAT), headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader(VERSION_HEADER, ""), json.loads(resp.read())
    finally:
        conn.close()


def _stream_long(endpoint: str, out: dict, answering: threading.Barrier) -> None:
    """Read a long streamed answer as it arrives; record who sent it and how it ended."""
    conn = http.client.HTTPConnection(urlsplit(endpoint).netloc, timeout=60)
    try:
        headers = {"Content-Type": "application/json"}
        conn.request("POST", "/v1/chat/completions", json.dumps(LONG_STREAM), headers)
        resp = conn.getresponse()
        out["status"], out["version"] = resp.status, resp.getheader(VERSION_HEADER, "")
        answering.wait()
        data = bytearray()
        while chunk := resp.read1(65536):
            data += chunk
        events = [line for line in data.decode().splitlines() if line.startswith("data:")]
        out["events"], out["done"] = len(events), events[-1] == "data: [DONE]"
    finally:
        conn.close()


@pytest.fixture
def registry(tmp_path, tiny_f16, tiny_q4) -> Registry:
    """v1: the F16 model, v2: the Q4 model (hard links to the session's GGUFs)."""
    reg = Registry(tmp_path / "registry")
    assert reg.register({SHIP: tiny_f16}, **COMMON) == "v1"
    assert reg.register({SHIP: tiny_q4}, **COMMON) == "v2"
    return reg


@pytest.fixture
def endpoint(registry):
    """A detached serving process on a free stable port, serving v1 of `registry`."""
    cfg = ServeConfig(port=free_port(), threads=1, ctx=16384, registry=registry.root)
    ensure_server(cfg)
    try:
        request_swap(cfg.endpoint, "v1")
        yield cfg.endpoint
    finally:
        stop_server(cfg.endpoint)


def test_swap_under_continuous_load_fails_no_request(endpoint):
    answers: list[dict] = [{} for _ in range(LONG_STREAMS)]
    answering = threading.Barrier(LONG_STREAMS + 1, timeout=30)
    streamers = [
        threading.Thread(target=_stream_long, args=(endpoint, answer, answering))
        for answer in answers
    ]
    with Load(endpoint, clients=4) as load:
        load.wait_for(100)
        for streamer in streamers:
            streamer.start()
        answering.wait()  # every long answer is under way on v1 before the swap starts
        swap = request_swap(endpoint, "v2")
        for streamer in streamers:
            streamer.join()
        time.sleep(0.2)  # calls started inside the window get to finish
    window = [c for c in load.calls if swap["started_at"] <= c.start <= swap["stopped_at"]]
    failed = [c for c in load.calls if c.status != 200]
    first_v2 = min(c.end for c in load.calls if c.model == "v2")
    print(
        f"\n{len(load.calls)} calls, {len(window)} inside the swap window of "
        f"{swap['stopped_at'] - swap['started_at']:.2f}s (health {swap['health_s']}s, smoke "
        f"{swap['smoke_s']}s, drain until {swap['stopped_at'] - swap['switched_at']:.2f}s after "
        f"the switch); first v2 answer "
        f"{first_v2 - swap['healthy_at']:.3f}s after its health check"
    )
    assert failed == []
    assert len(window) >= 1000
    assert first_v2 - swap["healthy_at"] <= 5.0
    assert {c.version for c in load.calls} == {"v1", "v2"}
    assert all(c.model == c.version for c in load.calls)  # llama-server's alias agrees
    # The streams began on v1, finished there whole, and the old server waited for them.
    for answer in answers:
        assert (answer["status"], answer["version"], answer["done"]) == (200, "v1", True)
        assert answer["events"] > 1000
    assert swap["drained"]
    assert server_status(endpoint)["current"]["version"] == "v2"


def test_rollback_serves_the_previous_version_again(endpoint, registry):
    request_swap(endpoint, "v2")
    assert _chat(endpoint)[1] == "v2"
    back = request_rollback(endpoint)
    v1, v2 = (str((registry.version_dir(v) / SHIP).resolve()) for v in ("v1", "v2"))
    assert back["version"] == "v1" and back["model"] == v1
    status, version, reply = _chat(endpoint)
    assert (status, version, reply["model"]) == (200, "v1", "v1")
    assert server_status(endpoint)["previous"] == {"version": "v2", "model": v2}


def test_failed_swap_leaves_the_old_model_serving(endpoint, registry, tmp_path):
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + b"SECRET-BYTES" * 400)  # verifies, but will not load
    assert registry.register({SHIP: corrupt}, **COMMON) == "v3"
    with pytest.raises(SwapError, match="exited with code") as failed:
        request_swap(endpoint, "v3")
    assert "SECRET" not in str(failed.value)  # the model server's log is named, not quoted
    status, version, _ = _chat(endpoint)
    assert (status, version) == (200, "v1")
    assert server_status(endpoint)["current"]["version"] == "v1"


def test_a_damaged_version_is_refused_and_the_old_model_keeps_serving(endpoint, registry):
    path = registry.version_dir("v2") / SHIP
    damaged = path.with_name(".damaged")
    with path.open("rb") as src, damaged.open("wb") as dst:
        dst.write(src.read()[:-4096])  # truncated; a new file, so the fixture's GGUF is intact
    damaged.replace(path)
    with pytest.raises(SwapError) as refused:
        request_swap(endpoint, "v2")
    assert refused.value.status in (409, 422)
    assert f"v2/{SHIP}" in str(refused.value) and "v1 still serves" in str(refused.value)
    status, version, reply = _chat(endpoint)
    assert (status, version, reply["model"]) == (200, "v1", "v1")
    assert server_status(endpoint)["current"]["version"] == "v1"


def test_the_model_servers_own_cors_headers_never_pass(endpoint):
    """llama-server answers every Origin; with no allowlist the endpoint sends no CORS header,
    and a foreign page or a rebound DNS name gets a 403 while a model serves."""
    netloc = urlsplit(endpoint).netloc
    body = json.dumps(CHAT)
    for headers in ({}, {"Origin": f"http://{netloc}"}):
        conn = http.client.HTTPConnection(netloc, timeout=30)
        conn.request("POST", "/v1/chat/completions", body, headers)
        resp = conn.getresponse()
        resp.read()
        conn.close()
        assert resp.status == 200
        assert not [k for k, _ in resp.getheaders() if k.lower().startswith("access-control")]
    for headers in ({"Origin": "https://evil.example"}, {"Host": "evil.example"}):
        conn = http.client.HTTPConnection(netloc, timeout=30)
        conn.request("POST", "/v1/chat/completions", body, headers)
        resp = conn.getresponse()
        assert resp.status == 403 and resp.getheader("Access-Control-Allow-Origin") is None
        conn.close()
    assert _chat(endpoint)[0] == 200


def test_the_model_server_answers_only_with_its_key(endpoint):
    """llama-server's port is reachable by any local page that finds it: without the key
    only the stable endpoint knows, it refuses completions; the endpoint swaps in that key
    whatever Authorization the client sent."""
    port = server_status(endpoint)["current"]["port"]
    body = json.dumps(CHAT)
    found = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):  # Linux: the key is not in `ps`
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--port" in args and str(port).encode() in args:
            assert not [a for a in args if a.startswith(b"--api-key")]
            assert b"LLAMA_API_KEY=" in (cmdline.parent / "environ").read_bytes()
            found += 1
    assert found == 1 or not Path("/proc/self").exists()
    for headers in ({}, {"Authorization": "Bearer guessed"}, {"Origin": "https://evil.example"}):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/v1/chat/completions", body, headers)
        resp = conn.getresponse()
        assert resp.status == 401 and b"choices" not in resp.read(), headers
        conn.close()
    conn = http.client.HTTPConnection(urlsplit(endpoint).netloc, timeout=30)
    conn.request("POST", "/v1/chat/completions", body, {"Authorization": "Bearer sk-client"})
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["choices"]
    conn.close()


def test_an_http_1_0_client_gets_the_stream_unchunked(endpoint):
    netloc = urlsplit(endpoint).netloc
    body = json.dumps({**CHAT, "max_tokens": 8, "stream": True}).encode()
    head = f"POST /v1/chat/completions HTTP/1.0\r\nHost: {netloc}\r\n"
    head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    reply = raw(endpoint, head.encode() + body)  # the body ends where the connection closes
    assert reply.status == 200 and reply.headers["Transfer-Encoding"] is None
    assert reply.headers["Connection"] == "close"
    assert reply.raw.startswith(b"data: ") and reply.raw.rstrip().endswith(b"data: [DONE]")


@pytest.mark.parametrize("target", [b"/v1/models\x01", b"/v1/models\x7f", b"/v1/models\xff"])
def test_a_malformed_target_is_400_with_a_model_deployed(endpoint, target):
    netloc = urlsplit(endpoint).netloc.encode()
    reply = raw(endpoint, b"GET " + target + b" HTTP/1.1\r\nHost: " + netloc + b"\r\n\r\n")
    assert reply.status == 400 and "request target" in reply.error
    assert _chat(endpoint)[0] == 200
