"""Personal data: email addresses and phone numbers.

Phones are matched in three shapes only (international `+CC`, North American, European
national with a leading 0) and counted by digits, so versions, dates, IPs, timestamps, hex ids,
UUIDs and `file:line:col` positions stay as they are.
"""

from __future__ import annotations

import re
import string

from pipeline.scrub_patterns import Span, matches, word_set

_LOCAL_CHARS = frozenset(string.ascii_letters + string.digits + "._%+-")
_DOMAIN_RE = re.compile(r"(?:[A-Za-z0-9_-]+\.)+(?P<tld>[A-Za-z]{2,24})(?![A-Za-z0-9_-])")
# Addresses that identify nobody: the SSH user of git hosts and no-reply senders.
_ANONYMOUS_LOCAL = frozenset({"git", "noreply", "no-reply"})
# `icon@2x.png`, `pkg@v2.py`: asset and file names, not addresses.
_FILE_EXTENSIONS = word_set(
    "png jpg jpeg gif svg webp ico bmp py pyc js mjs ts tsx jsx json css scss html txt md yaml yml"
    " toml lock rs go rb java kt c h cpp hpp sh whl gz zip tar pdf log csv ipynb"
)


# RE2 patterns matching wherever an address can be, and each phone pattern below can (no
# lookbehind: the character before is consumed instead). `_D` holds Python's `\d` (Unicode
# digits) with every non-ASCII character: far fewer DFA states than `\p{Nd}`.
_D = r"[0-9\x{80}-\x{10ffff}]"
EMAIL_PREFILTER = r"(?:[A-Za-z0-9._%+-]|[^\x00-\x7f])@[A-Za-z0-9_-]+\.[A-Za-z]{2}"
PHONE_PREFILTERS = (
    r"\+[1-9]",
    r"\([2-9][^)]{2}\)",
    rf"(?:^|[^\w+.:/#@$-])0[1-9]{_D}{{0,3}}[ .-]{_D}{{2}}",
    rf"[2-9]{_D}{_D}-{_D}{{3}}-{_D}{{4}}",
    rf"[2-9]{_D}{_D}\.{_D}{{3}}\.{_D}{{4}}",
)


def email_spans(text: str) -> list[Span]:
    # Anchored on each `@`: scanning for the local part from every position would be slow.
    found = []
    at = text.find("@")
    while at != -1:
        start = at
        while start > 0 and at - start < 64 and _local_char(text[start - 1]):
            start -= 1
        while start < at and text[start] in ".%+-":
            start += 1
        domain = _DOMAIN_RE.match(text, at + 1)
        if start < at and domain and _personal(text[start:at], text[at + 1 : domain.end()]):
            found.append((start, domain.end()))
        at = text.find("@", domain.end() if domain else at + 1)
    return found


def _local_char(c: str) -> bool:
    # Non-ASCII letters too: `ayşe@` must go whole, not leave `ayş` behind.
    return c in _LOCAL_CHARS or (not c.isascii() and c.isalnum())


def _personal(local: str, domain: str) -> bool:
    tld = domain.rsplit(".", 1)[-1].lower()
    return (
        local.lower() not in _ANONYMOUS_LOCAL
        and not domain.lower().endswith("noreply.github.com")
        and tld not in _FILE_EXTENSIONS
    )


# Each pattern opens with a literal and checks the characters before it by lookbehind, so `re`
# jumps between occurrences of the literal instead of trying every digit. A number must not
# follow a word character, `+`, `.`, `:`, `/`, `#`, `@`, `$` or `-`.
_NOT_AFTER = r"[\w+.:/#@$-]"
_END = r"(?![\w@]|[.:/-]\d)"
_INTERNATIONAL_RE = re.compile(
    r"\+(?<![\w+]\+)[1-9]\d{0,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,6}){1,6}+" + _END
)
# (415) 555-0123, and 030 1234567, 020 7946 0958, 06 12 34 56 78 (European national forms,
# which open with a 0 and are told apart by their digit count).
_NATIONAL_RES = (
    re.compile(rf"\((?<!{_NOT_AFTER}\()[2-9]\d{{2}}\)[ .-]?\d{{3}}[.-]\d{{4}}" + _END),
    re.compile(rf"0(?<!{_NOT_AFTER}0)[1-9]\d{{0,3}}(?:[ .-]\d{{2,8}}){{1,4}}+" + _END),
)
# 415-555-0123, 415.555.0123 and 1-415-555-0123, anchored on the first separator after the
# area code: the match starts 3 digits in. Before the area code only a lone `1-` may stand.
_SEPARATED_RES = tuple(
    re.compile(
        rf"{sep}(?<=[2-9]\d\d{sep})(?<![\w+:/#@$]\d\d\d{sep})(?<![^1][.-]\d\d\d{sep})"
        rf"(?<!{_NOT_AFTER}1[.-]\d\d\d{sep})\d{{3}}{sep}\d{{4}}" + _END
    )
    for sep in ("-", r"\.")
)


def phone_spans(text: str, which: list[int] | None = None) -> list[Span]:
    """Phone numbers in `text`, of the shapes in `which` (indices into PHONE_PREFILTERS)."""
    found = []
    shapes = range(len(PHONE_PREFILTERS)) if which is None else which
    if 0 in shapes:
        for m in matches(_INTERNATIONAL_RE, text):
            digits = sum(c.isdigit() for c in m[0])
            spaced = any(not c.isdigit() for c in m[0][1:])
            # E.164 allows at most 15 digits; unseparated runs need 10 to tell them from
            # counters, and one dot makes a signed decimal (`+1.12345679`).
            if 8 <= digits <= 15 and (spaced or digits >= 10) and m[0].count(".") != 1:
                found.append(m.span())
    for shape, regex in ((1, _NATIONAL_RES[0]), (2, _NATIONAL_RES[1])):
        if shape in shapes:
            for m in matches(regex, text):
                if m[0][0] == "(" or _european(m[0]):
                    found.append(m.span())
    for shape, regex in ((3, _SEPARATED_RES[0]), (4, _SEPARATED_RES[1])):
        if shape in shapes:
            for m in matches(regex, text):
                found.append((m.start() - 3, m.end()))
    return found


def _european(number: str) -> bool:
    separators = {c for c in number if not c.isdigit()}
    groups = re.split(r"\D", number)
    # One kind of separator and a national digit count; not a hex dump's runs of `00`, nor a
    # counted row like `01 02 03 04 05`.
    return (
        len(separators) == 1
        and 9 <= sum(map(len, groups)) <= 11
        and sum(g.strip("0") == "" for g in groups) < 2
        and any(int(b) != int(a) + 1 for a, b in zip(groups, groups[1:], strict=False))
    )
