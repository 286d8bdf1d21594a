"""Credentials typed on command lines, in webhook URLs and in Azure shared access signatures.

`mysql -pPASS`, `sshpass -p PASS`, `docker login -p PASS`, `curl -u user:pass`,
`--password=PASS`, `--token PASS`, `aws configure set aws_secret_access_key PASS`: secrets a
session's shell commands hold that no provider shape names. Every pattern reads a bounded
value, the command before a short flag is looked for in a bounded window, and no text is
rescanned from each match, so the cost stays linear in the text.
"""

from __future__ import annotations

import functools
import re

from pipeline.scrub_env import literal_value
from pipeline.scrub_patterns import PLACEHOLDER_RE, Span, is_masked, matches, word_set

_WINDOW = 300  # characters before a short flag searched for its command
_VALUE = r"""(?P<s>'[^'\r\n]{1,256}'|"[^"\r\n]{1,256}"|[^\s'"|;&<>()`]{1,256})"""
# `--password=x`, `--token x`, `-password x` (Go-style): the flag's words decide.
_LONG_FLAG_RE = re.compile(
    r"-(?<![\w-]-)-?(?P<name>[A-Za-z][A-Za-z0-9_-]{0,40})(?:=|[ \t]+)" + _VALUE
)
_SECRET_WORDS = word_set(
    "password passwd pass pwd passphrase token secret secrets apikey credential credentials auth"
)
_KEY_QUALIFIERS = word_set("api access secret private client license signing encryption master")
_NOT_SECRET_LAST = word_set(
    "file path dir name id type stdin env var variable cmd command helper prompt from source"
    " length len size ttl expiry timeout url uri endpoint header policy mode method required"
)
# Short flags that take a password, and the commands where they do (`-p` is a port elsewhere).
_SHORT_FLAG_RE = re.compile(
    r"-(?<=[ \t]-)(?P<flag>[pua])(?:(?P<glued>'[^'\r\n]{1,256}'|\"[^\"\r\n]{1,256}\""
    r"|[^\s'\"-][^\s'\"|;&<>]{0,255})|[ \t]+" + _VALUE + ")"
)
_PASSWORD_COMMANDS = re.compile(r"\b(?:sshpass|login)\b")
_GLUED_COMMANDS = re.compile(r"\b(?:mysql|mariadb|sshpass)[\w-]*\b")
_AUTH_COMMANDS = re.compile(r"\bredis-cli\b")  # `-a PASS`
# openssl's `-passin pass:X`, `-passout pass:X` (env:, file: and fd: name where it is).
_OPENSSL_PASS_RE = re.compile(r"-pass(?<![\w-]-pass)(?:in|out)?[ \t]+pass:(?P<s>[^\s'\"]{1,256})")
_USER_COMMANDS = re.compile(r"\b(?:curl|wget|http|https|httpie|ftp|lftp)\b")
# `aws configure set aws_secret_access_key X`, `npm config set //host/:_authToken X`,
# `git config credential.password X`, `gh secret set NAME --body X` (the flag rule).
_CONFIG_SET_RE = re.compile(
    r"config(?<![\w-]config)(?:ure)?(?:[ \t]+--?[\w-]+){0,4}[ \t]+set[ \t]+"
    r"(?P<name>[^\s=]{1,128})[ \t]+" + _VALUE
)
_WEBHOOK_RE = re.compile(
    r"https?://(?:(?:ptb\.|canary\.)?discord(?:app)?\.com/api(?:/v\d+)?/webhooks/\d{5,30}/"
    r"(?P<discord>[\w-]{20,200})"
    r"|[\w.-]*\.(?:office|office365)\.com/webhook(?:b2)?/(?P<teams>[^\s'\"<>]{20,400}))"
)
# Azure SAS tokens: the signature in a URL or connection string; account and shared access keys.
_AZURE_RE = re.compile(
    r"(?:[?&;](?:amp;)?sig=(?P<sig>[A-Za-z0-9%+/=]{16,200})"
    r"|(?:AccountKey|SharedAccessKey|SharedAccessSignature)=(?P<key>[^;\s'\"<>]{16,400}))"
)


