"""Secrets and personal data out of session text, replaced by typed placeholders.

Credentials become `<SECRET:kind>`, personal data `<EMAIL>` and `<PHONE>`; no detector matches
a placeholder, and `scrub_text` repeats until a pass finds nothing, so scrubbing twice changes
nothing. Detectors: the betterleaks rule set (`scrub_rules`, the primary one), our fixed shapes
(`scrub_patterns`), command lines, webhooks and Azure signatures (`scrub_cli`), secret-named
assignments (`scrub_env`), passwords in config and credential files, on command lines and in
prose (`scrub_config`), quoted values the split audit's scanner flags (`scrub_keyword`),
base64 runs (`scrub_base64`), personal data (`scrub_pii`), and the same again on the text with
its JSON escapes undone (`scrub_escapes`). Text holding terminal escapes is scanned with each
blanked (`\x1b[32msk-...`: a key glued after a colour code). Each detector has a rule id;
`skip` turns rules off by id (a user's false positives).

Speed: one RE2 set pass over a text holds the rule set's keyword gate and every detector's
prefilter (an RE2 pattern matching wherever the detector can find something); only the
detectors whose prefilters occur run, so clean text costs that pass and little else.
"""

from __future__ import annotations

import bisect
import difflib
import functools
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.scrub_base64 import base64_findings
from pipeline.scrub_cli import (
    AZURE_PREFILTER,
    CLI_PREFILTERS,
    PROVIDER_PREFILTERS,
    WEBHOOK_PREFILTER,
    azure_findings,
    cli_findings,
    provider_findings,
    webhook_findings,
)
from pipeline.scrub_config import PREFILTERS as CONFIG_PREFILTERS
from pipeline.scrub_config import config_findings
from pipeline.scrub_env import ENV_PREFILTERS, env_findings
from pipeline.scrub_escapes import MAX_DEPTH, Unescaped
from pipeline.scrub_escapes import PREFILTER as ESCAPE_PREFILTER
from pipeline.scrub_keyword import PREFILTERS as KEYWORD_PREFILTERS
from pipeline.scrub_keyword import keyword_findings
from pipeline.scrub_leaks import Gate, Scan, leak_findings
from pipeline.scrub_parity import PREFILTERS as PARITY_PREFILTERS
from pipeline.scrub_parity import parity_findings
from pipeline.scrub_patterns import PLACEHOLDER_RE, RULES, Rule, Span
from pipeline.scrub_pii import EMAIL_PREFILTER, PHONE_PREFILTERS, email_spans, phone_spans
from pipeline.scrub_rules import leak_rule_ids, leak_rules

__all__ = [
    "PII_KINDS",
    "PLACEHOLDER_RE",
    "Finding",
    "find_secrets",
    "has_secret",
    "rule_ids",
    "check_rule_ids",
    "scrub_cli_output",
    "scrub_text",
    "scrub_value",
]

PII_KINDS = frozenset({"email", "phone"})


@dataclass(frozen=True)
class Finding:
    """One secret or piece of personal data: its kind, the rule that found it and where it
    lies, never its value."""

    kind: str  # anthropic_key, openai_key, stripe_access_token, ..., env_value, email, phone
    start: int
    end: int
    rule: str  # the detector's rule id: a betterleaks id (`stripe-access-token`) or ours


Found = list[tuple[str, str, Span]]  # (kind, rule id, span)


@dataclass(frozen=True)
class _Detector:
    # (scan, skip, which of `prefilters` occur in the text, or None for all) -> findings
    find: Callable[[Scan, frozenset[str], list[int] | None], Found]
    # RE2 patterns, together matching wherever `find` can find something: the detector runs
    # only on a text where one occurs. None: it always runs (it gates itself).
    prefilters: tuple[str, ...] | None


def _own(
    rule_id: str,
    findings: Callable[[Scan, list[int] | None], list[tuple[str, Span]]],
    prefilters: tuple[str, ...],
) -> _Detector:
    def find(scan: Scan, skip: frozenset[str], which: list[int] | None) -> Found:
        return [] if rule_id in skip else [(k, rule_id, s) for k, s in findings(scan, which)]

    return _Detector(find, prefilters)


def _rule(rule: Rule) -> _Detector:
    # Our fixed shapes' rule ids are their kinds, in snake case; betterleaks' ids are in kebab
    # case, but for `jwt`, which both have.
    def findings(scan: Scan, which: list[int] | None) -> list[tuple[str, Span]]:
        return rule.findings(scan.text, scan.low if rule.lower else scan.text)

    return _own(_own_id(rule), findings, (rule.prefilter,))


def _own_id(rule: Rule) -> str:
    return "jwt_shape" if rule.kind == "jwt" else rule.kind


