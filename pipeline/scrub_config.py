"""Passwords in config files, credential files, command lines and prose that no assignment reads.

`<password>pw</password>` (Maven, XML), `define('DB_PASSWORD', 'pw')`, a Dockerfile's
`ENV DB_PASSWORD pw`, Terraform's `variable "db_password" { default = "pw" }`, `.netrc`
(`machine h login u password pw`) and `.pgpass` (`host:5432:db:user:pw`) lines; the password
flags of mongosh, ldap tools, smbclient, xfreerdp, zip, 7z, openssl, ssh-keygen and htpasswd,
`echo pw | sudo -S` and `--password-stdin`, nmcli, SQL `IDENTIFIED BY 'pw'`; and prose ("the
password for the staging DB is pw", "use password pw", a `Password:` line, then the password).
Every pattern reads a bounded value from a literal or a line start, so the cost stays linear.
"""

from __future__ import annotations

import re

from pipeline.scrub_env import literal_value, secret_name
from pipeline.scrub_patterns import PLACEHOLDER_RE, Span, is_masked, matches

_V = r"""(?:'(?P<sq>[^'\r\n]{1,256})'|"(?P<dq>[^"\r\n]{1,256})"|(?P<bare>[^\s'"|;&<>()`]{1,256}))"""
_NAME = r"[A-Za-z_][\w.:-]{0,64}"

# Structured: each regex has a group `name` (judged as a secret's name) and the value in _V.
_XML_RE = re.compile(
    rf"<(?P<name>{_NAME})(?:[ \t][^<>\n]{{0,200}})?>[ \t]*"
    rf"(?P<bare>[^<>\s]{{1,256}})[ \t]*</(?P=name)>"
)
_CALL_RE = re.compile(
    rf"""\(\s*(?P<q>['"])(?P<name>{_NAME})(?P=q)\s*,\s*(?:'(?P<sq>[^'\r\n]{{1,256}})'"""
    r"""|"(?P<dq>[^"\r\n]{1,256})")"""
)
_DOCKER_ENV_RE = re.compile(rf"^[ \t]*ENV[ \t]+(?P<name>{_NAME})[ \t]+{_V}[ \t]*\\?$", re.MULTILINE)
_TF_DEFAULT_RE = re.compile(
    rf"""variable[ \t]+"(?P<name>{_NAME})"[ \t]*\{{[^{{}}]{{0,500}}?\bdefault[ \t]*=[ \t]*"""
    r""""(?P<dq>[^"\r\n]{1,256})\""""
)
_STRUCTURED = (_XML_RE, _CALL_RE, _DOCKER_ENV_RE, _TF_DEFAULT_RE)

