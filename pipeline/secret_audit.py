"""A second secret scanner, independent of the scrubber: Yelp's detect-secrets.

The blocking check on the splits and the check before anything is sent to Claude run it
beside the scrubber's own detectors, so a secret the scrubber's rules miss is still caught.
Findings name the rule and where it lies, never the value.

Plugins: every built-in provider plugin of detect-secrets, plus `secret_plugins` (providers
it lacks, command-line passwords). Left out: the two entropy plugins, which fire on git SHAs,
lockfile integrity hashes and base64 images, and the public-IP plugin (not a credential).
Filters: detect-secrets' heuristics for templated values, sequences, UUIDs and ids, plus
`is_not_a_value` (the scrubber's placeholders, dummies, key headers quoted in code); not its
allowlist pragma, which text copied from a session could carry to hide a key.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.core.scan import get_filters_with_parameter
from detect_secrets.settings import get_plugins, transient_settings
from detect_secrets.util.inject import call_function_with_arguments

from pipeline.scrub import find_secrets

BUILT_IN = (
    "AWSKeyDetector",
    "AzureStorageKeyDetector",
    "BasicAuthDetector",
    "CloudantDetector",
    "DiscordBotTokenDetector",
    "GitHubTokenDetector",
    "GitLabTokenDetector",
    "IbmCloudIamDetector",
    "IbmCosHmacDetector",
    "JwtTokenDetector",
    "KeywordDetector",  # `password = "..."`, `api_key: '...'`
    "MailchimpDetector",
    "NpmDetector",
    "OpenAIDetector",
    "PrivateKeyDetector",
    "PypiTokenDetector",
    "SendGridDetector",
    "SlackDetector",
    "SoftlayerDetector",
    "SquareOAuthDetector",
    "StripeDetector",
    "TelegramBotTokenDetector",
    "TwilioKeyDetector",
)
_EXTRA = Path(__file__).with_name("secret_plugins.py")
EXTRA = (
    "AnthropicKeyDetector",
    "OpenAIProjectKeyDetector",
    "GoogleApiKeyDetector",
    "HuggingFaceTokenDetector",
    "GitHubFineGrainedTokenDetector",
    "NpmBareTokenDetector",
    "DigitalOceanTokenDetector",
    "ShopifyTokenDetector",
    "DockerHubTokenDetector",
    "VaultTokenDetector",
    "AzureClientSecretDetector",
    "AzureSasSignatureDetector",
    "AwsBedrockKeyDetector",
    "TwilioAuthTokenDetector",
    "EnvSecretAssignmentDetector",
    "CommandLinePasswordDetector",
)
FILTERS = (
    "detect_secrets.filters.heuristic.is_sequential_string",
    "detect_secrets.filters.heuristic.is_potential_uuid",
    "detect_secrets.filters.heuristic.is_likely_id_string",
    "detect_secrets.filters.heuristic.is_templated_secret",
    "detect_secrets.filters.heuristic.is_prefixed_with_dollar_sign",
    "detect_secrets.filters.heuristic.is_not_alphanumeric_string",
    "pipeline.secret_audit.is_not_a_value",
)
SETTINGS = {
    "plugins_used": [
        *({"name": name} for name in BUILT_IN),
        *({"name": name, "path": f"file://{_EXTRA}"} for name in EXTRA),
    ],
    "filters_used": [{"path": path} for path in FILTERS],
}

_PLACEHOLDER = re.compile(r"<SECRET:[A-Za-z0-9_.-]*>|<EMAIL>|<PHONE>|<REDACTED>")
# Documentation fillers: five x's, asterisks or bullets, or eight zeros, in a row essentially
# never occur in a random token (p ~ 1e-8 per position).
_MASKED = re.compile(r"([xX*•#])\1{4,}|0{8,}|…|\.\.\.")
_MIN_LEFT = 4  # characters a value keeps beside placeholders to still count as a secret
_BY_NAME = frozenset(
    {"KeywordDetector", "BasicAuthDetector", "CommandLinePasswordDetector"}
    | {"EnvSecretAssignmentDetector"}
)
_MIN_VALUE = 6  # `password="test"` in a test fixture is no credential; `hunter2` is
_DUMMIES = frozenset(
    {"changeme", "example", "dummy", "placeholder", "redacted", "secret", "testing", "foobar"}
)
_CLOSERS = frozenset("\"'`),;")  # what follows a key header quoted in code
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")  # `ENV_API_KEY = "ANTHROPIC_API_KEY"`
_ESCAPE = re.compile(r'\\(["\\/bfnrt]|u[0-9a-fA-F]{4})')
_UNESCAPED = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "/": "/"}
_MAX_UNESCAPE = 3  # JSON in a JSON string in a tool call: two levels, and one to spare
_WINDOW = 2_000  # long lines are scanned in overlapping windows: bounded work per search
_OVERLAP = 400  # longer than any single-line credential the plugins look for
_LOCK = threading.Lock()  # detect-secrets keeps its settings in one global


def is_not_a_value(secret: str, line: str = "", plugin: object = None) -> bool:
    """A detect-secrets filter: the scrubber's placeholder (or little else beside one); a key
    header quoted in code (`startswith("-----BEGIN PRIVATE KEY-----")`), no key; and for the
    plugins that judge by a name rather than a provider's format, what is no credential: a
    value too short to be one, a stock dummy, another variable's name."""
    left = _PLACEHOLDER.sub("", secret)
    if left != secret and sum(c.isalnum() for c in left) < _MIN_LEFT:
        return True
    if _MASKED.search(secret):  # `sk-proj-xxxx…` in docs: a key's shape, no key in it
        return True
    name = type(plugin).__name__
    if name == "PrivateKeyDetector":
        after = line[line.find(secret) + len(secret) :].lstrip("-").lstrip(" ")
        return after[:1] in _CLOSERS
    if name not in _BY_NAME:
        return False
    value = secret.strip("'\"")
    return len(value) < _MIN_VALUE or value.lower() in _DUMMIES or bool(_ENV_NAME.fullmatch(value))


