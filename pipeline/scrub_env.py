"""Assignments whose name says the value is secret: `NAME=value`, `name: value`, `"name": "v"`.

Covers .env files, `printenv` output, `export`, variables set before a command, YAML, JSON and
code literals. The name decides first, then the value must look like a literal rather than code,
a reference or a placeholder: sessions are full of `api_key=api_key` and `token: str`.
"""

from __future__ import annotations

import bisect
import functools
import re
import string

from pipeline.scrub_patterns import (
    MASKED,
    PLACEHOLDER_RE,
    REFERENCE,
    Span,
    is_masked,
    matches,
    word_set,
)

# Keywords that may sit in a secret's name, then the rest of the name and a separator; run on
# the lowercased text. Lookaheads drop the words that merely begin with one (`tokens`,
# `keyword`, `author`, `passed`), which are common in code and logs. Each pattern opens with a
# literal led by a rarer letter (lookbehind checks what comes before), and `re` jumps between
# occurrences of that literal.
_NAME_REST = (
    r"(?P<rest>[a-z0-9_.-]{0,64}+)[\\\"'\]]{0,3}[ \t]*+(?::=|=>|=(?!=)|:(?![:/]))[ \t]*+"
    # Code `_kind` would turn down anyway, dropped here at C speed: calls and subscripts, type
    # annotations, f-strings.
    r"(?![a-z_][a-z0-9_.]*[(\[]|(?:str|int|bool|float|bytes|dict|list|none|any)\b|(?:f|rf|fr)[\"'])"
)
_KEYWORD_RES = tuple(
    re.compile(keyword + _NAME_REST)
    for keyword in (
        # `key` alone is too common in code; `key` in a longer name counts.
        r"k(?:ey(?<=[a-z0-9_.-]key)(?!s?(?:word|board|ring|frame|stroke|press|pair|store|chain))"
        r"|(?<=tok)en(?!s|iz))",
        r"cre(?:d(?!it)|(?<=secre)t(?!s(?![a-z])|ar))",
        r"p(?:ass(?!ed|es|ing|age|port|enger|ive|through|over)|wd|rivate(?!ly)|sk)",
        r"uth(?<=auth)(?!or|ent)",
        r"ws(?<=aws)",
    )
)
# RE2 patterns matching wherever each of _KEYWORD_RES can (case-insensitive on the original
# text): the keyword, the rest of the name, then a separator and the start of a value.
_PREFILTER_TAIL = r"[a-z0-9_.-]*[\\\"'\]]{0,3}[ \t]*[:=][ \t]*[^\s,;&)\]}]"
ENV_PREFILTERS = tuple(
    f"(?i)(?:{keywords}){_PREFILTER_TAIL}"
    for keywords in ("key|token", "cred|secret", "pass|pwd|private|psk", "auth", "aws")
)
_NAME_CHARS = string.ascii_lowercase + string.digits + "_.-"  # of a name, lowercased
_WORD_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")  # digits carry no meaning
# After the name: closing quotes or brackets (`"name":`, `d["name"] =`), the separator, then a
# quoted value (maybe with escaped quotes, as in JSON inside JSON) or a bare one.
_VALUE_RE = re.compile(
    r"""(?P<close>[\\"'\]]{0,3})(?P<pre>[ \t]*)(?P<sep>:=|=>|=(?!=)|:(?![:/]))(?P<post>[ \t]*)@?"""
    r"""(?:(?:[rbuRBU]{1,2}(?=\\?["']))?"""  # a Python string prefix
    r"""(?P<bs>\\?)(?P<q>["'`])(?P<qv>[^\r\n]{0,1024}?)(?P=bs)(?P=q)"""
    r"""|(?P<v>[^\s"'`,;&)\]}]{1,256}))"""
)
_COLON_END_RE = re.compile(r"""[\\"',;)\]}]|[ \t]*(?:$|#|//)""", re.MULTILINE)

_STRONG = word_set(
    "secret token password passwd pwd passphrase credential credentials creds auth"
    " authorization apikey private pass psk passcode passwort"
)
_STRONG_SUFFIXES = ("token", "secret", "password", "passwd", "pwd", "apikey", "passphrase", "auth")
# Names about a secret rather than holding one (gitleaks' generic-api-key allowlist, extended).
_NOT_SECRET = word_set("public publishable csrf xsrf")
_META_LAST = word_set(
    "id ids name names path paths file files dir directory url urls uri endpoint type types size"
    " length len count limit min max ttl timeout expiry expires expiration header headers prefix"
    " suffix field fields column provider method mode algorithm alg format enabled disabled"
    " enable disable required version host port domain user username email variable var env"
    " source location region arn policy scope scopes label pattern regex sock socket agent helper"
    " command cmd program hint prompt"
)
# In code, `key` alone is too common (detect-secrets: "cannot make 'key' a keyword, too noisy"):
# it needs a qualifier. An UPPER_SNAKE name ending in KEY counts unless a word says otherwise.
_KEY_QUALIFIERS = word_set(
    "api secret access private signing sign encryption encrypt master client license licence app"
    " service account webhook session ssh jwt hmac consumer subscription admin deploy root write"
    " read openai anthropic claude gemini google groq mistral cohere stripe sendgrid mailgun twilio"
    " slack discord telegram pinecone supabase firebase azure aws gcp github gitlab hf huggingface"
    " replicate together deepseek openrouter"
)
_KEY_DENY = word_set(
    "bucket foreign hot idx natural primary schema sequence sort cache partition idempotency"
    " object lookup row index group hash map dict redis gpg"
)

