"""JSON string escapes undone, with a way back: a key written `https:\/\/hooks.slack.com\/...`
or `{\"password\": \"...\"}` (JSON in a JSON string, a tool call's arguments) only reads as
one once unescaped. The scrubber scans that view too and maps what it finds back to the span
of the escaped text, so the placeholder covers the escapes as well.
"""

from __future__ import annotations

import bisect
import re

from pipeline.scrub_patterns import Span

# The escapes the split audit's scanner undoes (JSON's); `\n`, `\t` and friends alone only make
# whitespace, so a text is worth a second look only when it holds one of the others.
_ESCAPE_RE = re.compile(r'\\(["\\/bfnrt]|u[0-9a-fA-F]{4})')
_UNESCAPED = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "/": "/"}
PREFILTER = r'\\[/"\\u]'  # RE2, for the scrubber's set pass
MAX_DEPTH = 3  # JSON in a JSON string in a tool call: two levels, and one to spare


class Unescaped:
    """`text` with its escapes undone, and each escape's place in both."""

    def __init__(self, text: str) -> None:
        parts: list[str] = []
        # Breakpoints: view offset -> original offset at each escape's start and end.
        self._view: list[int] = [0]
        self._orig: list[int] = [0]
        pos = length = 0
        for m in _ESCAPE_RE.finditer(text):
            code = m.group(1)
            parts += (
                text[pos : m.start()],
                chr(int(code[1:], 16)) if code[0] == "u" else _UNESCAPED[code],
            )
            length += m.start() - pos
            self._view += (length, length + 1)
            self._orig += (m.start(), m.end())
            length += 1
            pos = m.end()
        parts.append(text[pos:])
        self.text = "".join(parts)

    def original(self, span: Span) -> Span:
        """Where a span of the view lies in the original text."""
        return self._at(span[0]), self._at(span[1])

    def _at(self, x: int) -> int:
        i = bisect.bisect_right(self._view, x) - 1
        return self._orig[i] + (x - self._view[i])