@dataclass(frozen=True)
class Hit:
    """One finding: which rule, on which line of the scanned text (1-based). Never the value."""

    rule: str  # "detect-secrets:StripeDetector" or "scrubber:<rule id>"
    line: int


def _unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        code = m.group(1)
        return chr(int(code[1:], 16)) if code[0] == "u" else _UNESCAPED[code]

    return _ESCAPE.sub(one, text)


def _views(line: str) -> Iterator[str]:
    """The line, and the lines it holds once JSON string escapes are undone, level by level:
    a key inside a JSON document written by a tool call reads `\\\\n` where it had newlines."""
    yield line
    for _ in range(_MAX_UNESCAPE):
        if "\\" not in line:
            return
        plain = _unescape(line)
        if plain == line:
            return
        yield from plain.splitlines()
        line = plain


def _windows(line: str) -> Iterator[str]:
    if len(line) <= _WINDOW:
        yield line
        return
    for start in range(0, len(line) - _OVERLAP, _WINDOW - _OVERLAP):
        yield line[start : start + _WINDOW]


class _Scanner:
    """detect-secrets' plugins and secret filters, loaded once; each distinct line scanned once
    (rated examples repeat their conversation so far)."""

    NAME = "session-text"  # no extension: the keyword plugin wants quotes around a value

    def __init__(self) -> None:
        # The plugin classes are cached per process; one listed without ours would refuse them.
        get_mapping_from_secret_type_to_class.cache_clear()
        self.plugins = get_plugins()
        self.filters = get_filters_with_parameter("secret")
        self.seen: dict[str, tuple[str, ...]] = {}

    def _kept(self, plugin: object, secret: str, line: str) -> bool:
        return not any(
            call_function_with_arguments(
                f, filename=self.NAME, secret=secret, plugin=plugin, line=line
            )
            for f in self.filters
        )

    def rules(self, line: str) -> tuple[str, ...]:
        if line in self.seen:
            return self.seen[line]
        found: dict[str, None] = {}
        for view in _views(line):
            for window in _windows(view):
                for plugin in self.plugins:
                    for hit in plugin.analyze_line(filename=self.NAME, line=window):
                        if hit.secret_value and self._kept(plugin, hit.secret_value, window):
                            found[type(plugin).__name__] = None
        self.seen[line] = rules = tuple(found)
        return rules


def scan_texts(texts: Iterable[str]) -> Iterator[list[Hit]]:
    """detect-secrets' findings in each text, in order; one settings switch for them all."""
    with _LOCK, transient_settings(SETTINGS):
        scanner = _Scanner()
        for text in texts:
            hits: dict[Hit, None] = {}
            for number, line in enumerate(text.splitlines(), 1):
                for rule in scanner.rules(line):
                    hits[Hit(f"detect-secrets:{rule}", number)] = None
            yield list(hits)


def scan_text(text: str) -> list[Hit]:
    """detect-secrets' findings in `text`."""
    return next(scan_texts([text]))


def scrubber_hits(text: str, skip: frozenset[str] = frozenset()) -> list[Hit]:
    """The scrubber's own findings in `text`, as hits; the rules in `skip` are not run."""
    hits: dict[Hit, None] = {}
    for f in find_secrets(text, skip=skip):
        hits[Hit(f"scrubber:{f.rule}", text.count("\n", 0, f.start) + 1)] = None
    return list(hits)


def audit_text(text: str, skip: frozenset[str] = frozenset()) -> list[Hit]:
    """Both scanners' findings in `text`: what must be empty before it leaves the machine."""
    return scrubber_hits(text, skip) + scan_text(text)