# Provider shapes the rule set only takes beside a keyword or at a word's end: a Telegram bot
# token in an API URL, an Azure AD client secret ending a sentence, a short Vault token, a
# Twilio auth token after its account SID; and distinctive prefixes whose length the rule set
# pins exactly (a token cut or padded by a few characters is still the provider's key). Each
# is (kind, pattern with group `s` the secret, prefilter: an RE2 pattern matching wherever the
# pattern can).
_END = r"(?![\w-])"
_HEX = r"(?P<s>[0-9a-f]{32})\b"
_PROVIDERS = tuple(
    (kind, re.compile(pattern), prefilter)
    for kind, pattern, prefilter in (
        ("telegram_bot_token", r":(?<=\d{6}:)(?P<s>AA[\w-]{31,35})" + _END, ":AA"),
        ("azure_ad_client_secret", r"Q~(?<=\dQ~)(?P<s>[\w~.-]{31,34})(?![\w~-])", "Q~"),
        ("vault_token", r"hv(?<![\w.-]hv)(?P<s>[sb]\.[\w-]{24,300})" + _END, r"hv[sb]\."),
        (
            "twilio_auth_token",
            r"AC(?<!\wAC)[0-9a-f]{32}['\"]?[ \t]*[,:][ \t]*['\"]?" + _HEX,
            "AC[0-9a-f]{32}",
        ),
        ("provider_token", r"npm_(?<![\w.-]npm_)(?P<s>[A-Za-z0-9]{30,40})" + _END, "npm_"),
        ("provider_token", r"dckr_(?<![\w.-]dckr_)(?P<s>(?:pat|oat)_[\w-]{20,40})" + _END, "dckr_"),
        ("provider_token", r"SG\.(?<![\w.-]SG\.)(?P<s>[\w-]{16,32}\.[\w-]{30,50})" + _END, r"SG\."),
        (
            "provider_token",
            r"gl(?<![\w.-]gl)(?P<s>(?:pat|dt|rt|ptt|soat|ft)-[\w-]{16,80})",
            "gl(?:pat|dt|rt|ptt|soat|ft)-",
        ),
        (
            "provider_token",
            r"xox(?<![\w.-]xox)(?P<s>[abposre]-\d{6,}-[\w-]{10,200})" + _END,
            "xox[abposre]-",
        ),
        ("provider_token", r"AIza(?<![\w.-]AIza)(?P<s>[\w-]{30,40})" + _END, "AIza"),
        # Stripe webhook signing secrets, Google OAuth access tokens and client secrets.
        (
            "provider_token",
            r"whsec_(?<![\w.-]whsec_)(?P<s>[A-Za-z0-9+/=]{24,128})" + _END,
            "whsec_",
        ),
        ("provider_token", r"ya29\.(?<![\w.-]ya29\.)(?P<s>[\w-]{20,2048})", r"ya29\."),
        ("provider_token", r"GOCSPX-(?<![\w.-]GOCSPX-)(?P<s>[\w-]{20,64})", "GOCSPX-"),
        ("provider_token", r"pypi-(?<![\w.-]pypi-)(?P<s>AgE[\w-]{50,300})" + _END, "pypi-AgE"),
        ("provider_token", r"ABSK(?<![\w.-]ABSK)(?P<s>[A-Za-z0-9+/]{80,300}={0,2})" + _END, "ABSK"),
        # Shapes the split audit's scanner flags wherever they occur, word boundary or not: a
        # Twilio account SID or API key SID, a Discord bot token, a Mailchimp key, a Telegram
        # bot token whose secret does not open with `AA`.
        ("twilio_account_sid", r"(?P<s>AC[a-z0-9]{32}[a-z0-9]*)", "AC[a-z0-9]{32}"),
        ("twilio_api_key", r"(?P<s>SK[a-z0-9]{32}[a-z0-9]*)", "SK[a-z0-9]{32}"),
        (
            "discord_bot_token",
            r"(?P<s>[MNO][a-zA-Z0-9_-]{23,25}\.[a-zA-Z0-9_-]{6}\.[a-zA-Z0-9_-]{27}[\w-]*)",
            r"\.[a-zA-Z0-9_-]{6}\.",
        ),
        ("mailchimp_api_key", r"(?P<s>[0-9a-z]{32}-us[0-9]{1,2})(?![0-9])", "-us[0-9]"),
        (
            "telegram_bot_token",
            r"[0-9]{8,10}:(?P<s>[0-9A-Za-z_-]{35}[\w-]*)",
            "[0-9]{8}:[0-9A-Za-z_-]{4}",
        ),
    )
)
# The scrubber's one set pass runs only the providers whose prefilter occurs.
PROVIDER_PREFILTERS = tuple(prefilter for _, _, prefilter in _PROVIDERS)
# Kinds whose secret is the whole match, prefix included.
_WHOLE = {"provider_token", "vault_token"}
# Kinds scrubbed even when they look masked: the audit's scanner flags `ACxxxx...` as well.
_UNMASKED = {"twilio_account_sid", "twilio_api_key", "discord_bot_token", "mailchimp_api_key"}


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]


