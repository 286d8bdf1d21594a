"""The betterleaks rule set (gitleaks' successor, MIT) as the scrubber's primary detectors.

`data/betterleaks.toml` is the published default config, unchanged (see its ORIGIN note). Each
rule's regex is compiled with RE2 (the rules' own Go syntax; linear time on any input); its
keywords gate it, as in betterleaks (`scrub_leaks` scans). Validation and analysis expressions
call provider APIs and are not used. A provider's exact key format is scrubbed whatever its
entropy; only the generic rules keep an entropy and placeholder judgement, as betterleaks' own
filters do, and every rule keeps the placeholders its filter names (documented example keys).
"""

from __future__ import annotations

import functools
import math
import re
import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import re2
from re2 import _re2

from pipeline.scrub_env import literal_value
from pipeline.scrub_patterns import PLACEHOLDER_RE, Span, is_masked

RULES_FILE = Path(__file__).with_name("data") / "betterleaks.toml"

# betterleaks reports these only beside a companion rule (`skipReport`), but each holds a secret
# on its own; the other companions are ids, names, hosts and URLs, which are not scrubbed.
_LONE_SECRETS = frozenset(
    {
        "aws-secret-access-key",
        "alibaba-sts-security-token",
        "exoscale-api-secret",
        "ovh-consumer-key",
        "polymarket-api-secret",
        "polymarket-passphrase",
    }
)
# No provider's shape: a keyword and a value. These keep the entropy bound of their filter and
# a placeholder judgement; every other rule is a provider's format and is trusted as matched.
_GENERIC = frozenset(
    {
        "generic-api-key",
        "generic-password",
        "generic-credential-uri",
        "hashicorp-tf-password",
        "nuget-config-password",
        "kubernetes-secret-yaml",
        "curl-auth-header",
        "curl-auth-user",
    }
)
# Literals every match of these generic rules holds beside its keyword (lowercased): their
# keywords (`curl`, `secret`, `https://`) occur in most session text.
_REQUIRED = {
    "curl-auth-header": ("-h",),
    "curl-auth-user": ("-u",),
    "generic-credential-uri": ("@",),
    "kubernetes-secret-yaml": ("data:", "kind:"),
}
# Generic rules that read `name = value`: the value must look like a literal, not code.
_ASSIGNMENTS = frozenset(
    {"generic-api-key", "generic-password", "hashicorp-tf-password", "nuget-config-password"}
)
# Allowlists in a rule's filter that judge regularity rather than name a placeholder: a
# provider's format is scrubbed whatever its characters look like.
_REGULARITY_FILTERS = frozenset(
    {"mongodb-atlas-service-account-secret", "vault-service-token", "proof-full-access-api-key"}
)
_ENTROPY_RE = re.compile(r'entropy\(finding\["secret"\]\)\s*(<=?)\s*([\d.]+)')
_LETTERS_ONLY_RE = re.compile(r"[A-Za-z_.-]+")
_NAME_TAIL_RE = re.compile(r"[\w.-]{0,50}$")
_IMPORT_RE = re.compile(r"[ \t]*(?:>>>[ \t]*)?(?:from[ \t]+\S+[ \t]+)?import[ \t]")  # names
# 338 rules end a key with this group: a quote, whitespace, `;`, an escaped break or the end.
# A key ending a sentence or standing in brackets, a list, a URL's query or markup
# (`sk_live_....`, `(gsk_...)`, `xai-..., then`), before a backslash or a control character
# would be missed, so the group is widened.
_SUFFIX = r"""(?:\\?['"\x60]|[\s;]|\\[nr]|$)"""
_WIDE_SUFFIX = r"""(?:\\?['"\x60]|[\s;.,)&<>\]}:!?|*#\\\x00-\x1f\x7f\x{3002}\x{ff0c}]|\\[nr]|$)"""
OPTIONS = re2.Options()
OPTIONS.max_mem = 64 << 20  # the DFA of the longest rules outgrows RE2's 8 MB default
UNANCHORED = _re2.RE2.Anchor.UNANCHORED


@dataclass(frozen=True)
class LeakRule:
    id: str
    kind: str  # the placeholder's kind: the id in snake case, without a `.N` variant suffix
    regex: re2._Regexp
    raw: _re2.RE2  # the same regex, matched on UTF-8 bytes without the wrapper's per-call work
    keywords: tuple[str, ...]
    value_group: int  # 0: the first group that took part, as betterleaks does; -1: the match
    generic: bool
    allow: re2._Regexp | None  # documented placeholders the rule's filter names
    cased: tuple[str, ...]  # the keywords as the case-sensitive regex spells them, if it does
    required: tuple[str, ...]  # literals every match holds (lowercased)
    max_entropy: float  # generic rules drop values at or below this (or below, if not strict)
    strict: bool


