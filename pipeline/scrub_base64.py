"""Secrets hidden in base64: decode each long base64 run and look inside.

A Kubernetes secret, a Basic auth header, a service-account JSON pasted as base64: the key is
not visible until decoded. Runs that decode to text are scanned by the full scrubber (passed
in, so decoded base64 inside decoded base64 is found too), and a run holding a secret is
scrubbed whole. Decoding shrinks the text by a quarter at each level, so the work stays linear.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

from re2 import _re2

from pipeline.scrub_leaks import char_offsets
from pipeline.scrub_patterns import Span

MIN_RUN = 28  # base64 of 21 bytes: the shortest provider key worth decoding (AKIA... is 20)
# The standard alphabet: Kubernetes secrets, Basic auth and `base64` output use it; URL-safe
# runs would take in every UUID and kebab-case name. RE2 on bytes: one DFA pass, leftmost run
# first, so each match is a whole run.
_RUN_RE = _re2.RE2(rb"[A-Za-z0-9+/]{28,}={0,2}", _re2.RE2.Options())
_UNANCHORED = _re2.RE2.Anchor.UNANCHORED
_HEX_RE = re.compile(r"[0-9a-fA-F]+")
_MAX_RUN = 1 << 20  # a megabyte of base64 is an attachment, not a credential


_CONTROL = bytes([*range(9), 11, 12, *range(14, 32), 127])  # bytes no text holds


def _decoded_text(run: str) -> str | None:
    """The run decoded to text, or None when it is binary (images, hashes, key material)."""
    head = base64.b64decode(run[:24])  # 18 bytes: binary shows at once, and most runs are
    if len(head.translate(None, _CONTROL)) != len(head):
        return None
    body = run.rstrip("=")
    body += "=" * (-len(body) % 4)
    try:
        raw = base64.b64decode(body, validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    printable = sum(c.isprintable() or c in "\r\n\t" for c in text)
    return text if text and printable >= 0.95 * len(text) else None


def base64_findings(
    text: str, found_inside: Callable[[str], bool], data: bytes | None = None
) -> list[tuple[str, Span]]:
    """(kind, span) of each base64 run whose decoded text holds what `found_inside` finds;
    `data` is `text` in UTF-8, if the caller has it."""
    if data is None:
        data = text.encode("utf-8", "surrogatepass")
    chars = None
    found = []
    pos = 0
    while pos < len(data):
        ((start, end),) = _RUN_RE.Match(_UNANCHORED, data, pos, len(data))
        if start < 0:
            break
        pos = end
        run = data[start:end].decode()
        if len(run) > _MAX_RUN or run.isalpha() or _HEX_RE.fullmatch(run):
            continue  # words and hex digests are not base64 worth decoding
        decoded = _decoded_text(run)
        if decoded is not None and found_inside(decoded):
            if chars is None:
                chars = char_offsets(text) or []
            found.append(("base64_secret", (chars[start], chars[end]) if chars else (start, end)))
    return found
