# ruff: noqa: E501
"""The scrubber catches at least what the blocking check's independent scanner flags.

`validated_splits_no_secrets` runs detect-secrets (`pipeline.secret_audit`) on the splits and
blocks the night on any finding: whatever it flags in scrubbed text is a secret the scrubber
left behind. So every positive fixture, every case of the audit's own tests and the shapes
below, once scrubbed, must give it nothing; and benign session text must give it nothing
before scrubbing, or ordinary nights would block. Also: the one set pass that decides which
detectors run never changes what they find.
"""

from __future__ import annotations

import importlib.util
import json
import random
import time
from pathlib import Path

import pytest

from pipeline.scrub import _find, find_secrets, scrub_text
from pipeline.secret_audit import SETTINGS, scan_text, scan_texts
from tests.core import test_secret_audit as audit_tests

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "secrets"


def _read(name: str) -> list[dict]:
    with (FIXTURES / name).open() as f:
        return [json.loads(line) for line in f]


POSITIVES = _read("positives.jsonl")
BENIGN = _read("benign.jsonl")

# fmt: off
# The secret in each must be flagged by the audit as written, and gone once scrubbed.
SHAPES = {
    "twilio_sid": ("sid ACfe797b1c299d92d59cf175d6ec6ca142 for the account", "ACfe797b1c299d92d59cf175d6ec6ca142"),
    "twilio_sid_glued": ("x=MyACfe797b1c299d92d59cf175d6ec6ca142zz", "fe797b1c299d92d59cf175d6ec6ca142"),
    "twilio_sid_before_token": ("Client('AC3f8a9b2c7d1e6f304a5b6c7d8e9f0a1b', 'f0e1d2c3b4a5968778695a4b3c2d1e0f')", "AC3f8a9b2c7d1e6f304a5b6c7d8e9f0a1b"),
    "twilio_api_key_sid": ("key SK0123456789abcdef0123456789abcdef in use", "SK0123456789abcdef0123456789abcdef"),
    "discord_bot_token": ("bot.run('MTA0NTc4OTEyMzQ1Njc4OTAx.GhJkLm.abcdefghijklmnopqrstuvwxyz0123456789AB')", "MTA0NTc4OTEyMzQ1Njc4OTAx.GhJkLm.abcdefghijklmnopqrstuvwxyz0"),
    "discord_bot_token_n": ("DISCORD_TOKEN=NzkyNzE1NDU0MTk2MDg4ODQy.X-hvzA.Ovy4MCQywSkoMRRclStW4xAYK7I", "NzkyNzE1NDU0MTk2MDg4ODQy.X-hvzA.Ovy4MCQywSkoMRRclStW4xAYK7I"),
    "mailchimp": ("the key is 0123456789abcdef0123456789abcdef-us12 now", "0123456789abcdef0123456789abcdef-us12"),
    "mailchimp_in_url": ("https://x.example/?k=a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6-us9", "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6-us9"),
    "db_pass_short": ('db_pass = "Xk29aLq0pZ"', "Xk29aLq0pZ"),
    "pwd_short": ("pwd: 'aB3dE6gH'", "aB3dE6gH"),
    "passwd_letters": ('passwd = "hunterxyz"', "hunterxyz"),
    "secret_colon_json": ('{"client_secret": "w8Zq1LmN"}', "w8Zq1LmN"),
    "key_pass": ('KEY_PASS = "Qw3rTy9Z"', "Qw3rTy9Z"),
    "api_key_arrow": ('api_key => "aZ9bY8cX7"', "aZ9bY8cX7"),
    "password_compared": ('if "Tr0ub4dor3" == password:', "Tr0ub4dor3"),
    "password_semicolon": ('$password = "s3cr3tValue";', "s3cr3tValue"),
    "password_word": ('password = "PASSWORD"', '"PASSWORD"'),
    "rsa_header_alone": ("-----BEGIN RSA PRIVATE KEY-----", "BEGIN RSA PRIVATE KEY"),
    "header_then_prose": ("-----BEGIN OPENSSH PRIVATE KEY----- (rest of the key cut)", "BEGIN OPENSSH PRIVATE KEY"),
    "ec_header_then_ellipsis": ("-----BEGIN EC PRIVATE KEY-----\n...", "BEGIN EC PRIVATE KEY"),
    "pgp_header_alone": ("-----BEGIN PGP PRIVATE KEY BLOCK-----", "BEGIN PGP PRIVATE KEY BLOCK"),
    "header_in_prose": ("paste the BEGIN PRIVATE KEY line here", "BEGIN PRIVATE KEY"),
    "putty": ("PuTTY-User-Key-File-2: ssh-rsa\nEncryption: none\nPrivate-Lines: 1\nAAAAgQCxyz0123456789abcdefABCDEF", "PuTTY-User-Key-File-2"),
    "slack_webhook_escaped": ("https:\\/\\/hooks.slack.com\\/services\\/T0ABCDEFG\\/B0ABCDEFG\\/abcdefghijklmnopqrstuvwx", "abcdefghijklmnopqrstuvwx"),
    "slack_webhook_escaped_json": ('{"url": "https:\\/\\/hooks.slack.com\\/services\\/T0ABCDEFG\\/B0ABCDEFG\\/abcdefghijklmnopqrstuvwx"}', "abcdefghijklmnopqrstuvwx"),
    "url_password_escaped": ("DATABASE_URL=postgres:\\/\\/app:s3cretPassw0rd@db.internal:5432\\/app", "s3cretPassw0rd"),
    "json_in_json_password": ('{"args": "{\\"password\\": \\"hunter2xyz!\\"}"}', "hunter2xyz!"),
    "json_in_json_twice": ('{"a": "{\\"b\\": \\"{\\\\\\"password\\\\\\": \\\\\\"hunter2xyz!\\\\\\"}\\"}"}', "hunter2xyz!"),
    "unicode_escaped_key": ('{"k": "\\u0073k_live_4eC39HqLyjWDarjtT1zdp7dc"}', "4eC39HqLyjWDarjtT1zdp7dc"),
    "telegram_no_aa": ("bot 123456789:1phj2ZmTmMaJUFMhCWxULYTsYYASzJuCt3M", "1phj2ZmTmMaJUFMhCWxULYTsYYASzJuCt3M"),
    "curl_long_user": ("curl --user roger23:pQ9wTxu4Fg https://www.dropbox.com", "pQ9wTxu4Fg"),
    "sshpass_letters": ("sshpass -p EjIieupWINry ssh deploy@host", "EjIieupWINry"),
    "password_flag_letters": ("mytool --password hunterxyz --verbose", "hunterxyz"),
}
# fmt: on