def _leaks(generic: bool) -> _Detector:
    return _Detector(lambda scan, skip, which: leak_findings(scan, skip, generic), None)


def _base64(scan: Scan, skip: frozenset[str], which: list[int] | None) -> Found:
    if "base64_secret" in skip:
        return []
    found = base64_findings(scan.text, lambda decoded: has_secret(decoded, skip), scan.data)
    return [(kind, "base64_secret", span) for kind, span in found]


def _escaped(scan: Scan, skip: frozenset[str], which: list[int] | None) -> Found:
    """What the text holds once its JSON escapes are undone (`https:\\/\\/hooks...`), as spans
    of the escaped text."""
    if scan.depth >= MAX_DEPTH:
        return []
    view = Unescaped(scan.text)
    if view.text == scan.text:
        return []
    found = _find(view.text, skip, scan.depth + 1, scan.gated)
    return [(f.kind, f.rule, view.original((f.start, f.end))) for f in found]


# Priority order: where two findings overlap, the earlier detector's is kept. Our fixed shapes
# come first (their kinds are the ones tests and reports know), then the provider rules, so
# `OPENAI_API_KEY=sk-...` counts as an openai_key rather than an env_value; the generic rules
# come after the secret-named assignments, whose judgement of values is finer.
_DETECTORS: tuple[_Detector, ...] = (
    *(_rule(rule) for rule in RULES),
    _leaks(generic=False),
    _own(
        "provider_token",
        lambda scan, which: provider_findings(scan.text, which),
        PROVIDER_PREFILTERS,
    ),
    _own(
        "cli_password",
        lambda scan, which: cli_findings(scan.text, scan.low, which),
        CLI_PREFILTERS,
    ),
    _own(
        "webhook_url",
        lambda scan, which: webhook_findings(scan.text, scan.low),
        (WEBHOOK_PREFILTER,),
    ),
    _own("azure_sas", lambda scan, which: azure_findings(scan.text, scan.low), (AZURE_PREFILTER,)),
    _own("env_value", lambda scan, which: env_findings(scan.text, scan.low, which), ENV_PREFILTERS),
    _own(
        "config_password",
        lambda scan, which: config_findings(scan.text, which),
        CONFIG_PREFILTERS,
    ),
    _own(
        "keyword_value",
        lambda scan, which: keyword_findings(scan.text, scan.low, which),
        KEYWORD_PREFILTERS,
    ),
    _own(
        "audit_shape",
        lambda scan, which: parity_findings(scan.text, scan.low, which),
        PARITY_PREFILTERS,
    ),
    _leaks(generic=True),
    # A run of 28 base64 characters would multiply the set's DFA states: its own pass is cheaper.
    _Detector(_base64, None),
    _own(
        "email",
        lambda scan, which: [("email", s) for s in email_spans(scan.text)],
        (EMAIL_PREFILTER,),
    ),
    _own(
        "phone",
        lambda scan, which: [("phone", s) for s in phone_spans(scan.text, which)],
        PHONE_PREFILTERS,
    ),
    _Detector(_escaped, (ESCAPE_PREFILTER,)),
)
_OWN_RULE_IDS = (
    *dict.fromkeys(_own_id(rule) for rule in RULES),
    "provider_token",
    "cli_password",
    "webhook_url",
    "azure_sas",
    "env_value",
    "config_password",
    "keyword_value",
    "audit_shape",
    "base64_secret",
    "email",
    "phone",
)
_UNGATED = [(det, None) for det in _DETECTORS if det.prefilters is None]
_MAX_PASSES = 5  # each pass shrinks the text that is not placeholders; two suffice in practice


@functools.cache
def _gate() -> tuple[Gate, list[tuple[int, int]]]:
    """The one RE2 set every text is matched against: the betterleaks rules' gate, then each
    detector's prefilters; and for each prefilter, its (detector, index among its own)."""
    owners = [(d, i) for d, det in enumerate(_DETECTORS) for i in range(len(det.prefilters or ()))]
    patterns = tuple(p.encode() for det in _DETECTORS for p in det.prefilters or ())
    return Gate(leak_rules(), patterns), owners


def _plan(
    text: str, depth: int = 0, gated: bool = True
) -> tuple[Scan, list[tuple[_Detector, list[int] | None]]]:
    """The text's scan, and the detectors to run on it in priority order, each with which of
    its prefilters occur; clean text costs one set pass and no detector."""
    gate, owners = _gate()
    scan = Scan(text, gate, depth, gated)
    if scan.hits is None or not gated:  # the set ran out of memory: run everything
        return scan, [(det, None) for det in _DETECTORS]
    hits = scan.hits
    first = bisect.bisect_left(hits, gate.n_rules)
    if first == len(hits):  # no prefilter occurs: only the detectors that gate themselves
        return scan, _UNGATED
    which: dict[int, list[int]] = {}
    for k in hits[first:]:
        d, i = owners[k - gate.n_rules]
        which.setdefault(d, []).append(i)
    return scan, [
        (det, which.get(d))
        for d, det in enumerate(_DETECTORS)
        if det.prefilters is None or d in which
    ]


