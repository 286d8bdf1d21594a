"""The control plane's refusals, against a real detached serving process over loopback HTTP.

Nothing here loads a model: every request is refused (or answered) by the serving process
before a model server would start, so these run without the llama.cpp toolchain. The
registry holds small GGUF-shaped files; `test_serve.py` swaps real models.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from typer.testing import CliRunner

from pipeline.cli_serve import serve_app
from pipeline.paths import nightshift_home
from pipeline.serve import (
    ServeConfig,
    SwapError,
    UnprovenServer,
    request_rollback,
    request_swap,
    server_status,
)
from pipeline.serve_token import ensure_token, token_path
from tests.serving import SHIP, auth, send, serving, swap_body

ALLOWED = "http://localhost:5173"  # the allowlisted web app of `cors_endpoint`
FOREIGN = "https://evil.example"
SECRET_LINE = b"root:x:0:0:SECRET-FILE-CONTENT:/root:/bin/bash\n"


@pytest.fixture(scope="module")
def cors_endpoint(control_registry):
    with serving(control_registry, cors_origins=(ALLOWED,)) as endpoint:
        yield endpoint


# Credentials


@pytest.mark.parametrize("route", ["/nightshift/swap", "/nightshift/rollback"])
def test_control_without_a_token_is_401(control_endpoint, route):
    reply = send(control_endpoint, "POST", route, swap_body() if "swap" in route else b"{}")
    assert reply.status == 401
    assert "Bearer" in reply.headers["WWW-Authenticate"]
    assert "serving token" in reply.error
    basic = send(control_endpoint, "POST", route, b"{}", {"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status in (400, 401)  # swap's {} lacks its version; never accepted


@pytest.mark.parametrize("route", ["/nightshift/swap", "/nightshift/rollback"])
def test_control_with_a_wrong_token_is_403(control_endpoint, route):
    body = swap_body() if "swap" in route else b"{}"
    token = ensure_token()
    near = token[:-1] + ("B" if token.endswith("A") else "A")  # one character off
    for wrong in (near, token + "A", "x" * 43, "short", "\u00e9" * 50):
        reply = send(control_endpoint, "POST", route, body, {"Authorization": f"Bearer {wrong}"})
        assert reply.status == 403, wrong
        assert reply.error == "wrong serving token"
    # The client itself never sends a token the server cannot prove it holds.
    with pytest.raises(
        UnprovenServer, match=r"cannot prove it holds the token\); nothing was sent"
    ):
        request_rollback(control_endpoint, token="y" * 43)
    assert server_status(control_endpoint)["current"] is None  # nothing moved


# Host and Origin


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:{port}", "0.0.0.0:{port}", "127.1:{port}", "localhost.:{port}"],
)
def test_a_host_that_is_not_loopback_is_403(control_endpoint, host):
    host = host.format(port=urlsplit(control_endpoint).port)
    requests = [
        ("GET", "/nightshift/status", None, {}),
        ("POST", "/v1/chat/completions", b"{}", {}),
        ("POST", "/nightshift/swap", swap_body(), auth()),
        ("OPTIONS", "/v1/chat/completions", None, {"Origin": FOREIGN}),
    ]
    for method, path, body, headers in requests:
        reply = send(control_endpoint, method, path, body, headers, host=host)
        assert reply.status == 403, (method, path)
        assert "loopback" in reply.error and "evil" not in reply.error
        assert reply.cors() == {}


def test_loopback_hosts_are_admitted_and_a_missing_host_is_not(control_endpoint):
    port = urlsplit(control_endpoint).port
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "LOCALHOST", f"[::1]:{port}"):
        assert send(control_endpoint, "GET", "/nightshift/status", host=host).status == 200, host
    assert send(control_endpoint, "GET", "/nightshift/status", host=None).status == 403


def test_a_foreign_origin_is_403_on_control_and_on_completions(control_endpoint):
    port = urlsplit(control_endpoint).port
    origins = [FOREIGN, "null", f"http://localhost:{port + 1}", f"https://127.0.0.1:{port}"]
    for origin in origins:
        headers = {"Origin": origin, "Content-Type": "text/plain"}
        for path, body in [
            ("/nightshift/swap", swap_body()),
            ("/nightshift/rollback", b"{}"),
            ("/v1/chat/completions", b'{"messages": []}'),
            ("/v1/completions", b'{"prompt": "hi"}'),
        ]:
            reply = send(control_endpoint, "POST", path, body, {**headers, **auth()})
            assert reply.status == 403, (origin, path)
            assert "origin" in reply.error and reply.cors() == {}
        preflight = {"Origin": origin, "Access-Control-Request-Method": "POST"}
        reply = send(control_endpoint, "OPTIONS", "/v1/chat/completions", headers=preflight)
        assert reply.status == 403 and reply.cors() == {}
    assert server_status(control_endpoint)["current"] is None


def test_no_cors_headers_by_default(control_endpoint):
    own = f"http://127.0.0.1:{urlsplit(control_endpoint).port}"  # a page the endpoint served itself
    for headers in ({}, {"Origin": own}):
        for method, path, body in [
            ("GET", "/nightshift/status", None),
            ("POST", "/v1/chat/completions", b"{}"),  # 503: nothing deployed
            ("OPTIONS", "/v1/chat/completions", None),
        ]:
            reply = send(control_endpoint, method, path, body, headers)
            assert reply.status in (200, 204, 503), (method, path, reply.raw)
            assert reply.cors() == {} and "Vary" not in reply.headers


def test_an_allowlisted_origin_gets_cors_headers_and_no_other(cors_endpoint):
    preflight = {
        "Origin": ALLOWED,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    reply = send(cors_endpoint, "OPTIONS", "/v1/chat/completions", headers=preflight)
    assert reply.status == 204
    assert reply.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "POST" in reply.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in reply.headers["Access-Control-Allow-Headers"]
    completion = send(cors_endpoint, "POST", "/v1/chat/completions", b"{}", {"Origin": ALLOWED})
    assert completion.status == 503  # nothing deployed, and the page may read why
    assert completion.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert completion.headers["Vary"] == "Origin"
    # The allowlist opens the browser's door, not the control plane: the token still counts.
    assert send(cors_endpoint, "POST", "/nightshift/rollback", b"{}", {"Origin": ALLOWED}).status
    for origin in (FOREIGN, "http://localhost:5174", "https://localhost:5173"):
        other = send(cors_endpoint, "OPTIONS", "/v1/completions", headers={"Origin": origin})
        assert other.status == 403 and other.cors() == {}, origin
    plain = send(cors_endpoint, "GET", "/nightshift/status")
    assert plain.status == 200 and plain.cors() == {}


def test_unusable_allowlist_entries_are_refused_with_the_fix():
    for bad in ("*", "null", "localhost:3000", "http://localhost:3000/app"):
        with pytest.raises(ValueError, match="cors origin"):
            ServeConfig(cors_origins=(bad,))
    cfg = ServeConfig(cors_origins=("HTTP://LocalHost:3000/", "https://app.example:443"))
    assert cfg.cors_origins == ("http://localhost:3000", "https://app.example")


# What a swap accepts


def test_a_swap_to_a_path_is_refused_and_echoes_nothing(control_endpoint, tmp_path):
    secret = tmp_path / "passwd.gguf"
    secret.write_bytes(SECRET_LINE * 100)
    attempts = [
        {"model": str(secret), "version": "v1"},
        {"version": str(secret)},
        {"version": "../v1"},
        {"version": "v1/../../etc"},
        {"version": "champion"},
    ]
    for body in attempts:
        reply = send(
            control_endpoint, "POST", "/nightshift/swap", json.dumps(body).encode(), auth()
        )
        assert reply.status == 400, body
        assert "registry version" in reply.error
        assert b"SECRET" not in reply.raw and str(secret).encode() not in reply.raw
    with pytest.raises(SwapError, match="never a path"):
        request_swap(control_endpoint, str(secret))
    cli = CliRunner().invoke(
        serve_app, ["swap", str(secret), "--port", str(urlsplit(control_endpoint).port)]
    )
    assert cli.exit_code == 1 and "registry version" in cli.output
    assert "SECRET" not in cli.output
    assert server_status(control_endpoint)["current"] is None


def test_an_unknown_version_is_refused(control_endpoint, control_registry):
    for version in ("v99", "v0"):
        with pytest.raises(SwapError) as refused:
            request_swap(control_endpoint, version)
        assert refused.value.status == 404
        assert f"no version {version} in the registry {control_registry.root}" in str(refused.value)
    port = str(urlsplit(control_endpoint).port)
    cli = CliRunner().invoke(serve_app, ["swap", "v99", "--port", port])
    assert cli.exit_code == 1 and "no version v99" in cli.output


def test_a_damaged_version_is_refused_naming_the_file(control_endpoint, control_registry):
    path = control_registry.version_dir("v2") / SHIP
    damaged = path.with_name("damaged.tmp")
    damaged.write_bytes(path.read_bytes()[:-1] + b"X")  # same size, one byte changed
    damaged.replace(path)  # a new inode: the hard-linked source stays intact
    with pytest.raises(SwapError) as refused:
        request_swap(control_endpoint, "v2")
    assert refused.value.status in (409, 422)
    message = str(refused.value)
    assert f"v2/{SHIP}" in message and "nothing was serving" in message
    assert b"bbbb" not in json.dumps(message).encode()  # the file's bytes are not quoted
    assert server_status(control_endpoint)["current"] is None


# The token


def test_the_token_is_in_no_log_and_no_reply(control_endpoint, cors_endpoint):
    token = ensure_token()
    refusal = send(control_endpoint, "POST", "/nightshift/rollback", b"{}", auth())
    assert refusal.status == 409 and token.encode() not in refusal.raw
    with pytest.raises(SwapError) as refused:
        request_swap(control_endpoint, "v99")
    assert token not in str(refused.value)
    home = nightshift_home()
    files = [p for p in (home / "serve").rglob("*") if p.is_file()]
    files += [p for p in home.glob("logs/**/*") if p.is_file()]
    assert any(p.suffix == ".log" for p in files)  # the serving processes' own logs
    for path in files:
        assert token.encode() not in path.read_bytes(), path
    assert token_path().stat().st_mode & 0o777 == 0o600


def test_an_unsafe_token_file_stops_swaps_with_the_fix(control_endpoint):
    path = token_path()
    ensure_token()
    try:
        path.chmod(0o644)
        reply = send(control_endpoint, "POST", "/nightshift/rollback", b"{}", auth("z" * 43))
        assert reply.status == 500 and f"chmod 600 {path}" in reply.error
    finally:
        path.chmod(0o600)
    assert send(control_endpoint, "POST", "/nightshift/rollback", b"{}", auth()).status == 409


def test_the_cli_sends_the_token(control_endpoint, monkeypatch, tmp_path):
    port = str(urlsplit(control_endpoint).port)
    ok = CliRunner().invoke(serve_app, ["rollback", "--port", port])
    assert ok.exit_code == 1 and "nothing to roll back to" in ok.output  # past the token check
    # Another home: another token, which this server does not know.
    monkeypatch.setenv("NIGHTSHIFT_HOME", str(tmp_path / "other"))
    other = CliRunner().invoke(serve_app, ["rollback", "--port", port])
    assert other.exit_code == 1 and "cannot prove it holds the token" in other.output
    assert "nothing was sent" in other.output and "NIGHTSHIFT_HOME" in other.output
    assert (tmp_path / "other" / "serve.token").stat().st_mode & 0o777 == 0o600
