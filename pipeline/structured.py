"""Structured content scrubbed before it becomes example text: tool inputs and tool results.

A file written with the Write tool is a string inside the call's JSON input; if that file is
itself JSON (a service-account key), its private key reads `\\n` in the file and `\\\\n` once
the call is serialized into the example, a shape no detector expects. So every string is
scrubbed where it lies, and a string that is itself a JSON document is decoded, walked and
scrubbed leaf by leaf first, and written back only if something in it was replaced.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from pipeline.scrub import scrub_value

MAX_DEPTH = 64  # nesting walked; deeper parts are left to the scrub of the final text
MAX_DOCUMENT_CHARS = 5_000_000  # strings longer than this are not decoded as JSON


def _indent(doc: str) -> int | None:
    """The indent of a pretty-printed JSON document, None for one on a single line."""
    lines = doc.strip().splitlines()
    if len(lines) < 2:
        return None
    second = lines[1]
    return len(second) - len(second.lstrip(" ")) or None


def scrub_structured(value: Any, skip: frozenset[str] = frozenset()) -> tuple[Any, Counter[str]]:
    """A copy of `value` with every string scrubbed, JSON documents inside strings included;
    dict keys and non-string leaves are kept. The counts are by kind, as `scrub_text` gives."""
    counts: Counter[str] = Counter()

    def string(text: str, depth: int) -> str:
        head = text.lstrip()[:1]
        if head in ("{", "[") and len(text) <= MAX_DOCUMENT_CHARS:
            try:
                doc = json.loads(text)
            except (ValueError, RecursionError):
                doc = None
            if isinstance(doc, (dict, list)):
                clean = walk(doc, depth + 1)
                if clean != doc:
                    text = json.dumps(clean, indent=_indent(text), ensure_ascii=False)
        clean_text, found = scrub_value(text, skip)
        counts.update(found)
        return clean_text

    def walk(v: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            return v
        if isinstance(v, str):
            return string(v, depth)
        if isinstance(v, dict):
            return {k: walk(x, depth + 1) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return type(v)(walk(x, depth + 1) for x in v)
        return v

    return walk(value, 0), counts
