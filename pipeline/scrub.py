"""Secrets and personal data out of session text, replaced by typed placeholders.

Credentials become `<SECRET:kind>`, personal data `<EMAIL>` and `<PHONE>`; no detector matches
a placeholder, and `scrub_text` repeats until a pass finds nothing, so scrubbing twice changes
nothing. Detectors live in `scrub_patterns` (fixed shapes), `scrub_env` (secret-named
assignments) and `scrub_pii` (emails, phones).
"""

from __future__ import annotations

import bisect
import json
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.scrub_env import env_findings
from pipeline.scrub_patterns import PLACEHOLDER_RE, RULES, Span
from pipeline.scrub_pii import email_spans, phone_spans

__all__ = [
    "PII_KINDS",
    "PLACEHOLDER_RE",
    "Finding",
    "find_secrets",
    "has_secret",
    "scrub_cli_output",
    "scrub_text",
    "scrub_value",
]

PII_KINDS = frozenset({"email", "phone"})


@dataclass(frozen=True)
class Finding:
    """One secret or piece of personal data: its kind and where it lies, never its value."""

    kind: str  # anthropic_key, openai_key, ..., env_value, email, phone
    start: int
    end: int


Detector = Callable[[str, str], list[tuple[str, Span]]]


def _tagged(kind: str, spans: Callable[[str], list[Span]]) -> Detector:
    def detector(text: str, low: str) -> list[tuple[str, Span]]:
        found = spans(text)
        return [(kind, span) for span in found] if found else []

    return detector


# Priority order: where two findings overlap, the earlier detector's is kept. Fixed shapes come
# first, so `OPENAI_API_KEY=sk-...` counts as an openai_key rather than an env_value.
_DETECTORS: tuple[Detector, ...] = (
    *(rule.findings for rule in RULES),
    env_findings,
    _tagged("email", email_spans),
    _tagged("phone", phone_spans),
)
_MAX_PASSES = 5  # each pass shrinks the text that is not placeholders; two suffice in practice
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _lower(text: str) -> str:
    """`text` lowercased with every character where it was; `str.lower` lengthens a few."""
    low = text.lower()
    return low if len(low) == len(text) else text.translate(_ASCII_LOWER)


def find_secrets(text: str) -> list[Finding]:
    """Secrets and personal data in `text`: non-overlapping, sorted by start."""
    low = _lower(text)
    starts: list[int] = []
    found: list[Finding] = []
    for detector in _DETECTORS:
        candidates = detector(text, low)
        if len(candidates) > 1:
            candidates.sort(key=lambda f: (f[1][0], -f[1][1]))
        for kind, (start, end) in candidates:
            i = bisect.bisect_right(starts, start)
            if end <= start or (i and found[i - 1].end > start):
                continue
            if i < len(found) and found[i].start < end:
                continue
            starts.insert(i, start)
            found.insert(i, Finding(kind, start, end))
    return found


def has_secret(text: str) -> bool:
    """Whether `find_secrets` would find anything; stops at the first detector that does."""
    low = _lower(text)
    return any(detector(text, low) for detector in _DETECTORS)


def _placeholder(kind: str) -> str:
    return "<EMAIL>" if kind == "email" else "<PHONE>" if kind == "phone" else f"<SECRET:{kind}>"


def scrub_text(text: str) -> tuple[str, Counter[str]]:
    """`text` with every finding replaced by its placeholder, and the counts by kind."""
    counts: Counter[str] = Counter()
    # A finding's neighbour can hide behind it (`(415) 555-0123+44 20 7946 0958`: the second
    # number follows a digit); once the first is a placeholder, another pass finds it, so
    # scrubbing repeats until nothing is left and a second call changes nothing.
    for _ in range(_MAX_PASSES):
        findings = find_secrets(text)
        if not findings:
            break
        parts, pos = [], 0
        for f in findings:
            parts += (text[pos : f.start], _placeholder(f.kind))
            pos = f.end
        parts.append(text[pos:])
        text = "".join(parts)
        counts.update(f.kind for f in findings)
    return text, counts


def scrub_value(value: Any) -> tuple[Any, Counter[str]]:
    """A copy of `value` with every string in nested dicts, lists and tuples scrubbed; dict keys
    and non-string leaves are kept as they are."""
    counts: Counter[str] = Counter()

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            text, found = scrub_text(v)
            counts.update(found)
            return text
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, tuple):
            return tuple(walk(x) for x in v)
        return v

    return walk(value), counts


def scrub_cli_output(text: str, as_json: bool) -> str:
    """What `nightshift scrub` prints: the scrubbed text, or as JSON the findings in `text`
    (kinds and spans only, never the values) and their counts. The JSON lists one pass of
    `find_secrets`, the spans an auditor can look up in the input."""
    if not as_json:
        return scrub_text(text)[0]
    findings = find_secrets(text)
    counts = Counter(f.kind for f in findings)
    doc = {
        "findings": [{"kind": f.kind, "start": f.start, "end": f.end} for f in findings],
        "counts": dict(sorted(counts.items())),
    }
    return json.dumps(doc, indent=2) + "\n"
