"""Credential formats with a fixed shape (key prefixes, JWTs, PEM blocks, auth headers, URLs).

Shapes follow gitleaks' rules and Yelp detect-secrets' plugins, loosened where a truncated or
odd-length key is still worth hiding: for a scrubber a miss leaks, a false hit blanks one word.
Each pattern opens with a literal, so `re` skips clean text quickly; most texts cost one
`search` per rule.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable

Span = tuple[int, int]

# What the scrubber writes; a value that already holds one is never scrubbed again.
PLACEHOLDER_RE = re.compile(r"<SECRET:[a-z0-9_]+>|<EMAIL>|<PHONE>")

# Masked or elided values: xxxxx, ****, bullets, ellipses, one repeated character. Five x's in
# a row essentially never occur in a random base62 token (p ~ 1e-8 per position).
MASKED = r"(?i:x{5,})|\*{3,}|•{3,}|…|\.\.\.|^(?P<repeated>.)(?P=repeated)*$"
# Shell, template and format references instead of a value: $X, ${X}, $(cmd), {{ x }}, <x>, %s.
REFERENCE = r"^[$%]|\$\{|\$\(|\{\{|<[^<>]*>|%\(?\w*\)?[sd]\b"
_MASKED_RE = re.compile(MASKED)
_REFERENCE_RE = re.compile(REFERENCE)
_ENV_NAME_RE = re.compile(r"[A-Z]+(?:_[A-Z0-9]+)+")  # `Bearer ACCESS_TOKEN`: a variable's name
_DIGIT_RE = re.compile(r"\d")
_LETTER_RE = re.compile(r"[A-Za-z]")


def is_masked(value: str) -> bool:
    """Elided, or a single repeated character: nothing left to hide."""
    return bool(_MASKED_RE.search(value))


def _is_reference(value: str) -> bool:
    """A variable, template or placeholder standing where the value would be."""
    return bool(_REFERENCE_RE.search(value))


def matches(regex: re.Pattern[str], text: str) -> Iterable[re.Match[str]]:
    """`regex.finditer(text)`, but cheap when nothing matches, as in most texts: one `search`
    costs a fraction of setting up `finditer`."""
    first = regex.search(text)
    return () if first is None else regex.finditer(text, first.start())


def word_set(words: str) -> frozenset[str]:
    """A set of space-separated words: long word lists read better as text."""
    return frozenset(words.split())


def _entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values()) if n else 0.0


def _random_token(value: str) -> bool:
    """Letters and digits mixed with some spread: what generated keys look like, unlike
    hyphenated words such as `sk-learn-style-option-name`."""
    return (
        bool(_DIGIT_RE.search(value))
        and bool(_LETTER_RE.search(value))
        and not is_masked(value)
        and _entropy(value) >= 3.0
    )


def _not_masked(value: str) -> bool:
    return not is_masked(value)


def _aws_key_id(value: str) -> bool:
    # AKIAIOSFODNN7EXAMPLE and friends are AWS's documentation placeholders (gitleaks allowlist).
    return not is_masked(value) and not value.endswith("EXAMPLE")


def _hf_token(value: str) -> bool:
    # Real tokens are random mixed case; identifiers like hf_requiredTypes are camelCase words.
    body = value[3:]
    upper = sum(c.isupper() for c in body)
    return upper >= 2 and len(body) - upper >= 2 and not is_masked(body) and _entropy(body) >= 3.5


def _auth_credential(value: str) -> bool:
    # Digits, or a long high-entropy run; prose such as "Bearer authentication" has neither.
    if is_masked(value) or _is_reference(value) or _ENV_NAME_RE.fullmatch(value):
        return False
    return bool(_DIGIT_RE.search(value)) or (len(value) >= 16 and _entropy(value) >= 3.5)


def _url_password(value: str) -> bool:
    return not is_masked(value) and not _is_reference(value) and not PLACEHOLDER_RE.search(value)


class Rule:
    """One credential shape: a regex, and a check on what it matched."""

    def __init__(
        self,
        kind: str,
        regex: re.Pattern[str],
        check: Callable[[str], bool],
        prefilter: str,
        lower: bool = False,
        gate: str = "",
    ) -> None:
        self.kind, self.regex, self.check = kind, regex, check
        # An RE2 pattern that matches wherever `regex` can (no lookbehind): the scrubber's one
        # set pass over a text runs this rule only where it does.
        self.prefilter = prefilter
        self.lower = lower  # match on the lowercased text, check the original
        self.gate = gate  # a long literal the match contains: `in` skips clean text faster
        # The secret is group `s` if there is one, else the match; any other named group is a
        # kind of its own, reported when it took part.
        self.group: str | int = "s" if "s" in regex.groupindex else 0
        self.kinds = [g for g in regex.groupindex if g != "s"]

    def findings(self, text: str, low: str) -> list[tuple[str, Span]]:
        subject = low if self.lower else text
        if self.gate not in subject:
            return []
        found = []
        for m in matches(self.regex, subject):
            start, end = m.span(self.group)
            if self.check(text[start:end]):
                kind = next((k for k in self.kinds if m.group(k) is not None), self.kind)
                found.append((kind, (start, end)))
        return found


_PEM_LABEL = r"-----{}[ A-Z0-9_-]{{0,60}}PRIVATE KEY(?: BLOCK)?-----"
# A line break as written, or escaped once or twice inside JSON or Python string literals
# (a service-account JSON written by a tool and serialized again: `\\n`, `\\\\n`).
_BREAK = r"[ \t]*(?:\r?\n|(?:\\{1,3}r)?\\{1,3}n)[ \t]*"
_PRIVATE_KEY_RE = re.compile(
    _PEM_LABEL.format("BEGIN")
    # PEM and PGP armour headers, then base64 lines; spaces only before a long base64 run, so
    # prose after a truncated block is not swallowed.
    + rf"(?:{_BREAK}(?:Proc-Type|DEK-Info|Version|Comment|Hash|Charset):[^\r\n\\]*)*"
    # PGP armour: a blank line between the headers and the body.
    + rf"(?:{_BREAK}(?={_BREAK}))?"
    + rf"(?:(?:{_BREAK}|[ \t]+(?=[A-Za-z0-9+/=]{{16}}))[A-Za-z0-9+/=]+)+"
    + rf"(?:(?:{_BREAK}|[ \t]*){_PEM_LABEL.format('END')})?"
)
_AUTH_VALUE = r"(?P<s>[a-z0-9._~+/=@-]{8,})"  # on lowercased text
# A key's header with no body after it (cut off, or pasted alone), and PuTTY key files: the
# audit's scanner flags both wherever they stand but in code, quoted (a closer follows).
_NOT_QUOTED = r"""(?!-*[ ]*["'`),;])"""
# The leading dashes only where a run of them starts: tried at every dash of a long run, the
# optional group backtracked across the whole run each time (quadratic).
_KEY_HEADER_RE = re.compile(
    r"(?:(?<!-)-{2,})?BEGIN[ A-Z0-9_-]{0,60}PRIVATE KEY(?: BLOCK)?" + _NOT_QUOTED + "(?:-{2,})?"
)
_PUTTY_RE = re.compile(
    r"PuTTY-User-Key-File-\d+" + _NOT_QUOTED
    + r"[^\r\n]*(?:\r?\n(?:[A-Za-z-]{1,40}:[^\r\n]*|[A-Za-z0-9+/=]{16,}))*"
)  # fmt: skip

# In priority order: where two findings overlap, the earlier rule wins. Each pattern opens with
# a literal and checks the character before it by lookbehind: `re` then jumps from one
# occurrence of the literal to the next, which keeps clean text cheap.
RULES: tuple[Rule, ...] = (
    Rule("private_key", _PRIVATE_KEY_RE, lambda s: True, "PRIVATE KEY", gate="PRIVATE KEY"),
    # One scan for both: `sk-ant-...` is Anthropic's, any other `sk-...` OpenAI's.
    Rule(
        "openai_key",
        re.compile(
            r"sk-(?<![\w-]sk-)(?:(?P<anthropic_key>ant-[a-z]{2,8}\d{0,3}-)"
            r"|(?!ant-)(?:proj-|svcacct-|admin-|None-)?)[A-Za-z0-9_-]{20,}"
        ),
        _random_token,
        "sk-",
    ),
    Rule(
        "github_token",
        re.compile(
            r"g(?<![A-Za-z0-9_]g)(?:h[pousr]_[A-Za-z0-9]{30,255}|ithub_pat_[A-Za-z0-9_]{30,255})"
            r"(?![A-Za-z0-9_])"
        ),
        _not_masked,
        "gh[pousr]_|github_pat_",
    ),
    Rule(
        "hf_token",
        re.compile(r"hf_(?<![A-Za-z0-9_]hf_)[A-Za-z0-9]{30,40}(?![A-Za-z0-9_])"),
        _hf_token,
        "hf_",
    ),
    Rule(
        "aws_access_key_id",
        re.compile(r"A(?<![A-Za-z0-9]A)(?:3T[A-Z0-9]|KIA|SIA|BIA|CCA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
        _aws_key_id,
        "A(?:3T[A-Z0-9]|KIA|SIA|BIA|CCA)",
    ),
    Rule(
        "jwt",
        re.compile(
            r"ey(?<![A-Za-z0-9_-]ey)[A-Za-z0-9_-]{12,}={0,2}\.ey[A-Za-z0-9_-]{12,}={0,2}"
            r"(?:\.[A-Za-z0-9_-]{8,}={0,2})?"
        ),
        lambda s: True,
        r"ey[A-Za-z0-9_-]{12,}={0,2}\.ey",
    ),
    Rule(
        "url_password",
        re.compile(
            r"://(?<=[A-Za-z0-9]://)[^\s:/?#@\"'<>]*:(?P<s>[^\s/?#\"'<>]+)@[A-Za-z0-9._~%\[\]-]+"
        ),
        _url_password,
        r"://[^\s:/?#@\"'<>]*:[^\s/?#\"'<>]+@[A-Za-z0-9._~%\[\]-]",
    ),
    Rule("private_key", _KEY_HEADER_RE, lambda s: True, "PRIVATE KEY", gate="PRIVATE KEY"),
    Rule("private_key", _PUTTY_RE, lambda s: True, "PuTTY-User-Key-File-", gate="PuTTY"),
    Rule(
        "bearer_token",
        re.compile(r"bearer(?<![a-z0-9_]bearer)[ \t]+" + _AUTH_VALUE),
        _auth_credential,
        r"(?i)bearer[ \t]",
        lower=True,
        gate="bearer",
    ),
    Rule(
        "bearer_token",
        re.compile(
            r"authorization(?![a-z0-9_])[\"']?[ \t]*[:=][ \t]*[\"']?"
            r"(?:(?:bearer|basic|token|api-token|digest)[ \t]+)?" + _AUTH_VALUE
        ),
        _auth_credential,
        "(?i)authorization",
        lower=True,
        gate="authorization",
    ),
)