_TRIVIAL = word_set(
    "true false yes no on off none null nil undefined empty required optional string str bytes"
    " int bool boolean number any object bearer basic token secret password passwd changeme"
    " changeit default redacted hidden placeholder example sample dummy test testing todo fixme"
    " tbd unset value foo bar baz qux foobar"
)
# Everything else that stands where a secret would: masks and references; placeholders (the
# documented kind; `changeme` and friends are public defaults, so nothing to hide); our own
# placeholders; the name of another variable (`Bearer ACCESS_TOKEN`); paths; versions,
# addresses, times and dates; URLs (credentials in them are url_password's).
_NOT_A_VALUE_RE = re.compile(
    "|".join(
        (
            MASKED,
            REFERENCE,
            r"(?i:^(?:your|my|insert|enter|replace|put|paste)[_\- ]|[_\- ]here$)",
            r"(?i:fake|dummy|placeholder|example|changeme|changeit|redacted)",
            r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$",
            r"^(?:~|\.{1,2})?/[\w.@/-]*$|^[A-Za-z]:\\|^[a-z0-9_.-]+(?:/[a-z0-9_.-]+)+$",
            r"^\[[^\]]*\]$",  # `[MASK2]`: a tokenizer's special token
            r"^(?:\\[uUx][0-9A-Fa-f]{2,8})+$|\\[dwsbDWS.]",  # escaped characters, regexes
            r"^\d+(?:[.:/-]\d+)+$",
            r"://",
        )
    )
)
# Names in code: letters only, snake_case (`token_ids_0`), or dotted (`settings.SECRET_KEY`).
# (`[A-Za-z_]\w*` with an underscore after its first character is tested apart: `\w*_\w*`
# backtracks quadratically on long values.)
_IDENTIFIER_RE = re.compile(r"[A-Za-z_]+|[A-Za-z_$][\w$]*+(?:\.[A-Za-z_$][\w$]*+)+")
_WORD_RE_FULL = re.compile(r"[A-Za-z_]\w*+")
_ASSIGNED = re.compile(r"[A-Za-z_][\w.]*=[^=]")
_AWS_SECRET_RE = re.compile(r"[A-Za-z0-9/+]{40}")
_NUMBER_RE = re.compile(r"[\d_.,:+-]+")


def _identifier(value: str) -> bool:
    """A name in code: letters only, snake_case (`token_ids_0`), or dotted (`settings.KEY`)."""
    if _IDENTIFIER_RE.fullmatch(value):
        return True
    return "_" in value[1:] and bool(_WORD_RE_FULL.fullmatch(value))


def _bare_password(value: str) -> bool:
    """`password: correcthorsebatterystaple`: one long word after a password name is the
    password (recall first), unless it reads as a variable (`userPassword`, `pwd_hash`)."""
    low = value.lower()
    return (
        len(value) >= 8
        and value.isalnum()
        and (value.islower() or value.isupper() or not value[0].islower())  # not camelCase
        and not any(w in low for w in ("pass", "pwd", "word", "secret", "hash", "cred"))
    )


def literal_value(value: str, quoted: bool) -> bool:
    """Whether a value after a secret-like name looks like a literal secret rather than code,
    a reference, a placeholder or a trivial word; the generic betterleaks rules ask this."""
    if len(value) < 4 or value.lower() in _TRIVIAL or _NOT_A_VALUE_RE.search(value):
        return False
    if quoted:
        return True
    # Code: calls, subscripts, names, and assignments (`partition_key=None` after a comma).
    return not (any(c in value for c in "()[]{}") or _identifier(value) or _ASSIGNED.match(value))


def _words(name: str) -> list[str]:
    return [w.lower() for part in re.split(r"[_.\-]+", name) for w in _WORD_RE.findall(part)]


def _secret_name(words: list[str], upper: bool) -> bool:
    if not words or words[-1] in _META_LAST or any(w in _NOT_SECRET for w in words):
        return False
    if any(w in _STRONG or w.endswith(_STRONG_SUFFIXES) for w in words):
        return True
    if "key" not in words and "keys" not in words:
        return False
    if upper and words[-1] in ("key", "keys"):
        return not any(w in _KEY_DENY for w in words)
    return any(w in _KEY_QUALIFIERS for w in words)


