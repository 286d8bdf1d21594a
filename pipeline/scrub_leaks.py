"""Scanning a text with the betterleaks rules: which rules can match, then their matches.

A rule runs only where its keywords occur (betterleaks' own prefilter), where its
case-sensitive regex's spelling of a keyword occurs, and where the literals its matches always
hold occur; the rules gated by words common in any code also need their full regex to match
somewhere. One RE2 set pass decides all of it for every rule at once, and for the scrubber's
other detectors too (their prefilters ride in the same set). What a text's scans share (its
UTF-8 bytes, our placeholders) is computed once, in its `Scan`.
"""

from __future__ import annotations

import bisect
import re
import string

import re2
from re2 import _re2

from pipeline.scrub_patterns import PLACEHOLDER_RE, Span
from pipeline.scrub_rules import (
    OPTIONS,
    UNANCHORED,
    LeakRule,
    leak_rules,
    matches,
    plausible,
    secret_span,
)

# Keywords common in any code or prose: the rules they gate are screened by their full regexes.
_COMMON_KEYWORDS = frozenset(
    [
        "access",
        "api",
        "auth",
        "key",
        "token",
        "secret",
        "password",
        "passw",
        "credential",
        "creds",
        "curl",
        "http://",
        "https://",
        "x-api-key",
        "api-",
        "test_",
        "live_",
        "client",
        "login",
        "private",
        "user",
        "pass",
        "pwd",
    ]
)
_MARKS = ("<secret:", "<email>", "<phone>")  # our placeholders, lowercased
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


class Gate:
    """One RE2 set over the text holds four kinds of pattern: each keyword and required literal
    (case-insensitive), each case-sensitive spelling of a keyword, the full regex of each rule
    gated by common words, and the prefilters of the scrubber's other detectors (`extra`: a
    superset of what each can find). One pass answers all four."""

    def __init__(self, rules: tuple[LeakRule, ...], extra: tuple[bytes, ...] = ()) -> None:
        self.all = list(range(len(rules)))
        low = sorted({k for r in rules for k in (*r.keywords, *r.required)} | set(_MARKS))
        cased = sorted({k for r in rules for k in r.cased})
        # kubernetes-secret-yaml's `(?s:.){0,1000}` would outgrow the set's DFA.
        self.screened = [
            i
            for i, r in enumerate(rules)
            if (r.generic or _COMMON_KEYWORDS.intersection(r.keywords))
            and r.id != "kubernetes-secret-yaml"
        ]
        self.set = _re2.Set(UNANCHORED, OPTIONS)
        for k in low:
            self.set.Add(b"(?i)" + re2.escape(k).encode())
        for k in cased:
            self.set.Add(re2.escape(k).encode())
        for i in self.screened:
            self.set.Add(rules[i].regex.pattern.encode())
        for pattern in extra:
            self.set.Add(pattern)
        self.set.Compile()
        self.n_low, self.n_lit = len(low), len(low) + len(cased)
        self.n_rules = self.n_lit + len(self.screened)  # indices from here on are `extra`'s
        li = {k: i for i, k in enumerate(low)}
        ci = {k: len(low) + i for i, k in enumerate(cased)}
        self.marks = frozenset(li[m] for m in _MARKS)
        self.always = frozenset(i for i, r in enumerate(rules) if not r.keywords)
        # A rule whose regex spells its keywords case-sensitively is gated by that spelling.
        self.by_literal: list[set[int]] = [set() for _ in range(self.n_lit)]
        for i, r in enumerate(rules):
            for k in r.cased:
                self.by_literal[ci[k]].add(i)
            for k in r.keywords if not r.cased else ():
                self.by_literal[li[k]].add(i)
        self.needs_all = {i: {li[k] for k in r.required} for i, r in enumerate(rules) if r.required}
        self.screened_set = frozenset(self.screened)

    def hits(self, data: bytes) -> list[int] | None:
        """Which patterns occur in `data`, sorted, or None if the set cannot answer (out of
        memory)."""
        found = self.set.Match(data)
        return None if found is None else sorted(found)

    def candidates(self, hits: list[int] | None) -> list[int]:
        if hits is None:
            return self.all  # run every rule
        found = set(self.always)
        matched = set()
        for k in hits:
            if k < self.n_lit:
                found |= self.by_literal[k]
            elif k < self.n_rules:
                matched.add(self.screened[k - self.n_lit])
            else:
                break
        if not found:
            return []
        for i in found & self.needs_all.keys():
            if not self.needs_all[i] <= set(hits):
                found.discard(i)
        # A commonly gated rule whose regex matches nowhere in the text need not run.
        return sorted(found - (self.screened_set - matched))