@functools.cache
def rule_ids() -> list[str]:
    """Every rule id `skip` accepts: ours (snake case) and betterleaks' (kebab case)."""
    return [*_OWN_RULE_IDS, *leak_rule_ids()]


def check_rule_ids(ids: frozenset[str] | tuple[str, ...] | list[str]) -> frozenset[str]:
    """`ids` as a skip set, or a ValueError naming each unknown id and the closest known ones."""
    if not ids:
        return frozenset()
    known = rule_ids()
    unknown = sorted(set(ids) - set(known))
    if unknown:
        hints = []
        for rid in unknown:
            close = difflib.get_close_matches(rid, known, n=3, cutoff=0.5)
            hints.append(f"{rid!r} (did you mean {', '.join(close)}?)" if close else repr(rid))
        raise ValueError(
            f"unknown scrubber rule id(s) in scrub_skip_rules: {'; '.join(hints)}; "
            "the known ids are listed by pipeline.scrub.rule_ids()"
        )
    return frozenset(ids)


# Terminal escapes (colours, cursor moves, titles) glue to what follows: `\x1b[32msk-...`
# reads as `[32msk-...`, which no key shape starts with. CSI, OSC and two-character escapes.
_ANSI_RE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")


def _without_ansi(text: str) -> str:
    """`text` with each ANSI escape blanked by as many spaces: spans stay valid in `text`."""
    if "\x1b" not in text:
        return text
    return _ANSI_RE.sub(lambda m: " " * len(m[0]), text)


def find_secrets(text: str, skip: frozenset[str] = frozenset()) -> list[Finding]:
    """Secrets and personal data in `text`: non-overlapping, sorted by start. Rules whose id is
    in `skip` are not run."""
    return _find(_without_ansi(text), skip)


def _find(text: str, skip: frozenset[str], depth: int = 0, gated: bool = True) -> list[Finding]:
    """`find_secrets`; `gated=False` runs every detector whatever the set pass says (the
    tests check that the prefilters never skip a finding)."""
    scan, plan = _plan(text, depth, gated)
    starts: list[int] = []
    found: list[Finding] = []
    for detector, which in plan:
        candidates = detector.find(scan, skip, which)
        if len(candidates) > 1:
            candidates.sort(key=lambda f: (f[2][0], -f[2][1]))
        for kind, rule, (start, end) in candidates:
            i = bisect.bisect_right(starts, start)
            if end <= start or (i and found[i - 1].end > start):
                continue
            if i < len(found) and found[i].start < end:
                continue
            starts.insert(i, start)
            found.insert(i, Finding(kind, start, end, rule))
    return found


def has_secret(text: str, skip: frozenset[str] = frozenset()) -> bool:
    """Whether `find_secrets` would find anything; stops at the first detector that does."""
    scan, plan = _plan(_without_ansi(text))
    return any(detector.find(scan, skip, which) for detector, which in plan)


def _placeholder(kind: str) -> str:
    return "<EMAIL>" if kind == "email" else "<PHONE>" if kind == "phone" else f"<SECRET:{kind}>"


def scrub_text(text: str, skip: frozenset[str] = frozenset()) -> tuple[str, Counter[str]]:
    """`text` with every finding replaced by its placeholder, and the counts by kind."""
    counts: Counter[str] = Counter()
    # A finding's neighbour can hide behind it (`(415) 555-0123+44 20 7946 0958`: the second
    # number follows a digit); once the first is a placeholder, another pass finds it, so
    # scrubbing repeats until nothing is left and a second call changes nothing.
    for _ in range(_MAX_PASSES):
        findings = find_secrets(text, skip)
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


def scrub_value(value: Any, skip: frozenset[str] = frozenset()) -> tuple[Any, Counter[str]]:
    """A copy of `value` with every string in nested dicts, lists and tuples scrubbed; dict keys
    and non-string leaves are kept as they are."""
    counts: Counter[str] = Counter()

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            text, found = scrub_text(v, skip)
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
        "findings": [
            {"kind": f.kind, "rule": f.rule, "start": f.start, "end": f.end} for f in findings
        ],
        "counts": dict(sorted(counts.items())),
    }
    return json.dumps(doc, indent=2) + "\n"