@functools.lru_cache(maxsize=4096)
def _name_info(name: str) -> tuple[bool, bool, bool, bool]:
    """(secret name, AWS secret context, UPPER_SNAKE, may hold spaces); names repeat, so this
    is cached."""
    words = _words(name)
    upper = name.upper() == name and any(c.isalpha() for c in name)
    aws = "aws" in words or any(w.endswith("secret") for w in words)
    phrase = any(w.startswith(("pass", "pwd")) for w in words)
    return _secret_name(words, upper), aws, upper, phrase


def secret_name(name: str) -> bool:
    """Whether a name says its value is secret (`DB_PASSWORD`, `apiKey`, `psk`)."""
    return _name_info(name)[0]


def _kind(text: str, name: str, m: re.Match[str]) -> str | None:
    """The finding's kind for the value in `m`, or None when it is not a secret."""
    secret, aws, upper, phrase = _name_info(name)
    quoted = m.group("q") is not None
    value = m.group("qv") if quoted else m.group("v")
    # wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY is still scrubbed, as in detect-secrets' tests.
    if aws and _AWS_SECRET_RE.fullmatch(value) and not value.endswith("EXAMPLE"):
        return None if is_masked(value) else "aws_secret_access_key"
    if not secret or len(value) < 4 or value.lower() in _TRIVIAL:
        return None
    sep, spaced = m.group("sep"), bool(m.group("pre") or m.group("post"))
    env_line = upper and sep == "=" and not spaced  # NAME=value: a literal, as in .env files
    if not quoted:
        if any(c in value for c in "([{"):
            return None  # a call, subscript or literal: code, not a value
        # After `:` a bare value needs the name quoted (JSON) or a space (YAML), and must end
        # its line or item: `io.jsonwebtoken:jjwt-0.11.2` and prose are not assignments.
        if sep == ":" and (
            not (m.group("close") or m.group("post")) or not _COLON_END_RE.match(text, m.end())
        ):
            return None
        # Unquoted names are literal in a .env line, but elsewhere they are mostly variable or
        # type names: `password=password`, `token: SecretStr`, `token_ids=token_ids_0`.
        if not env_line and _identifier(value) and not (phrase and _bare_password(value)):
            return None
    if not phrase:
        # Keys and tokens have no spaces ("torch.Tensor | None" is a type) and, outside .env
        # lines, carry digits: code is full of `bos_token="[CLS]"` and `KEY = "ctx"`. Numbers
        # alone are ids and counts (`token=45075`); passwords are the exception to all three.
        if " " in value or "\t" in value or _NUMBER_RE.fullmatch(value):
            return None
        if not env_line and not any(d in value for d in "0123456789"):  # memchr, not a loop
            return None
    return None if _NOT_A_VALUE_RE.search(value) else "env_value"


def env_findings(text: str, low: str, which: list[int] | None = None) -> list[tuple[str, Span]]:
    """(kind, span of the value) for each secret-named assignment; `low` is `text` lowercased
    with the same length; `which` the keywords to look for (indices into ENV_PREFILTERS)."""
    found: list[tuple[str, Span]] = []
    seen: set[int] = set()
    # Our own placeholders (`<SECRET:kind>`) read like `SECRET: kind`; step over them.
    ours = [m.span() for m in PLACEHOLDER_RE.finditer(text)] if "<SECRET:" in text else []
    for i in range(len(_KEYWORD_RES)) if which is None else which:
        regex = _KEYWORD_RES[i]
        covered = 0  # the end of the last value found: names inside it are part of the secret
        for hit in matches(regex, low):
            start, end = hit.start(), hit.end("rest")
            if start < covered:
                continue  # `password=password=...`: rescanning from each would be quadratic
            i = bisect.bisect_right(ours, (start, len(text))) - 1
            if end in seen or (i >= 0 and start < ours[i][1]):
                continue  # a name already seen through another of its keywords, or ours
            seen.add(end)
            start -= _name_head(low, start)
            name = text[start:end].strip(".-")
            secret, aws, _, _ = _name_info(name)
            m = _VALUE_RE.match(text, end) if secret or aws else None
            kind = _kind(text, name, m) if m else None
            if kind:
                found.append((kind, m.span("qv" if m.group("q") is not None else "v")))
                covered = found[-1][1][1]
    return found


def _name_head(low: str, start: int) -> int:
    """How many name characters precede `start`: `str.rstrip` scans them at C speed."""
    head = 0
    while True:
        segment = low[max(0, start - head - 64) : start - head]
        run = len(segment) - len(segment.rstrip(_NAME_CHARS))
        head += run
        if run < 64:
            return head