_NETRC_RE = re.compile(
    r"\blogin[ \t\r\n]+\S{1,256}[ \t\r\n]+password[ \t\r\n]+(?P<bare>[^\s]{1,256})"
)
_PGPASS_RE = re.compile(
    r"^[ \t]*(?:[\w.-]{1,253}|\*):(?:\d{1,5}|\*):[^\s:]{1,128}:[^\s:]{1,128}:"
    r"(?P<bare>(?:\\.|[^\s:\\]){4,256})[ \t]*$",
    re.MULTILINE,
)
# Command lines: (command before the flag, flag regex). Each value is a password by position.
_FLAGS = (
    (r"\bmongo(?:sh|dump|restore|export|import|stat|top|files)?\b", r"-p"),
    (r"\bldap\w*\b", r"-w"),
    (r"\bzip(?:cloak)?\b|\bunzip\b", r"-P"),
    (r"\bopenssl\b", r"-k"),
    (r"\bssh-keygen\b", r"-[NP]"),
)
_PORT_RE = re.compile(r"[\d.:]+")
_FLAG_RE = re.compile(r"(?<=[ \t])(?P<flag>-[pwPkN])[ \t]+" + _V)
_FLAG_COMMANDS = {
    flag: re.compile("|".join(c for c, f in _FLAGS if re.fullmatch(f, flag)))
    for flag in ("-p", "-w", "-P", "-k", "-N")
}
_GLUED_P_RE = re.compile(
    r"(?<=[ \t])-p(?:'(?P<sq>[^'\r\n]{1,256})'|\"(?P<dq>[^\"\r\n]{1,256})\""
    r"|(?P<bare>[^\s'\"|;&<>-][^\s'\"|;&<>]{3,255}))"
)
# `sudo -S <<< pw`, `docker login --password-stdin <<< pw`: a here-string.
_HERE_RE = re.compile(r"(?:\bsudo\b[^\n|;&]*[ \t]-S\b|--password-stdin\b)[^\n|;&]*<<<[ \t]*" + _V)
_GLUED_COMMANDS = re.compile(r"\b(?:7z[azr]?|7zz|rar|unrar)\b")
_SMB_RE = re.compile(
    r"(?:-U|--user(?:=|[ \t]+))[ \t]*['\"]?[^\s%'\"]{1,128}%(?P<bare>[^\s'\"]{1,256})"
)
_SMB_COMMANDS = re.compile(r"\b(?:smb\w*|rpcclient|winexe|net|nxc|netexec|crackmapexec)\b")
_RDP_RE = re.compile(r"(?<=[ \t])/p(?:assword)?:" + _V)
_RDP_COMMANDS = re.compile(r"rdp\b")
_STDIN_RE = re.compile(
    r"\b(?:echo|printf)[ \t]+(?:-[ne]+[ \t]+)?(?:'%s\\?n?'[ \t]+)?" + _V
    + r"[ \t]*\|[ \t]*(?:sudo\b[^\n|;&]*[ \t]-S\b|[^\n|;&]*--password-stdin\b"
    r"|(?:sudo[ \t]+)?chpasswd\b|[^\n|;&]*\bpasswd[ \t]+--stdin\b)"
)  # fmt: skip
_HTPASSWD_RE = re.compile(r"\bhtpasswd(?P<args>(?:[ \t]+[^\s|;&<>]{1,256}){2,8})")
_NMCLI_RE = re.compile(
    r"\bnmcli\b[^\n|;&]{0,300}?[ \t](?:password|wifi-sec\.psk|802-1x\.password)[ \t]+" + _V
)
_SQL_RE = re.compile(
    r"(?i)\bidentified[ \t]+(?:with[ \t]+\w+[ \t]+)?by(?:[ \t]+password)?[ \t]*"
    r"""(?:'(?P<sq>[^'\r\n]{1,256})'|"(?P<dq>[^"\r\n]{1,256})")"""
)
_SQL_PASSWORD_RE = re.compile(
    r"(?i)\bpassword[ \t]*(?:=[ \t]*)?(?:password[ \t]*)?\(?[ \t]*'(?P<sq>[^'\r\n]{1,256})'"
)
# Prose: "the password for the staging DB is pw", "password changed to pw", "use password pw".
_PW = (
    r"(?:password|passwd|passphrase|passcode|pass[ \t]?phrase|passwort|contrase[ñn]a|mot de passe)"
)
_PROSE_RE = re.compile(
    rf"(?i)\b{_PW}(?:[ \t]+(?:for|of|on|to)[ \t]+[^\n.:;!?]{{1,60}}?)?[ \t]+"
    r"(?:(?:was |has been |is )?(?:changed|set|reset) to|is now|is|was)(?=[ \t:'\"])"
    r"[ \t]*:?[ \t]*" + _V
)
_USE_RE = re.compile(
    rf"(?i)\b(?:(?:use|using|with|enter|type|try)[ \t]+(?:the[ \t]+)?{_PW}"
    rf"|(?:set|change|changed|reset)[ \t]+(?:(?:the|my|your|its)[ \t]+)?{_PW}[ \t]+to)"
    r"[ \t]+" + _V
)
_AS_RE = re.compile(
    r"(?i)\b(?:use|using|try|with)[ \t]+"
    + _V
    + rf"[ \t]+as[ \t]+(?:the[ \t]+|your[ \t]+|my[ \t]+)?{_PW}"
)
# "Password: pw", "mot de passe : pw", "| password | pw |", "password   pw": a label, then a
# value that reads as a password (`_strong` for the bare form).
_INLINE_RE = re.compile(rf"(?i)\b{_PW}(?P<sep>[ \t]*[:=|-][ \t]*|[ \t]+)" + _V)
_LABEL_RE = re.compile(
    rf"(?im)^[ \t]*{_PW}[ \t]*:[ \t]*\r?\n[ \t]*(?P<bare>[^\s]{{4,200}})[ \t]*\r?$"
)

