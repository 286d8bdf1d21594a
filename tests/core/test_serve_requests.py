"""Malformed requests get a 400 with a short reason: never a hang, a dropped connection or
an echo of what was sent. Against a real serving process; no model needed.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from pipeline.serve import SwapError, request_rollback
from pipeline.serve_guard import CONTROL_BODY_MAX, loopback_host
from pipeline.serve_token import ensure_token
from tests.serving import auth, post_head, raw, send, swap_body


@pytest.mark.parametrize("path", ["/nightshift/swap", "/v1/chat/completions"])
@pytest.mark.parametrize(
    "lines",
    [
        ["Content-Length: abc"],
        ["Content-Length: -1"],
        ["Content-Length: +17"],
        ["Content-Length: 1.5"],
        ["Content-Length: 0x11"],
        ["Content-Length: 17, 18"],
        ["Content-Length: 17", "Content-Length: 18"],
        ["Content-Length: 99999999999999999999999"],
        ["Content-Length: 17", "Transfer-Encoding: chunked"],
    ],
)
def test_a_malformed_content_length_is_400(control_endpoint, path, lines):
    token = f"Authorization: Bearer {ensure_token()}"
    reply = raw(control_endpoint, post_head(control_endpoint, path, [token, *lines]) + swap_body())
    assert reply.status == 400
    assert "Content-Length" in reply.error or "Transfer-Encoding" in reply.error


@pytest.mark.parametrize(
    "lines, body, reason",
    [
        ([], b"", "Content-Length"),  # none at all
        (["Transfer-Encoding: chunked"], b"11\r\n" + swap_body() + b"\r\n0\r\n\r\n", "chunked"),
        ([f"Content-Length: {CONTROL_BODY_MAX + 1}"], b" " * (CONTROL_BODY_MAX + 1), "limit"),
    ],
)
def test_control_framing_is_checked(control_endpoint, lines, body, reason):
    token = f"Authorization: Bearer {ensure_token()}"
    reply = raw(
        control_endpoint, post_head(control_endpoint, "/nightshift/swap", [token, *lines]) + body
    )
    assert reply.status == 400 and reason in reply.error


def test_a_body_shorter_than_its_length_gets_an_answer(control_endpoint):
    for path in ("/nightshift/swap", "/v1/completions"):
        head = post_head(control_endpoint, path, ["Content-Length: 100"])
        reply = raw(control_endpoint, head + b'{"version"', half_close=True)
        assert reply.status == 400 and "ended before" in reply.error


@pytest.mark.parametrize(
    "body",
    [
        b"version=v1",
        b"\xff\xfe{}",
        b'{"version": "v1"',
        b"[1, 2]",
        b'"v1"',
        b'{"version": 3}',
        b'{"version": ["v1"]}',
        b'{"version": null}',
        b'{"version": "v1", "extra": "SECRET-FIELD"}',
        b'{"nope": "SECRET-FIELD"}',
        b"{}",
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_a_swap_body_that_is_not_a_version_object_is_400(control_endpoint, body):
    reply = send(
        control_endpoint, "POST", "/nightshift/swap", body, {**auth(), "Content-Type": "x"}
    )
    assert reply.status == 400
    assert len(reply.error) < 200 and b"SECRET" not in reply.raw
    assert reply.headers["Connection"] == "close"


def test_rollback_takes_no_fields_and_needs_a_previous_deployment(control_endpoint):
    reply = send(control_endpoint, "POST", "/nightshift/rollback", b'{"to": "v1"}', auth())
    assert reply.status == 400 and "unknown fields" in reply.error
    with pytest.raises(SwapError, match="nothing to roll back to"):
        request_rollback(control_endpoint)


def test_unknown_control_routes_are_not_forwarded(control_endpoint):
    assert send(control_endpoint, "GET", "/nightshift/swap").status == 405
    assert send(control_endpoint, "POST", "/nightshift/debug", b"{}", auth()).status == 404


def test_a_refused_request_with_a_large_body_still_gets_its_reply(control_endpoint):
    # Refused before its body is read: the endpoint must read it away before closing, or the
    # reset that closing over unread data sends can destroy the reply on its way.
    body = b"x" * (16 * 2**20)  # more than the socket buffers hold
    lines = [f"Content-Length: {len(body)}"]
    reply = raw(
        control_endpoint,
        post_head(control_endpoint, "/v1/completions", lines).replace(
            f"Host: {urlsplit(control_endpoint).netloc}".encode(), b"Host: evil.example"
        )
        + body,
    )
    assert reply.status == 403
    reply = raw(control_endpoint, post_head(control_endpoint, "/nightshift/swap", lines) + body)
    assert reply.status == 400 and "limit" in reply.error


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("localhost", True),
        ("LocalHost:8080", True),
        ("127.0.0.1:8080", True),
        ("127.45.6.7", True),
        ("[::1]:8080", True),
        ("[::ffff:127.0.0.1]", True),
        ("evil.example", False),
        ("localhost.evil.example", False),
        ("127.0.0.1.nip.io", False),
        ("0.0.0.0", False),
        ("[::]", False),
        ("127.1", False),
        ("2130706433", False),
        ("localhost:", False),
        ("localhost:0", False),
        ("localhost:65536", False),
        ("localhost:80:80", False),
        ("::1", False),
        ("[127.0.0.1]", False),
        ("", False),
    ],
)
def test_loopback_host_names(host, loopback):
    assert loopback_host(host) is loopback


@pytest.mark.parametrize(
    "target",
    [
        b"/v1/models\x01",
        b"/v1/models\x7f",
        b"/v1/models\xff",
        b"/v1/\x00models",
        b"/v1/mod\tels",
        b"/nightshift/status\x1b",
        "/v1/mod\u00e9ls".encode(),
        b"http://evil.example/nightshift/swap",
        b"v1/models",
        b"*",
    ],
)
@pytest.mark.parametrize("method", [b"GET", b"POST", b"OPTIONS"])
def test_a_malformed_request_target_is_400(control_endpoint, method, target):
    if method == b"OPTIONS" and target == b"*":
        target = b"**"  # OPTIONS * is well-formed; anything else that is not a path is not
    netloc = urlsplit(control_endpoint).netloc.encode()
    head = method + b" " + target + b" HTTP/1.1\r\nHost: " + netloc + b"\r\n"
    reply = raw(control_endpoint, head + b"Content-Length: 0\r\nConnection: close\r\n\r\n")
    assert reply.status == 400 and b"evil" not in reply.raw and b"mod" not in reply.raw
    if b"\t" not in target:  # a tab splits the request line: http.server's own 400
        assert "request target" in reply.error


@pytest.mark.parametrize("value", [b"a\x00b", b"a\x1bb", b"a\x7fb", b"a\r\n b"])
def test_a_header_value_with_control_characters_is_400(control_endpoint, value):
    netloc = urlsplit(control_endpoint).netloc.encode()
    head = b"GET /v1/models HTTP/1.1\r\nHost: " + netloc + b"\r\nX-Note: " + value + b"\r\n"
    reply = raw(control_endpoint, head + b"Connection: close\r\n\r\n")
    assert reply.status == 400 and "control characters" in reply.error


@pytest.mark.parametrize(
    "lines",
    [
        [b"X-A: a\rb", b"Connection: close"],
        [b"Transfer-Encoding : chunked", b"Content-Length: 5", b"Connection: close"],
        [b"Content-Length : 5", b"Connection: close"],
        [b"no colon here", b"Content-Length: 5"],
    ],
)
def test_a_malformed_header_line_is_400_not_a_hidden_body(control_endpoint, lines):
    """A line that is not a header hides the lines after it (the length among them): the
    body would be read as the next request, so the request is refused and the link closed."""
    netloc = urlsplit(control_endpoint).netloc.encode()
    head = b"\r\n".join([b"POST /v1/completions HTTP/1.1", b"Host: " + netloc, *lines])
    reply = raw(control_endpoint, head + b"\r\n\r\nhello")
    assert reply.status == 400 and "malformed header section" in reply.error
    assert reply.headers["Connection"] == "close"