def _kind(rule_id: str) -> str:
    return re.sub(r"\.\d+$", "", rule_id).replace("-", "_").replace(".", "_").lower()


def _filter_patterns(expr: str, field: str) -> list[str]:
    """The patterns of each plain `matchesAny(finding[field], [...])` in a filter."""
    found = []
    for m in re.finditer(r'(!?)matchesAny\(finding\["' + field + r'"\],\s*\[', expr):
        pos, patterns = m.end(), []
        while (
            t := re.compile(r'\s*,?\s*(`[^`]*`|"(?:\\.|[^"\\])*")').match(expr, pos)
        ) is not None:
            literal = t[1][1:-1]
            patterns.append(
                literal if t[1][0] == "`" else literal.encode().decode("unicode_escape")
            )
            pos = t.end()
        # Negated lists, and lists that only count beside another condition (`&&`: a file
        # type, a provider's name nearby), are not placeholders.
        before = expr[: m.start()].rstrip(" \t\n(")
        close = re.compile(r"[\s,]*\][\s]*\)\s*").match(expr, pos)
        after = expr[close.end() : close.end() + 2] if close else ""
        if not m[1] and not before.endswith("&&") and after != "&&":
            found += patterns
    return found


def _first_group_repeated(pattern: str) -> bool:
    """Whether the first capturing group is quantified (`([a-z0-9]{4}-){3}`): then it is a
    repetition rather than the secret, and the whole match is scrubbed."""
    depth, i, start, in_class = 0, 0, -1, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if pattern.startswith("[^]", i) or pattern.startswith("[]", i):
                i += 1
        elif c == "(":
            depth += 1
            if start < 0 and not pattern.startswith("(?", i):
                start = depth
        elif c == ")":
            if depth == start:
                return pattern[i + 1 : i + 2] in ("{", "*", "+", "?")
            depth -= 1
        i += 1
    return False


def _cased_keywords(pattern: str, keywords: tuple[str, ...]) -> tuple[str, ...]:
    """A case-sensitive regex that spells each keyword as a literal (`API-` for `api-`) can
    only match where that spelling occurs: a finer gate than the lowercased keyword."""
    if "(?i" in pattern or not keywords:
        return ()
    low, found = pattern.lower(), []
    for k in keywords:
        i = low.find(k)
        literal = pattern[i : i + len(k)] if i >= 0 else ""
        if (
            not literal
            or any(c in literal for c in "\\[](){}|?*+.^$")
            or pattern[i - 1 : i] == "\\"
        ):
            return ()
        found.append(literal)
    return tuple(found)


def _entropy_bound(expr: str) -> tuple[float, bool]:
    m = _ENTROPY_RE.search(expr)
    return (float(m[2]), m[1] == "<=") if m else (0.0, False)


@functools.cache
def _config() -> dict:
    with RULES_FILE.open("rb") as f:
        return tomllib.load(f)


def widened(pattern: str) -> str:
    """A rule's regex with its trailing boundary group also taking punctuation."""
    return pattern.replace(_SUFFIX, _WIDE_SUFFIX)


@functools.cache
def leak_rules() -> tuple[LeakRule, ...]:
    """The usable rules, in the file's order: those with a regex that report a secret."""
    rules = []
    for raw in _config()["rules"]:
        rid = raw["id"]
        if "regex" not in raw or (raw.get("skipReport") and rid not in _LONE_SECRETS):
            continue
        expr = raw.get("filter", "")
        bound, strict = _entropy_bound(expr)
        allow = [] if rid in _REGULARITY_FILTERS else _filter_patterns(expr, "secret")
        pattern = widened(raw["regex"])
        group = int(raw.get("valueGroup", 0)) or (-1 if _first_group_repeated(raw["regex"]) else 0)
        rules.append(
            LeakRule(
                id=rid,
                kind=_kind(rid),
                regex=re2.compile(pattern, OPTIONS),
                raw=_re2.RE2(pattern.encode(), OPTIONS),
                keywords=tuple(k.lower() for k in raw.get("keywords", ())),
                value_group=group,
                generic=rid in _GENERIC,
                allow=re2.compile("|".join(f"(?:{p})" for p in allow)) if allow else None,
                required=_REQUIRED.get(rid, ()),
                cased=_cased_keywords(
                    raw["regex"], tuple(k.lower() for k in raw.get("keywords", ()))
                ),
                max_entropy=bound,
                strict=strict,
            )
        )
    return tuple(rules)