@functools.lru_cache(maxsize=4096)
def _secret_flag(name: str) -> bool:
    words = _words(name)
    if not words or words[-1] in _NOT_SECRET_LAST or words[0] == "no":
        return False
    if any(w in _SECRET_WORDS or w.endswith(("password", "token", "secret")) for w in words):
        return True
    return words[-1] == "key" and any(w in _KEY_QUALIFIERS for w in words)


def _value(m: re.Match[str], positional: bool = False) -> Span | None:
    """The value's span without its quotes, or None when it is no literal secret: usage text
    (`--password requires ...`, `--secrets HF_TOKEN`) names values rather than holding them.
    A `positional` value (`sshpass -p X`, `--password X`) is a password by where it stands,
    letters only or not."""
    start, end = m.span("s")
    quoted = m["s"][0] in "'\""
    if quoted:
        start, end = start + 1, end - 1
    value = m.string[start:end]
    if (
        (not positional and not literal_value(value, quoted))
        or len(value) < 4
        or value[0] in "$%{<-"
        or is_masked(value)
        or PLACEHOLDER_RE.search(value)
        or value.lower() in ("true", "false", "none", "null", "password", "token", "secret")
        or (value.isalpha() and value.isupper())  # PASS, TOKEN: a placeholder in usage text
    ):
        return None
    return start, end


def _command_before(text: str, pos: int, commands: re.Pattern[str]) -> bool:
    lo = max(0, pos - _WINDOW)
    line = max(text.rfind("\n", lo, pos), text.rfind("|", lo, pos), text.rfind(";", lo, pos))
    return bool(commands.search(text, max(lo, line + 1), pos))


# RE2 patterns matching wherever each part of `cli_findings` can find something: a long flag
# whose name holds a secret word, a short flag after its command on the same line, openssl's
# `pass:`, and `config ... set`.
CLI_PREFILTERS = (
    r"(?i)-[a-z0-9_-]*(?:pass|pwd|token|secret|key|credential|auth)[a-z0-9_-]*(?:=|[ \t])",
    r"(?:sshpass|login|mysql|mariadb|redis-cli|curl|wget|http|ftp)[^\n]*[ \t]-[pua]",
    "pass:",
    r"(?i)config[^\n]*[ \t]set[ \t]",
    r"(?i)(?:password|passwd|passphrase)[ \t]+(?:is|was)[ \t:]",
)
# "my password is Tr0ub4dor&3": a password told in prose, quoted or not.
_PROSE_RE = re.compile(
    r"(?i)\b(?:password|passwd|passphrase)[ \t]+(?:is|was)(?:[ \t]+:?|:)[ \t]*['\"`]?"
    r"(?P<s>[^\s'\"`]{4,200})"  # trailing punctuation included: recall first
)


def _spoken(value: str) -> bool:
    """A word with a digit or symbol, or mixed case, is a password; "is required" is prose."""
    word = value.rstrip(".,;:!?)")
    return not (word.isalpha() and (word.islower() or word.istitle())) and not (
        value.startswith(("<", "$", "{", "%"))
    )


WEBHOOK_PREFILTER = r"https?://[^\s]*webhook"
AZURE_PREFILTER = "sig=|AccountKey=|SharedAccessKey=|SharedAccessSignature="