def _hand_written_audit_cases() -> dict[str, str]:
    """Every text the audit's own tests scan or scrub."""
    cases = {f"keys:{name}": text for name, text in audit_tests.KEYS.items()}
    cases.update({f"benign:{i}": text for i, text in enumerate(audit_tests.BENIGN)})
    key = (
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
    )
    inner = json.dumps({"type": "service_account", "private_key": key})
    cases["nested_json_key"] = json.dumps({"name": "Write", "arguments": {"content": inner}})
    hook = json.dumps({"hook": audit_tests.KEYS["slack_webhook"]}).replace("/", "\\/")
    cases["escaped_slack_webhook"] = hook
    cases["hostile_long_line"] = (
        'password="' + "a" * 20_000 + ' secret = "x' * 2_000 + " " + audit_tests.KEYS["github"]
    )
    stripe = audit_tests.KEYS["stripe_live"].split()[3]
    cases["split_example"] = audit_tests._example("c3", f"first line\nuse {stripe} here")
    cases["cut_split_line"] = (
        '{"messages": [{"role": "user", "content": "' + audit_tests.KEYS["gitlab"] + '"'
    )
    return cases


HAND_WRITTEN = _hand_written_audit_cases()


def _flagged_after_scrubbing(texts: list[str]) -> list[tuple[int, list[str]]]:
    scrubbed = [scrub_text(text)[0] for text in texts]
    return [
        (i, sorted({h.rule for h in hits})) for i, hits in enumerate(scan_texts(scrubbed)) if hits
    ]


def test_no_positive_fixture_once_scrubbed_gives_the_audit_a_finding():
    flagged = _flagged_after_scrubbing([p["text"] for p in POSITIVES])
    assert [(POSITIVES[i]["rule"], rules) for i, rules in flagged] == []


@pytest.mark.parametrize("name", sorted(HAND_WRITTEN))
def test_no_case_of_the_audit_tests_once_scrubbed_gives_it_a_finding(name):
    assert _flagged_after_scrubbing([HAND_WRITTEN[name]]) == []


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_each_shape_the_audit_flags_is_scrubbed(name):
    text, secret = SHAPES[name]
    assert scan_text(text), f"the audit should flag {name}: the case tests nothing"
    scrubbed, counts = scrub_text(text)
    assert counts and secret not in scrubbed, scrubbed
    assert scan_text(scrubbed) == [], scrubbed


