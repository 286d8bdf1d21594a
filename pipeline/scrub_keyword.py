"""Quoted values after secret-sounding names, as the split audit's second scanner reads them.

`db_pass = "Xk29aLq0pZ"`, `"password": "PASSWORD"`, `if secret == "s3cr3t-v4lue"`: the
keyword shapes of detect-secrets' keyword plugin (quotes required, as for text with no file
type), written out here so the scrubber scrubs at least what the blocking check would flag and
never calls that scanner. The judgement is the check's, not `scrub_env`'s finer one: a value of
six characters or more that is not a dummy, another variable's name, a template or a reference.
"""

from __future__ import annotations

import re

from pipeline.scrub_patterns import PLACEHOLDER_RE, Span, matches

_DENY = (
    r"(?:api_?key|auth_?key|service_?key|account_?key|db_?key|database_?key|priv_?key"
    r"|private_?key|client_?key|db_?pass|database_?pass|key_?pass|password|passwd|pwd|secret"
    r"|contraseña|contrasena)\w{0,64}+"  # bounded and possessive: linear on long words
)
_CLOSING = r"""[\]'"]{0,2}"""
_WS = r"[^\S\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]*"  # whitespace within one line
# Starts with a word character, holds no quote or line break, does not end with `,` or `` ` ``.
# In backticks it holds no backtick either (the scanner allows one): each scan from a quote
# then stops at the next quote, and the cost stays linear.
_NOT_IN = "\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029'\""
_SECRET = rf"""(?:(?P<q>['"])(?P<s>(?=\w)[^{_NOT_IN}]*+(?<![,`]))(?P=q)"""
_SECRET += rf"|`(?P<b>(?=\w)[^{_NOT_IN}`]*+(?<!,))`)"
_DENY_RE = re.compile(_DENY[: _DENY.rindex(")") + 1])  # the names alone, on lowercased text
# Each opens with a name: tried only where `_DENY_RE` found one (`re.I` scans are slow).
_AFTER_NAME = (
    re.compile(rf"{_DENY}(?:{_CLOSING}):{_WS}{_SECRET}", re.I),
    re.compile(rf"{_DENY}(?:{_CLOSING}){_WS}(?:={{1,3}}|!==?){_WS}{_SECRET}", re.I),
    re.compile(rf"{_DENY}[^\s]{{0,50}}?{_WS}{_SECRET};", re.I),
    re.compile(rf"{_DENY}(?:{_CLOSING}){_WS}=>?{_WS}{_SECRET}", re.I),
)
_BEFORE_NAME = re.compile(rf"{_SECRET}{_WS}[!=]{{2,3}}{_WS}\w*{_DENY}")  # `"v" == password`
# RE2 patterns matching wherever the regexes above can (a name, then `:`, `=`, `!=` or `=>` and
# a quote; a name, a quote and a `;` later on the line; a quote, `==` and a name): the
# scrubber's set pass runs this detector only where one occurs.
_NAMES = _DENY_RE.pattern
_W = r"[\w\x{80}-\x{10ffff}]"  # RE2's `\w` is ASCII; Python's is not
_S = r"[\t\x0b\x0c\r\x1c-\x1f \x{85}\p{Z}]"  # Python's whitespace within a line (and more)
PREFILTERS = (
    rf"(?i){_NAMES}{_W}*[\]'\"]{{0,2}}{_S}*(?::|=|!=){_S}*['\"`]",
    rf"(?i){_NAMES}[^\s]*{_S}*['\"`][^\n]*;",
    rf"['\"`][^\n]*[!=]=[^\n]*{_NAMES}",
)
_MIN_VALUE = 6
_MIN_LEFT = 4
_DUMMIES = frozenset(
    {"changeme", "example", "dummy", "placeholder", "redacted", "secret", "testing", "foobar"}
)
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
_LETTER = re.compile(r"[A-Za-z]")


def _a_value(value: str) -> bool:
    if len(value) < _MIN_VALUE or value.lower() in _DUMMIES or _ENV_NAME.fullmatch(value):
        return False
    if value[0] == "$" or not _LETTER.search(value):
        return False
    # Beside one of our placeholders, what is left must still be a value (`keyzd=>= <SECRET:..>`).
    left = PLACEHOLDER_RE.sub("", value)
    if left != value and sum(c.isalnum() for c in left) < _MIN_LEFT:
        return False
    return not ((value[0] == "{" and value[-1] == "}") or (value[0] == "<" and value[-1] == ">"))


def keyword_findings(text: str, low: str, which: list[int] | None = None) -> list[tuple[str, Span]]:
    """(kind, span of the value) for each quoted value beside a secret-sounding name; `low` is
    `text` lowercased with the same length, `which` the PREFILTERS that occur in it."""
    found = []
    shapes = range(len(PREFILTERS)) if which is None else which
    if 0 in shapes or 1 in shapes:
        for name in matches(_DENY_RE, low):
            for regex in _AFTER_NAME:
                if m := regex.match(text, name.start()):
                    found += _value(m)
    if 2 in shapes:
        for m in matches(_BEFORE_NAME, text):
            found += _value(m)
    return found


def _value(m: re.Match[str]) -> list[tuple[str, Span]]:
    group = "s" if m["s"] is not None else "b"
    return [("keyword_value", m.span(group))] if _a_value(m[group]) else []