def char_offsets(text: str) -> list[int] | None:
    """Byte offset -> character offset, or None when they are the same (ASCII text)."""
    if text.isascii():
        return None
    offsets = []
    for i, c in enumerate(text):
        offsets += [i] * len(c.encode("utf-8", "surrogatepass"))
    offsets.append(len(text))
    return offsets


class Scan:
    """One text as every detector sees it: its UTF-8 bytes, the gate's answer over them, and
    what the betterleaks rules need (computed on first use)."""

    __slots__ = ("text", "data", "hits", "depth", "gated", "_gate", "_leaks", "_low")

    def __init__(self, text: str, gate: Gate, depth: int = 0, gated: bool = True) -> None:
        self.text = text
        self.depth = depth  # how many levels of escapes were undone to make `text`
        self.gated = gated  # False: every detector runs, whatever its prefilters say
        self.data = text.encode("utf-8", "surrogatepass")
        self.hits = gate.hits(self.data)
        self._gate = gate
        self._leaks: tuple[list[int], bytes, list[int] | None, list[Span]] | None = None
        self._low: str | None = None

    @property
    def low(self) -> str:
        """`text` lowercased with every character where it was; `str.lower` lengthens a few."""
        if self._low is None:
            low = self.text.lower()
            self._low = low if len(low) == len(self.text) else self.text.translate(_ASCII_LOWER)
        return self._low

    def leaks(self) -> tuple[list[int], bytes, list[int] | None, list[Span]]:
        """The rules to run, the bytes they scan (our placeholders blanked), byte -> character
        offsets (None for ASCII) and our placeholders' spans."""
        if self._leaks is not None:
            return self._leaks
        text, data, hits = self.text, self.data, self.hits
        candidates = self._gate.candidates(hits)
        # Our own placeholders read like `SECRET:kind>`: blank them, and drop what touches them.
        ours = []
        if candidates and (hits is None or self._gate.marks.intersection(hits)):
            ours = [m.span() for m in PLACEHOLDER_RE.finditer(text)]
        subject = text
        if ours:
            parts, pos = [], 0
            for start, end in ours:
                parts += (text[pos:start], " " * (end - start))
                pos = end
            subject = "".join(parts) + text[pos:]
            data = subject.encode("utf-8", "surrogatepass")
        chars = char_offsets(subject) if candidates else None
        self._leaks = (candidates, data, chars, ours)
        return self._leaks


def leak_findings(scan: Scan, skip: frozenset[str], generic: bool) -> list[tuple[str, str, Span]]:
    """(kind, rule id, span of the secret) for the specific rules, or for the generic ones."""
    candidates, data, chars, ours = scan.leaks()
    if not candidates:
        return []
    rules = leak_rules()
    text = scan.text
    found = []
    for i in candidates:
        rule = rules[i]
        if rule.generic != generic or rule.id in skip:
            continue
        for spans in matches(rule, data):
            start, end = secret_span(spans, rule, data)
            match = spans[0]
            if end <= start:
                continue  # the value group took no part
            if chars is not None:
                start, end = chars[start], chars[end]
                match = (chars[match[0]], chars[match[1]])
            if ours and _overlaps(ours, start, end):
                continue
            if plausible(rule, text, (start, end), match):
                if rule.id == "curl-auth-user":
                    start, end = _curl_user_span(text, start, end)
                found.append((rule.kind, rule.id, (start, end)))
    return found


_CURL_FLAG_RE = re.compile(r"(?:-u|--user)(?:=|[ \t]{0,5})$")


def _curl_user_span(text: str, start: int, end: int) -> Span:
    """`curl -u user:pass`: the password alone, so the user still reads as one and the
    placeholder's own colon is not taken for a `user:pass` by the audit's scanner; with no
    password, the value inside its quotes, or with its flag when bare (`-u <SECRET:...>`
    would read as user `<SECRET`)."""
    value = text[start:end]
    quoted = len(value) > 1 and value[0] in "'\"" and value[-1] == value[0]
    inner = start + 1 if quoted else start
    colon = text.find(":", inner, end)
    stop = end - 1 if quoted else end
    if colon >= 0 and colon + 1 < stop:
        return colon + 1, stop
    if quoted:
        return inner, stop  # `"<SECRET:...>"`: a quote is no user name
    if flag := _CURL_FLAG_RE.search(text, max(0, start - 16), start):
        return flag.start(), end
    return start, end


def _overlaps(spans: list[Span], start: int, end: int) -> bool:
    i = bisect.bisect_right(spans, (start, 1 << 62))
    return (i > 0 and spans[i - 1][1] > start) or (i < len(spans) and spans[i][0] < end)