def cli_findings(text: str, low: str, which: list[int] | None = None) -> list[tuple[str, Span]]:
    """Command-line credentials, from the parts in `which` (indices into CLI_PREFILTERS)."""
    found: list[tuple[str, Span]] = []
    parts = range(len(CLI_PREFILTERS)) if which is None else which
    if 0 in parts and "-" in text:
        for m in matches(_LONG_FLAG_RE, text):
            positional = m["name"].lower() == "password"  # the audit's `--password X`
            if _secret_flag(m["name"]) and (span := _value(m, positional)):
                found.append(("cli_password", span))
    if 1 in parts and "-" in text:
        for m in matches(_SHORT_FLAG_RE, text):
            found += _short_flag(text, m)
    if 2 in parts and "pass:" in text:
        for m in matches(_OPENSSL_PASS_RE, text):
            if not PLACEHOLDER_RE.match(m["s"]):  # ours, from an earlier pass
                found.append(("cli_password", m.span("s")))
    if 4 in parts:
        found += [
            ("cli_password", m.span("s")) for m in matches(_PROSE_RE, text) if _spoken(m["s"])
        ]
    if 3 in parts and "set" in low:
        for m in matches(_CONFIG_SET_RE, text):
            name = m["name"].lower()
            if any(w in name for w in ("secret", "token", "password", "passwd", "auth")) and (
                span := _value(m)
            ):
                found.append(("cli_password", span))
    return found


def _short_flag(text: str, m: re.Match[str]) -> list[tuple[str, Span]]:
    flag, glued = m["flag"], m["glued"]
    if flag == "a":
        ok = glued is None and _command_before(text, m.start(), _AUTH_COMMANDS)
        return [("cli_password", span)] if ok and (span := _value(m)) else []
    if flag == "p":
        if glued is not None:
            start, end = m.span("glued")
            if glued[0] in "'\"":
                start, end, glued = start + 1, end - 1, glued[1:-1]
            ok = _command_before(text, m.start(), _GLUED_COMMANDS)
            ok = ok and len(glued) >= 4 and not is_masked(glued) and glued[0] not in "$%{<"
            return [("cli_password", (start, end))] if ok else []
        if _command_before(text, m.start(), _PASSWORD_COMMANDS) and (span := _value(m, True)):
            return [("cli_password", span)]
        return []
    # -u user:pass: the part after the first colon.
    if not _command_before(text, m.start(), _USER_COMMANDS):
        return []
    start, end = m.span("glued") if glued is not None else m.span("s")
    value = text[start:end].strip("'\"")
    colon = value.find(":")
    password = value[colon + 1 :] if colon >= 0 else ""
    if len(password) < 3 or password[0] in "$%{<" or is_masked(password):
        return []
    offset = text.index(value, start) + colon + 1
    return [("cli_password", (offset, offset + len(password)))]


def webhook_findings(text: str, low: str) -> list[tuple[str, Span]]:
    if "webhook" not in low:
        return []
    found = []
    for m in matches(_WEBHOOK_RE, text):
        group = "discord" if m["discord"] is not None else "teams"
        if not is_masked(m[group]):
            found.append(("webhook_url", m.span(group)))
    return found


def azure_findings(text: str, low: str) -> list[tuple[str, Span]]:
    if "sig=" not in low and "key=" not in low and "signature=" not in low:
        return []
    found = []
    for m in matches(_AZURE_RE, text):
        group = "sig" if m["sig"] is not None else "key"
        value = m[group]
        if not is_masked(value) and value[0] not in "$%{<" and not PLACEHOLDER_RE.search(value):
            found.append(("azure_sas", m.span(group)))
    return found


def provider_findings(text: str, which: list[int] | None = None) -> list[tuple[str, Span]]:
    """Findings of the providers in `which` (indices into PROVIDER_PREFILTERS), or of all."""
    found = []
    for i in range(len(_PROVIDERS)) if which is None else which:
        kind, regex, _ = _PROVIDERS[i]
        for m in matches(regex, text):
            value = m["s"].rstrip(".")  # a sentence's full stop
            start = m.start() if kind in _WHOLE else m.start("s")
            if kind == "azure_ad_client_secret":
                start -= 6  # three characters, a digit and `Q~` belong to the secret
            if kind in _UNMASKED or not is_masked(value):
                found.append((kind, (start, m.start("s") + len(value))))
    return found