_PWS = (
    r"(?:password|passwd|passphrase|passcode|pass[\t ]?phrase|passwort|contrase[ñn]a|mot de passe)"
)
PREFILTERS = (
    r"(?i)<[^<>\s]*(?:pass|pwd|secret|token|key|cred|auth|psk)[^<>]*>",
    r"(?i)\([^'\"()\w]*['\"][^'\"]*(?:pass|pwd|secret|token|key|cred|auth|psk)",
    r"(?m)^[\t ]*ENV[\t ]",
    r"variable[\t ]+\"",
    r"login[\t\n\r ]+\S+[\t\n\r ]+password[\t\n\r ]",
    r"(?m)^[\t ]*[^\s:]+:[^\s:]+:[^\s:]+:[^\s:]+:[^\s:]",
    r"(?:mongo|ldap|zip|openssl|ssh-keygen)[^\n]*[\t ]-[pwPkN]",
    r"(?:7z|rar)[^\n]*[\t ]-p",
    r"(?:smb|rpcclient|winexe|net|nxc|netexec|crackmapexec)[^\n]*%",
    r"rdp[^\n]*[\t ]/p",
    r"(?:echo|printf)[^\n]*\||(?:sudo|--password-stdin)[^\n]*<<<",
    r"htpasswd[\t ]",
    r"nmcli[^\n]*(?:password|psk)",
    r"(?i)identified[^\n]*[\t ]by|(?i)password[\t ]*(?:=[\t ]*)?(?:password[\t ]*)?\(?[\t ]*'",
    rf"(?i){_PWS}[^\n.:;!?]*[\t ](?:is|was|to)[\t :'\"]",
    rf"(?i)(?:use|using|with|enter|type|try)[\t ]+(?:the[\t ]+)?{_PWS}[\t ]"
    rf"|(?i)(?:set|change|changed|reset)[\t ]+(?:\w+[\t ]+)?{_PWS}[\t ]+to[\t ]",
    rf"(?im)^[\t ]*{_PWS}[\t ]*:[\t ]*\r?\n",
    rf"(?i)(?:use|using|try|with)[\t ][^\n]*[\t ]as[\t ][^\n]*{_PWS}",
    rf"(?i){_PWS}(?:[\t ]*[:=|-][\t ]*[^\s]|[\t ]+[^\s]*[^\sA-Za-z.,;:!?)|])",
)


def _span(m: re.Match[str]) -> Span:
    for group in ("sq", "dq", "bare"):
        if group in m.re.groupindex and m[group] is not None:
            return m.span(group)
    return m.span()


def _plain(value: str) -> bool:
    """A value that could be a password: not empty, masked, a reference or one of ours."""
    return not (
        len(value) < 4
        or value[0] in "$%{<"
        or is_masked(value)
        or PLACEHOLDER_RE.search(value)
        or value.lower() in ("true", "false", "none", "null", "password", "secret", "token")
    )


def _spoken(value: str) -> bool:
    """In prose, a word with a digit or symbol, or mixed case, is a password; words are prose."""
    word = value.rstrip(".,;:!?)")
    return (
        len(word) >= 4
        and not (word.isalpha() and (word.islower() or word.istitle()))
        and _plain(word)
    )


def _port(value: str) -> bool:
    """`27017`, `8080:80`, `127.0.0.1:5432:5432`: a port or mapping, not a password."""
    return bool(_PORT_RE.fullmatch(value))


def _strong(value: str) -> bool:
    """After `password` and a space alone, only what no prose word looks like: eight or more
    characters mixing letters and digits, upper and lower case or symbols."""
    return (
        len(value) >= 8
        and _plain(value)
        and any(c.isdigit() for c in value)
        and any(c.isalpha() for c in value)
        and (not (value.islower() or value.isupper()) or not value.isalnum())
        and value[0] not in "-/(["
    )


def _command_before(text: str, pos: int, commands: re.Pattern[str]) -> bool:
    lo = max(0, pos - 300)
    line = max(text.rfind(c, lo, pos) for c in "\n|;&")
    return bool(commands.search(text, max(lo, line + 1), pos))