def test_benign_fixture_lines_give_the_audit_nothing():
    texts = [b["text"] for b in BENIGN]
    flagged = [(BENIGN[i]["kind"], i) for i, hits in enumerate(scan_texts(texts)) if hits]
    assert flagged == []


def test_quoted_key_headers_in_code_stay():
    for text in (
        'if pem.startswith("-----BEGIN PRIVATE KEY-----"):',
        "HEADER = '-----BEGIN RSA PRIVATE KEY-----'",
        "markers = (`BEGIN OPENSSH PRIVATE KEY`, x)",
    ):
        assert find_secrets(text) == [] and scan_text(text) == []


# Where RE2's classes and Python's differ: Unicode digits, spaces and letters, the Kelvin sign.
UNICODE_EDGES = [
    "call (٤١٥) ٥٥٥-٠١٢٣ or ٠٢٠ ٧٩٤٦ ٠٩٥٨",
    "+٤٤ ٢٠ ٧٩٤٦ ٠٩٥٨ and 415-٥٥٥-0123",
    'password\u00a0=\u00a0"abcdefgh1"',
    'passwordé = "abcdefgh1"',
    "api_\u212aey = 'Zx81Qw0plm'",
    "export SECRET_\u212aEY=Zx81Qw0plmQ2",
    "ayşe@example.com wrote",
    "--pass\u212aword=Zx81Qw0plm",
]


def test_the_set_pass_never_skips_a_finding():
    texts = [p["text"] for p in POSITIVES] + [b["text"] for b in BENIGN]
    texts += list(HAND_WRITTEN.values()) + [t for t, _ in SHAPES.values()] + UNICODE_EDGES
    differ = [t[:80] for t in texts if _find(t, frozenset()) != _find(t, frozenset(), gated=False)]
    assert differ == []


@pytest.mark.parametrize(
    "text",
    [
        "password" * 25_000,
        "`a" * 100_000,
        "password=`a" * 20_000,
        '"a' * 100_000 + "==password",
        "secret=" + '"a "' * 50_000,
        "\\/" * 100_000,
        "\\\\" * 100_000 + "\\/",
    ],
    ids=["names", "backticks", "named-backticks", "quotes", "named-quotes", "escapes", "nested"],
)
def test_hostile_lines_scrub_in_linear_time(text):
    # A pathology guard (200 KB in well under a second today; quadratic would take minutes).
    start = time.process_time()
    scrub_text(text)
    assert time.process_time() - start < 10


def _regex_sampler():
    """The fixtures generator's sampler: a random string a regex matches."""
    path = Path(__file__).resolve().parents[2] / "scripts" / "gen_secret_fixtures.py"
    spec = importlib.util.spec_from_file_location("gen_secret_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.sample


def _plugin_patterns() -> list[tuple[str, str]]:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.settings import get_plugins, transient_settings

    with transient_settings(SETTINGS):
        get_mapping_from_secret_type_to_class.cache_clear()
        plugins = get_plugins()
    get_mapping_from_secret_type_to_class.cache_clear()
    return [(type(p).__name__, rx.pattern) for p in plugins for rx in getattr(p, "denylist", ())]


def test_strings_drawn_from_every_audit_pattern_are_scrubbed_once_flagged():
    # Every regex of every plugin the audit runs, sampled, in five contexts: whatever it flags
    # must be scrubbed away (the keyword plugin is covered by the shapes above).
    sample, rng = _regex_sampler(), random.Random(7)
    contexts = ("{m}", "see {m} here", 'x = "{m}"', '{{"v": "{m}"}}', "export V={m}")
    texts = []
    for name, pattern in _plugin_patterns():
        for _ in range(4):
            m = sample(pattern, rng)
            texts += [(name, c.format(m=m)) for c in contexts]
    flagged = [t for t, hits in zip(texts, scan_texts([t for _, t in texts]), strict=True) if hits]
    assert len(flagged) > len(texts) // 2  # the samples do look like keys to the audit
    left = _flagged_after_scrubbing([t for _, t in flagged])
    assert [(flagged[i][0], flagged[i][1][:80], rules) for i, rules in left] == []
