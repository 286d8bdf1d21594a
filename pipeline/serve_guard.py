"""What the stable endpoint lets in: loopback Host names, known Origins, well-formed bodies.

Pure functions over header values and bytes, so each rule is testable without a socket. A
refusal's reason never repeats what the client sent: no header value, no body byte.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from email.message import Message
from urllib.parse import urlsplit

CONTROL_BODY_MAX = 16 * 1024  # a control request is `{"version": "v12"}`; anything big is not
VERSION = re.compile(r"v[0-9]{1,9}")
_PORT = re.compile(r"[0-9]{1,5}")
_DIGITS = re.compile(r"[0-9]{1,15}")
_DEFAULT_PORTS = {"http": "80", "https": "443"}
# A path as sent on the wire: visible ASCII only (RFC 9112 3.2, origin-form); anything else
# (control bytes, DEL, non-ASCII) cannot be forwarded and is refused before it gets that far.
_TARGET = re.compile(r"/[\x21-\x7e]*")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")  # no CR, LF, NUL or other controls


class BadRequest(ValueError):
    """A request this endpoint cannot read or act on; the message is the short reason."""


@functools.lru_cache(maxsize=1024)  # clients repeat one Host; parsing it costs microseconds
def loopback_host(value: str | None, also: tuple[str, ...] = ()) -> bool:
    """Whether a Host header names this machine's loopback (localhost, 127.0.0.0/8, [::1]),
    with or without a port, or one of `also` (the address the endpoint was told to bind).

    A page on evil.example whose DNS name is rebound to 127.0.0.1 still sends its own name."""
    if not value:
        return False
    value = value.strip().lower()
    if value.startswith("["):
        name, sep, port = value[1:].partition("]")
        if not sep or (port and not port.startswith(":")):
            return False
        port = port[1:]
    else:
        name, sep, port = value.partition(":")
        if sep and not port:
            return False
    if port and not (_PORT.fullmatch(port) and 0 < int(port) < 65536):
        return False
    if name == "localhost" or name in {a.lower() for a in also}:
        return True
    try:  # strict: no "127.1", no leading zeros, no trailing dot
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if value.startswith("[") != (address.version == 6):
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def normalize_origin(value: str) -> str:
    """`scheme://host[:port]` in lower case without a default port; ValueError if not one."""
    parts = urlsplit(value.strip())
    try:
        port = parts.port
    except ValueError:
        raise ValueError("not a web origin") from None
    if not parts.scheme or not parts.hostname or parts.username or parts.password:
        raise ValueError("not a web origin")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("an origin has no path, query or fragment")
    scheme, host = parts.scheme.lower(), parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and str(port) != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


def origin_allowlist(origins: Iterable[str]) -> tuple[str, ...]:
    """The configured origins, normalized; ValueError naming the fix for an unusable one."""
    allowed = []
    for origin in origins:
        if origin.strip() in ("*", "null"):
            raise ValueError(
                f"cors origin {origin!r} would let every web page use the model; "
                "name each origin, e.g. http://localhost:3000"
            )
        try:
            allowed.append(normalize_origin(origin))
        except ValueError as exc:
            raise ValueError(f"cors origin {origin!r}: {exc}; use scheme://host[:port]") from None
    return tuple(dict.fromkeys(allowed))


def allowed_origin(origin: str, allowlist: Iterable[str]) -> str | None:
    """The allowlist entry `origin` matches, or None."""
    try:
        normal = normalize_origin(origin)
    except ValueError:
        return None
    return normal if normal in allowlist else None


def origin_admitted(origin: str | None, host: str | None, allowlist: Iterable[str]) -> bool:
    """No Origin (not a browser's cross-site request), an allowlisted one, or the endpoint's
    own (a page it served itself, e.g. llama-server's chat page, posting back to it)."""
    if origin is None:
        return True
    if allowed_origin(origin, allowlist):
        return True
    try:
        return normalize_origin(origin) == normalize_origin(f"http://{host}")
    except ValueError:
        return False


def check_request(method: str, target: str, headers: Message) -> None:
    """BadRequest unless the request target is a plain path (or `*` for OPTIONS), every
    header line parsed as one, and no header value holds control characters: what the
    forwarding client would choke on, or what would frame the body wrongly."""
    if not (_TARGET.fullmatch(target) or (method == "OPTIONS" and target == "*")):
        raise BadRequest("malformed request target; send a path such as /v1/chat/completions")
    if getattr(headers, "defects", None) or headers.get_payload():
        # A line that is no header (`Name : value`, a bare CR) hides the lines after it,
        # Content-Length and Transfer-Encoding among them: the framing cannot be trusted.
        raise BadRequest("malformed header section; send `Name: value` lines only")
    for value in headers.values():
        if not _HEADER_VALUE.fullmatch(str(value)):
            raise BadRequest("a header value holds control characters")


def content_length(headers: Message) -> int | None:
    """The declared body length; None when there is none; BadRequest when it is malformed
    or contradicts itself (two lengths, or a length beside Transfer-Encoding)."""
    values = headers.get_all("Content-Length") or []
    if not values:
        return None
    if headers.get_all("Transfer-Encoding"):
        raise BadRequest("send either Content-Length or Transfer-Encoding, not both")
    parts = {part.strip() for value in values for part in str(value).split(",")}
    if len(parts) != 1:
        raise BadRequest("conflicting Content-Length headers")
    [length] = parts
    if not _DIGITS.fullmatch(length):
        raise BadRequest("malformed Content-Length; it must be a byte count")
    return int(length)


def bearer_token(headers: Message) -> str | None:
    """The credential of `Authorization: Bearer <token>`, or None."""
    values = headers.get_all("Authorization") or []
    if len(values) != 1:
        return None
    scheme, _, credential = str(values[0]).strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credential.strip() or None


def control_body(raw: bytes, fields: Mapping[str, type], required: Iterable[str] = ()) -> dict:
    """A control request's JSON object, holding only `fields` of their types."""
    if not raw.strip():
        body: object = {}
    else:
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise BadRequest("the body is not JSON") from None
    example = json.dumps({k: "v3" for k in fields}) if fields else "{}"
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object: {example}")
    unknown = set(body) - set(fields)
    if "model" in unknown:
        raise BadRequest(f"swaps take a registry version, never a path: {example}")
    if unknown:
        raise BadRequest(f"unknown fields; this request takes only {example}")
    for name in required:
        if name not in body:
            raise BadRequest(f"missing {name!r}: {example}")
    for name, kind in fields.items():
        if name in body and not isinstance(body[name], kind):
            raise BadRequest(f"{name!r} must be a {kind.__name__}: {example}")
    return body


def registry_version(value: str) -> str:
    """`value` if it names a registry version (v1, v2, ...); BadRequest otherwise."""
    if not VERSION.fullmatch(value):
        raise BadRequest("a swap takes a registry version such as v3, never a path or a name")
    return value