def _structured(text: str) -> list[Span]:
    found = []
    for regex in _STRUCTURED:
        for m in matches(regex, text):
            start, end = _span(m)
            value = text[start:end]
            quoted = m.re is not _XML_RE and not m.groupdict().get("bare")
            name_low = m["name"].lower()
            if not secret_name(m["name"]) or not _plain(value):
                continue
            # `("password", "Password:")` pairs a field with its label, not its value.
            if any(w in value.lower() for w in ("pass", "secret", "token")) or " " in value:
                continue
            if name_low.endswith(("key", "keys")) and not any(c.isdigit() for c in value):
                continue
            if literal_value(value, quoted) or re.search(r"\d", value):
                found.append((start, end))
    return found


def _htpasswd(m: re.Match[str]) -> list[Span]:
    args = list(re.finditer(r"[^\s]+", m["args"]))
    flags = "".join(a[0][1:] for a in args if a[0].startswith("-"))
    # `-C 10` (bcrypt's cost) and `-r 5` take a value: not a positional argument.
    valued = {i + 1 for i, a in enumerate(args) if a[0] in ("-C", "-r")}
    positional = [a for i, a in enumerate(args) if not a[0].startswith("-") and i not in valued]
    if "b" not in flags or len(positional) < (2 if "n" in flags else 3):
        return []
    last = positional[1 if "n" in flags else 2]
    start = m.start("args") + last.start()
    end = m.start("args") + last.end()
    value = m.string[start:end].strip("'\"")
    if not _plain(value):
        return []
    offset = m.string.index(value, start)
    return [(offset, offset + len(value))]


def config_findings(text: str, which: list[int] | None = None) -> list[tuple[str, Span]]:
    """(kind, span of the password) for each part whose prefilter (index in PREFILTERS) occurs."""
    parts = set(range(len(PREFILTERS)) if which is None else which)
    spans: list[Span] = []
    if parts & {0, 1, 2, 3}:
        spans += _structured(text)
    if 4 in parts:
        spans += [m.span("bare") for m in matches(_NETRC_RE, text) if _plain(m["bare"])]
    if 5 in parts:
        spans += [m.span("bare") for m in matches(_PGPASS_RE, text) if _plain(m["bare"])]
        spans = [s for s in spans if not text[s[0] : s[1]].isdigit()]
    if 6 in parts:
        for m in matches(_FLAG_RE, text):
            commands = _FLAG_COMMANDS[m["flag"]]
            value = text[slice(*_span(m))]
            if _command_before(text, m.start(), commands) and _plain(value) and not _port(value):
                spans.append(_span(m))
    if 7 in parts:
        for m in matches(_GLUED_P_RE, text):
            value = text[slice(*_span(m))]
            if _command_before(text, m.start(), _GLUED_COMMANDS) and _plain(value):
                spans.append(_span(m))
    pairs = (
        (8, _SMB_RE, _SMB_COMMANDS),
        (9, _RDP_RE, _RDP_COMMANDS),
    )
    for part, regex, commands in pairs:
        if part in parts:
            for m in matches(regex, text):
                if _command_before(text, m.start(), commands) and _plain(text[slice(*_span(m))]):
                    spans.append(_span(m))
    stated = (
        (10, _STDIN_RE),
        (10, _HERE_RE),
        (12, _NMCLI_RE),
        (13, _SQL_RE),
        (13, _SQL_PASSWORD_RE),
    )
    for part, regex in stated:
        if part in parts:
            spans += [_span(m) for m in matches(regex, text) if _plain(text[slice(*_span(m))])]
    if 11 in parts:
        for m in matches(_HTPASSWD_RE, text):
            spans += _htpasswd(m)
    if 18 in parts:
        for m in matches(_INLINE_RE, text):
            start, end = _span(m)
            value = text[start:end]
            word = value.rstrip(".,;:!?)|") if m.group("bare") else value
            bare_sep = not m["sep"].strip()
            quoted = not m.group("bare")
            if not literal_value(word, quoted) or _port(word):
                continue
            if _strong(word) if bare_sep else _spoken(word):
                spans.append((start, start + len(word)))
    for part, regex in ((14, _PROSE_RE), (15, _USE_RE), (16, _LABEL_RE), (17, _AS_RE)):
        if part in parts:
            for m in matches(regex, text):
                start, end = _span(m)
                value = text[start:end]
                word = value.rstrip(".,;:!?)") if m.group("bare") else value
                if _spoken(word):
                    spans.append((start, start + len(word)))
    return [("config_password", s) for s in spans]
