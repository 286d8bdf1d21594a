# ruff: noqa: E501  (a table of published patterns, one per line)
"""Shapes the split audit's scanner flags that the other detectors read more narrowly.

The blocking check runs detect-secrets (`secret_audit`) and fails the night on any finding, so
the scrubber must take at least what it flags. These are its plugins' patterns (detect-secrets
1.5.0, Apache-2.0, and `secret_plugins`), written out here rather than called, so the two
scanners stay independent: short Slack tokens, GitHub tokens with underscores, npm tokens
after `_authToken=`, `ibm_cloud_api_key: '...'`-style names, names with a secret word inside
(`DBPASSWORDX=...`), `curl --user=u:p`. Each is run only where its RE2 prefilter occurs.
"""

from __future__ import annotations

import re

from pipeline.scrub_patterns import PLACEHOLDER_RE, Span, matches

_BEFORE = r"(?:(?<=\W)|(?<=^))(?:\[|)(?:\"|'|)"  # the start of a name: not inside a word
_SEP = r"(?:\"|'|)(?:\]|)(?: *)(?:=|:|:=|=>| +|::)(?: *)(?:\"|'|)"  # quotes, operator, quotes
_KEYS = r"(?:key|pwd|password|pass|token)"
_VALUE = r"""(?:'([^'\s]{4,})'|"([^"\s]{4,})"|([^\s'"`;|&<>]{4,}))"""
_URL = r"[^:/\?\#\[\]@!\$\&'\(\)\*\+,;=\s]"  # a URL's user or password character
_ENV_WORDS = r"(?:SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|APIKEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIALS?)"

