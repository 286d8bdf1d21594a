"""Damaged Claude Code lines: records rescued in linear time, misspelled keys repaired,
nesting bounded.

Recovery tries each `{"` where an object could start. Decoding one from inside a long line
costs that line's length when it fails (the JSON error counts the lines before the error),
so a line of `{"` repeated took quadratic time. Here a start must look like an object (a
key, then a colon) and is decoded in a window that grows only while the record runs past
it, within a work budget proportional to the line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

RECORD_TYPES = frozenset(
    {
        *("summary", "file-history-snapshot", "queue-operation", "progress", "attachment"),
        *("ai-title", "custom-title", "last-prompt", "permission-mode", "mode", "agent-name"),
        *("user", "assistant", "system"),
    }
)
SCAN = json.JSONDecoder().scan_once  # the C scanner: skips json.loads' Python layers
LONG_INTEGER = "long_integer"  # repaired: an integer past Python's digit limit kept as its digits
LONE_SURROGATE = "lone_surrogate"  # repaired: half an emoji (a JS string cut) became U+FFFD
# A `\ud800`..`\udfff` escape: only a line holding one can decode to a lone surrogate.
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
SURROGATE = re.compile(r"[\ud800-\udfff]")
# Where an object can start: `{"`, a key, optional whitespace, a colon. Keys end at the first
# unescaped quote, so the scans of successive starts do not overlap: linear in the line.
_START = re.compile(r'\{"(?:[^"\\]|\\[\s\S])*"[ \t\n\r]*:')
_WINDOW = 64  # first window, in characters; each retry takes four times more
_BUDGET = 64  # characters decoded per character of the line, at most, while recovering
_NEAR_END = 8  # an error this close to a window's end may be the window's cut, not damage
_FAILED = object()


def _record_like(value: Any) -> bool:
    # Objects nested in a record (message, content blocks, usage) must not pass for records.
    if not isinstance(value, dict):
        return False
    kind = value.get("type")
    return (
        "uuid" in value or "sessionId" in value or (isinstance(kind, str) and kind in RECORD_TYPES)
    )


def _int(digits: str) -> int | str:
    try:
        return int(digits)
    except ValueError:  # over sys.get_int_max_str_digits(): no record needs its value as a number
        return digits


LENIENT = json.JSONDecoder(parse_int=_int).scan_once  # slower: for lines SCAN refused only


def long_integer(exc: BaseException) -> bool:
    """Whether SCAN failed on an integer literal past the digit limit, not on bad JSON."""
    return exc.__class__ is ValueError and "integer string conversion" in str(exc)


def _decode_at(text: str, pos: int, scan: Any = SCAN) -> tuple[Any, int, int]:
    """(value, end, work) of the object at `pos`, or (_FAILED, pos, work); decoded in a
    window so a failure costs what was read, not the distance to the line's start."""
    n, size, work = len(text), _WINDOW, 0
    while True:
        stop = pos + size
        chunk = text[pos:stop] if pos or stop < n else text
        work += len(chunk)
        try:
            value, end = scan(chunk, 0)
            return value, pos + end, work  # an object ends at its "}": the window cannot cut it
        except StopIteration as exc:  # a value was expected at exc.value
            cut = exc.value >= len(chunk) - _NEAR_END
        except json.JSONDecodeError as exc:
            cut = exc.pos >= len(chunk) - _NEAR_END or exc.msg.startswith("Unterminated string")
        except ValueError:  # an integer past the digit limit: keep its digits as a string
            if scan is LENIENT:
                return _FAILED, pos, work
            scan = LENIENT
            continue
        if stop >= n or not cut:
            return _FAILED, pos, work
        size *= 4


def recover(line: str, scan: Any = SCAN) -> tuple[list[Any], bool, str]:
    """The values on a line the fast path refused, whether the line was damaged, and the reason
    to count when nothing came back ("" for a blank line): NULs are stripped, then each place
    an object can start is tried in turn (records fused by `}{` or after a cut). With
    `scan=LENIENT`, integers past the digit limit are kept as strings of their digits."""
    text = line.strip()
    damaged = "\x00" in text
    if damaged:
        text = text.replace("\x00", "").strip()
    if not text:
        return [], damaged, ""
    try:
        value, end = scan(text, 0)
        if end == len(text):
            return [value], damaged, ""
    except (ValueError, StopIteration):
        pass
    except RecursionError:
        return [], True, "too_deep"
    found: list[Any] = []
    budget = _BUDGET * len(text) + (1 << 20)
    match = _START.search(text)
    while match is not None and budget > 0:
        pos = match.start()
        try:
            value, end, work = _decode_at(text, pos, scan)
        except RecursionError:
            return found, True, "too_deep"
        budget -= work
        if value is _FAILED:
            match = _START.search(text, pos + 1)
            continue
        if _record_like(value):
            found.append(value)
        match = _START.search(text, end)
    return found, True, "unparseable_line"


def too_deep(value: Any, limit: int) -> bool:
    """Whether containers nest more than `limit` deep (iterative: deep input cannot recurse)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if item.__class__ is dict else item
        for child in children:
            if child.__class__ is dict or child.__class__ is list:
                stack.append((child, depth + 1))
    return False


def near_key(obj: dict[str, Any], key: str, fits: Callable[[Any], Any]) -> Any:
    """The value under a misspelling of a missing `key` (a hand edit: `mesage`, `contnet`):
    one edit away for short keys, two for long ones, and only if one key alone is nearest."""
    limit = 1 if len(key) <= 4 else 2
    best, best_distance, tied = None, limit + 1, False
    for name, value in obj.items():
        if abs(len(name) - len(key)) > limit or not fits(value):
            continue
        distance = _edits(name.lower(), key, limit)
        if distance < best_distance:
            best, best_distance, tied = value, distance, False
        elif distance == best_distance:
            tied = True
    return None if tied else best


def _edits(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance (a swap of neighbours is one edit), capped at limit+1."""
    before: list[int] = []
    row = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        older, before, row = before, row, [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            row[j] = min(before[j] + 1, row[j - 1] + 1, before[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], older[j - 2] + 1)
        if min(row) > limit:
            return limit + 1
    return min(row[len(b)], limit + 1)


def fix_surrogates(value: Any) -> int:
    """Replace lone surrogates in a decoded record's strings (keys too) with U+FFFD, in place;
    the number of strings changed. JSON pairs decode to one character, so any left is lone."""
    changed = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if item.__class__ is dict:
            for key, child in list(item.items()):
                if key.__class__ is str and SURROGATE.search(key):
                    del item[key]
                    key = SURROGATE.sub("\ufffd", key)
                    changed += 1
                if child.__class__ is str and SURROGATE.search(child):
                    child = SURROGATE.sub("\ufffd", child)
                    changed += 1
                item[key] = child
                if child.__class__ is dict or child.__class__ is list:
                    stack.append(child)
        elif item.__class__ is list:
            for i, child in enumerate(item):
                if child.__class__ is str and SURROGATE.search(child):
                    item[i] = SURROGATE.sub("\ufffd", child)
                    changed += 1
                elif child.__class__ is dict or child.__class__ is list:
                    stack.append(child)
    return changed


def encodable(text: str) -> str:
    """`text` as UTF-8 can hold it: a file name's undecodable bytes (kept by Python as
    surrogates) become `\\xff` escapes, any other lone surrogate U+FFFD."""
    try:
        text.encode()
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return SURROGATE.sub("\ufffd", text)