@functools.cache
def _global_allow() -> re2._Regexp:
    """betterleaks' global filter: references (`$X`, `${X}`, `{{ x }}`, `%s`), booleans, one
    repeated character, home and system paths, standing where a secret would be."""
    return re2.compile(
        "|".join(f"(?:{p})" for p in _filter_patterns(_config()["filter"], "secret"))
    )


@functools.cache
def _generic_api_key_filter() -> tuple[re.Pattern[str], re2._Regexp | None, re2._Regexp | None]:
    """Stop words, name contexts and whole matches that betterleaks' generic-api-key filter
    drops (its provider checks need context we do not keep)."""
    expr = next(r.get("filter", "") for r in _config()["rules"] if r["id"] == "generic-api-key")
    words = re.search(r'containsAny\(finding\["secret"\], \[(.*?)\]\)', expr, re.DOTALL)
    contexts = re.findall(r"matchesAny\(genericMatchContext, \[`(.*?)`\]\)", expr, re.DOTALL)
    stop = re.findall(r'"([^"]*)"', words[1]) if words else []
    context = max(contexts, key=len) if contexts else None
    match = "|".join(f"(?:{p})" for p in _filter_patterns(expr, "line"))
    return (
        re.compile("|".join(map(re.escape, stop)) or "(?!)"),
        re2.compile(context, OPTIONS) if context else None,
        re2.compile(match, OPTIONS) if match else None,
    )


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values()) if n else 0.0


def matches(rule: LeakRule, data: bytes) -> Iterator[list[Span]]:
    """Each match of `rule` in `data`, as the byte spans of its groups (group 0 first)."""
    pos, end = 0, len(data)
    while pos <= end:
        spans = rule.raw.Match(UNANCHORED, data, pos, end)
        start, stop = spans[0]
        if start < 0:
            return
        yield spans
        pos = stop if stop > start else stop + 1


def secret_span(spans: list[Span], rule: LeakRule, data: bytes) -> Span:
    """The secret in a match: betterleaks' value group, else its first group that took part,
    else the match without surrounding line breaks."""
    if rule.value_group > 0:
        return spans[rule.value_group]
    for start, end in spans[1:] if rule.value_group == 0 else ():
        if end > start:
            return start, end
    start, end = spans[0]
    while start < end and data[start] == 10:
        start += 1
    while end > start and data[end - 1] == 10:
        end -= 1
    return start, end


def plausible(rule: LeakRule, text: str, span: Span, match: Span) -> bool:
    """Whether a match's value is a secret rather than a placeholder, a reference, a documented
    example, or (generic rules only) a value too regular or too much like code."""
    value = text[span[0] : span[1]]
    if rule.generic and not _generic_plausible(rule, text, value, span, match):
        return False
    if is_masked(value) or PLACEHOLDER_RE.search(value) or _global_allow().search(value):
        return False
    return not (rule.allow and rule.allow.search(value))


def _generic_plausible(rule: LeakRule, text: str, value: str, span: Span, match: Span) -> bool:
    api_key = rule.id == "generic-api-key"
    if api_key and _LETTERS_ONLY_RE.fullmatch(value):
        return False
    e = entropy(value)
    if e < rule.max_entropy or (rule.strict and e == rule.max_entropy):
        return False
    if "abcdefghijklmnopqrstuvwxyz" in value.lower():
        return False
    quoted = span[0] > 0 and text[span[0] - 1] in "'\"`"
    if rule.id in _ASSIGNMENTS and not literal_value(value.strip("'\"`"), quoted):
        return False
    if not api_key:
        return True
    stop, context, whole = _generic_api_key_filter()
    if stop.search(value.lower()):
        return False
    line_start = text.rfind("\n", max(0, match[0] - 200), match[0]) + 1
    head = _NAME_TAIL_RE.search(text, max(line_start, match[0] - 50), match[0])
    name = (head.group() if head else "") + text[match[0] : match[1]]
    line_end = text.find("\n", match[1], match[1] + 200)
    line = text[line_start : line_end if line_end >= 0 else match[1] + 200]
    if (whole and whole.search(line)) or _IMPORT_RE.match(line):
        return False
    return not (context and context.search(name))


def leak_rule_ids() -> list[str]:
    return [r.id for r in leak_rules()]
