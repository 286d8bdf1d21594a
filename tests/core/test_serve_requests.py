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