_LOW = -1  # instead of flags: the pattern runs on the lowercased text
# (kind, pattern, flags, RE2 prefilter matching wherever the pattern can). The secret is the
# first group that took part, else the match.
_SHAPES = tuple(
    (kind, re.compile(pattern, max(flags, 0)), flags == _LOW, prefilter)
    for kind, pattern, flags, prefilter in (
        ("aws_access_key_id", r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}", 0, "A3T|ABIA|ACCA|AKIA|ASIA"),
        ("aws_secret_access_key", r"aws.{0,20}?(?:key|pwd|pw|password|pass|token).{0,20}?['\"]([0-9a-zA-Z/+]{40})['\"]", re.I, "(?i)aws"),
        ("url_password", rf"://{_URL}+:({_URL}+)@", 0, rf"://{_URL}+:{_URL}+@"),
        ("cloudant_key", rf"{_BEFORE}(?:cloudant|cl|clou)(?:_|-|)(?:api|)(?:key|pwd|pw|password|pass|token){_SEP}([0-9a-f]{{64}}|[a-z]{{24}})", re.I, "(?i)cl(?:oudant|ou)?[_-]?(?:api)?(?:key|pwd|pw|pass|token)"),
        ("cloudant_key", r"https?://[\w\-]+:([0-9a-f]{64}|[a-z]{24})@[\w\-]+\.cloudant\.com", re.I, r"(?i)\.cloudant\.com"),
        ("github_token", r"(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{36}[A-Za-z0-9_]*", 0, "gh[pousr]_"),
        ("gitlab_token", r"(?:glpat|gldt|glft|glsoat|glrt|glcbt|glimt|glptt|glagent|gloas)-[A-Za-z0-9_\-]{20,}|GR1348941[A-Za-z0-9_\-]{20,}", 0, "gl(?:pat|dt|ft|soat|rt|cbt|imt|ptt|agent|oas)-|GR1348941"),
        # Its name may be `key` alone (every prefix is optional): matched from the key word, on
        # the lowercased text (a case-insensitive scan from every position is slow).
        ("ibm_cloud_iam_key", rf"{_KEYS}{_SEP}([a-z0-9_\-]{{44}}(?![a-z0-9_\-]))", _LOW, "(?i)(?:key|pwd|password|pass|token)[\"'\\]]{0,3} *(?:=|:|:=|=>| +|::) *[\"']?[a-zA-Z0-9_-]{44}"),
        ("ibm_cos_hmac_key", rf"{_BEFORE}(?:(?:ibm)?[-_]?cos[-_]?(?:hmac)?|)(?:_|-|)(?:secret[-_]?(?:access)?[-_]?key){_SEP}([a-f0-9]{{48}}(?![a-f0-9]))", re.I, "(?i)secret[-_]?(?:access)?[-_]?key"),
        ("npm_token", r"/:_authToken=\s*(npm_[^\r\n]+|[A-Fa-f0-9-]{36})", 0, "/:_authToken="),
        ("slack_token", r"xox(?:a|b|p|o|s|r)-(?:\d+-)+[a-z0-9]+", re.I, "(?i)xox[abposr]-"),
        ("slack_webhook_url", r"https://hooks\.slack\.com/services/T[a-zA-Z0-9_]+/B[a-zA-Z0-9_]+/[a-zA-Z0-9_]+", re.I, r"(?i)hooks\.slack\.com/services/"),
        ("softlayer_key", rf"{_BEFORE}(?:softlayer|sl)(?:_|-|)(?:api|)(?:_|-|){_KEYS}{_SEP}([a-z0-9]{{64}})", re.I, "(?i)(?:softlayer|sl)[_-]?(?:api)?[_-]?(?:key|pwd|pass|token)"),
        ("softlayer_key", r"(?:http|https)://api.softlayer.com/soap/(?:v3|v3.1)/([a-z0-9]{64})", re.I, "(?i)softlayer"),
        ("square_oauth_secret", r"sq0csp-[0-9A-Za-z\\\-_]{43}", 0, "sq0csp-"),
        ("vault_token", r"hv[sbr]\.[A-Za-z0-9_-]{24,}", 0, r"hv[sbr]\."),
        ("env_value", rf"(?:^|(?<=[\s;]))(?:export\s+)?[A-Z_][A-Z0-9_]*{_ENV_WORDS}[A-Z0-9_]*=([^\s'\"`$<>;|&(){{}}\[\],]{{8,}})(?=\s|$)", re.M, f"{_ENV_WORDS}[A-Z0-9_]*="),
        ("cli_password", rf"\b(?:mysql|mysqldump|mysqladmin|mariadb)\b[^\n;|&]{{0,200}}?\s-p{_VALUE}", 0, r"(?:mysql|mariadb)[^\n;|&]*-p"),
        ("cli_password", rf"\bsshpass\s+-p\s*{_VALUE}", 0, "sshpass"),
        ("cli_password", rf"\baws\s+configure\s+set\s+\S*aws_(?:secret_access_key|session_token)\s+{_VALUE}", 0, "configure[^a-zA-Z0-9]+set"),
        ("cli_password", rf"\bcurl\b[^\n;|&]{{0,200}}?\s(?:-u|--user)[ =]?[^\s:'\"]{{1,64}}:{_VALUE}", 0, r"curl[^\n;|&]*(?:-u|--user)"),
        ("cli_password", rf"--password[ =]{_VALUE}", re.I, "(?i)--password"),
        ("cli_password", rf"\b(?:PGPASSWORD|MYSQL_PWD|SSHPASS)={_VALUE}", 0, "PGPASSWORD=|MYSQL_PWD=|SSHPASS="),
    )
)  # fmt: skip
PREFILTERS = tuple(prefilter for _, _, _, prefilter in _SHAPES)
_MIN_LEFT = 4  # alphanumerics a value keeps beside our placeholders to still be one
# Shapes a name or a position makes a secret: the audit passes over short values, stock
# dummies and other variables' names there (its `is_not_a_value`), and so do we.
_BY_NAME = frozenset({"env_value", "cli_password", "url_password"})
_MIN_VALUE = 6
_DUMMIES = frozenset(
    {"changeme", "example", "dummy", "placeholder", "redacted", "secret", "testing", "foobar"}
)
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")


def _a_value(value: str) -> bool:
    return not (len(value) < _MIN_VALUE or value.lower() in _DUMMIES or _ENV_NAME.fullmatch(value))


def parity_findings(text: str, low: str, which: list[int] | None = None) -> list[tuple[str, Span]]:
    """(kind, span of the secret) for the shapes in `which` (indices into PREFILTERS); `low` is
    `text` lowercased with the same length."""
    found = []
    for i in range(len(_SHAPES)) if which is None else which:
        kind, regex, lowered, _ = _SHAPES[i]
        for m in matches(regex, low if lowered else text):
            group = next((g for g in range(1, len(m.groups()) + 1) if m.span(g)[0] >= 0), 0)
            value = text[m.start(group) : m.end(group)]
            left = PLACEHOLDER_RE.sub("", value)
            if left != value and sum(c.isalnum() for c in left) < _MIN_LEFT:
                continue
            if kind in _BY_NAME and not _a_value(value):
                continue
            found.append((kind, m.span(group)))
    return found
