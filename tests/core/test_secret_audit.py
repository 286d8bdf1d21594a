"""The second scanner (detect-secrets) and the split audit the blocking check runs."""

from __future__ import annotations

import base64
import json
import random
import string

import pytest

from pipeline.audit import secrets_left
from pipeline.scrub import find_secrets, scrub_text
from pipeline.secret_audit import BUILT_IN, EXTRA, audit_text, scan_text, scan_texts
from pipeline.types import ChatExample

_RNG = random.Random(12)
ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"


def tok(alphabet: str, n: int) -> str:
    return "".join(_RNG.choices(alphabet, k=n))


# One realistic (random, fake) credential per provider, each in a line as it would be typed.
KEYS = {
    "aws_access_key": f"export AWS_ACCESS_KEY_ID=AKIA{tok(string.ascii_uppercase + '234567', 16)}",
    "aws_secret_env": f"AWS_SECRET_ACCESS_KEY={tok(ALNUM + '/+', 40)}",
    "aws_configure": f"aws configure set aws_secret_access_key {tok(ALNUM + '/+', 40)}",
    "aws_bedrock": f"key ABSK{tok(ALNUM, 120)}",
    "anthropic": f"client = Anthropic(api_key='sk-ant-api03-{tok(ALNUM, 93)}AA')",
    "openai_project": f"OPENAI_API_KEY=sk-proj-{tok(ALNUM, 48)}",
    "stripe_live": f"the live key sk_live_{tok(ALNUM, 24)} is in prose",
    "stripe_restricted": f"use rk_live_{tok(ALNUM, 24)}",
    "slack_bot": f"token xoxb-123456789012-1234567890123-{tok(ALNUM, 24)}",
    "slack_webhook": "https://hooks.slack.com/services/"
    + f"T{tok('ABCDEFGH123', 8)}/B{tok('ABCDEFGH123', 8)}/{tok(ALNUM, 24)}",
    "google": f"maps key AIza{tok(ALNUM + '_-', 35)} works",
    "gitlab": f"my token is glpat-{tok(ALNUM, 20)}",
    "github": f"ghp_{tok(ALNUM, 36)}",
    "github_fine_grained": f"github_pat_{tok(ALNUM, 82)}",
    "npm": f"npm publish with npm_{tok(ALNUM, 36)}",
    "npmrc": f"//registry.npmjs.org/:_authToken=npm_{tok(ALNUM, 36)}",
    "pypi": f"password = pypi-AgEIcHlwaS5vcmc{tok(ALNUM, 80)}",
    "huggingface": f"HF_TOKEN hf_{tok(string.ascii_letters, 34)}",
    "sendgrid": f"SG.{tok(ALNUM, 22)}.{tok(ALNUM, 43)}",
    "twilio_sid": f"AC{tok(HEX, 32)}",
    "twilio_token": f"TWILIO_AUTH_TOKEN={tok(HEX, 32)}",
    "telegram": f"bot 123456789:{tok(ALNUM, 35)}",
    "digitalocean": f"dop_v1_{tok(HEX, 64)}",
    "shopify": f"shpat_{tok(HEX, 32)}",
    "dockerhub": f"docker login -p dckr_pat_{tok(ALNUM, 27)}",
    "vault": f"VAULT hvs.{tok(ALNUM, 90)}",
    "azure_ad": f"client secret {tok(ALNUM, 3)}8Q~{tok(ALNUM + '_~.-', 34)}",
    "azure_sas": f"https://a.blob.core.windows.net/c/b?sv=2022-11-02&sp=r&sig={tok(ALNUM, 43)}%3D",
    "azure_storage": f"AccountKey={tok(ALNUM, 86)}==",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0." + tok(ALNUM, 43),
    "pem": "-----BEGIN RSA PRIVATE KEY-----",
    "pgp": "-----BEGIN PGP PRIVATE KEY BLOCK-----",
    "password_assignment": 'password = "hunter2xyz!"',
    "mysql": f"mysql -u root -p{tok(ALNUM, 12)} app",
    "sshpass": f"sshpass -p {tok(ALNUM, 12)} ssh deploy@host",
    "curl_user": f"curl -u admin:{tok(ALNUM, 12)} https://ci.example.com/api",
    "url_password": f"postgres://app:{tok(ALNUM, 16)}@db.internal:5432/app",
}

# Ordinary session text, and text the scrubber has been through: nothing to find.
BENIGN = [
    "commit 3f2a9c1b7e4d5a6f8b9c0d1e2f3a4b5c6d7e8f90 (HEAD -> main)",
    "session 123e4567-e89b-12d3-a456-426614174000 resumed",
    '"integrity": "sha512-' + base64.b64encode(bytes(range(64))).decode() + '"',
    "![plot](data:image/png;base64," + base64.b64encode(bytes(range(256)) * 4).decode() + ")",
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ\n-----END CERTIFICATE-----",
    'password = "<SECRET:generic-api-key>"',
    "OPENAI_API_KEY=<SECRET:openai_key>\nDATABASE_URL=postgres://app:<SECRET:url_password>@db/app",
    "mysql -u root -p<SECRET:cli_password> app  # mail <EMAIL> or call <PHONE>",
    'if password == "":\n    raise ValueError("password is required")',
    'api_key = os.environ["ANTHROPIC_API_KEY"]\ntoken = get_token(api_key)',
    'ENV_API_KEY = "ANTHROPIC_API_KEY"',
    'db = connect(user="app", password="test")',
    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "export PASSWORD=$DB_PASSWORD; mysql -p",
    'if pem.startswith("-----BEGIN PRIVATE KEY-----"):',
]


@pytest.mark.parametrize("name", sorted(KEYS))
def test_a_real_key_of_each_provider_is_found(name):
    hits = scan_text(f"some context\n{KEYS[name]}\nmore text")
    assert hits, name
    assert all(h.rule.startswith("detect-secrets:") and h.line == 2 for h in hits)


@pytest.mark.parametrize("text", BENIGN)
def test_ordinary_and_scrubbed_text_is_left_alone(text):
    assert scan_text(text) == []


def test_every_line_the_scrubber_cleaned_stays_quiet():
    # A line the scrubber has no rule for keeps its key: the second scanner reports it.
    cleaned = [scrub_text(line) for line in KEYS.values()]
    scrubbed = [text for text, counts in cleaned if counts]
    assert len(scrubbed) >= len(KEYS) - 6
    assert [hits for hits in scan_texts(scrubbed) if hits] == []


def test_keys_nested_in_json_strings_are_found_through_the_escapes():
    key = (
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
    )
    inner = json.dumps({"type": "service_account", "private_key": key})
    call = json.dumps({"name": "Write", "arguments": {"content": inner}})
    assert "\\\\n" in call  # escaped twice
    assert [h.rule for h in scan_text(call)] == ["detect-secrets:PrivateKeyDetector"]
    slashes = json.dumps({"hook": KEYS["slack_webhook"]}).replace("/", "\\/")
    assert [h.rule for h in scan_text(slashes)] == ["detect-secrets:SlackDetector"]


def test_a_value_never_appears_in_a_finding():
    text = KEYS["stripe_live"]
    hits = audit_text(text)
    assert hits and all(KEYS["stripe_live"].split()[3] not in repr(h) for h in hits)


def test_the_plugin_list_is_explicit_and_leaves_out_entropy_and_ip_plugins():
    chosen = set(BUILT_IN) | set(EXTRA)
    assert not chosen & {"Base64HighEntropyString", "HexHighEntropyString", "IPPublicDetector"}
    assert len(list(scan_texts(["a", "b", "c"]))) == 3


def test_detect_secrets_used_with_its_defaults_first_does_not_lose_our_plugins():
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings

    with default_settings():  # caches the built-in plugin classes alone
        list(scan_line("x = 1"))
    assert [h.rule for h in scan_text(KEYS["npm"])] == ["detect-secrets:NpmBareTokenDetector"]


def test_a_key_at_the_end_of_a_hostile_long_line_is_found():
    # Unterminated quotes after secret names, 400 KB on one line: scanned in windows.
    line = 'password="' + "a" * 200_000 + ' secret = "x' * 20_000 + " " + KEYS["github"]
    assert "detect-secrets:GitHubTokenDetector" in {h.rule for h in scan_text(line)}


def _write_splits(folder, rows_by_split):
    folder.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        lines = rows_by_split.get(split, [])
        (folder / f"{split}.jsonl").write_text("".join(line + "\n" for line in lines))


def _example(conv: str, answer: str) -> str:
    msgs = [{"role": "user", "content": "help"}, {"role": "assistant", "content": answer}]
    return json.dumps(ChatExample(msgs, {"conversation": conv}).to_json())


def test_the_split_audit_names_rule_split_line_and_example_never_the_value(tmp_path):
    stripe = KEYS["stripe_live"].split()[3]
    folder = tmp_path / "splits"
    _write_splits(
        folder,
        {
            "train": [_example("c1", "all clear")],
            "test": [
                _example("c2", "fine"),
                _example("c3", f"first line\nuse {stripe} here"),
                '{"messages": [{"role": "user", "content": "' + KEYS["gitlab"] + '"',  # cut line
            ],
        },
    )
    leaks = secrets_left(folder)
    places = {
        (leak.split, leak.line, leak.example, leak.message, leak.message_line) for leak in leaks
    }
    assert ("test", 2, "c3", 1, 2) in places
    assert ("test", 3, "", -1, 1) in places  # an unparseable line is scanned as it is
    rules = {leak.rule for leak in leaks}
    assert (
        "detect-secrets:StripeDetector" in rules and "detect-secrets:GitLabTokenDetector" in rules
    )
    assert any(r.startswith("scrubber:") for r in rules)
    assert all(stripe not in leak.where() + leak.rule for leak in leaks)
    assert "test.jsonl:2 (example c3, message 1 line 2)" in {leak.where() for leak in leaks}


def test_a_rule_the_scrubber_skips_is_still_caught_by_detect_secrets(tmp_path):
    stripe = KEYS["stripe_live"].split()[3]
    skip = frozenset(f.rule for f in find_secrets(stripe))
    assert skip and not find_secrets(stripe, skip=skip)
    folder = tmp_path / "splits"
    _write_splits(folder, {"train": [_example("c1", f"key {stripe}")]})
    assert [leak.rule for leak in secrets_left(folder, skip)] == ["detect-secrets:StripeDetector"]


@pytest.mark.parametrize(
    "text",
    [
        "Keys look like sk-proj-" + "x" * 48 + " and are shown once.",
        "Your token will look like npm_" + "x" * 36,
        "| GOOGLE_API_KEY | AIza" + "x" * 35 + " |",
        "sendgrid: SG." + "x" * 22 + "." + "x" * 43,
        "KEY=sk_live_" + "X" * 24,
        "AccountKey=" + "*" * 86 + "==",
        "bot 123456789:AA" + "x" * 33,
    ],
)
def test_documentation_fillers_in_a_key_shape_do_not_block_a_night(text):
    assert audit_text(scrub_text(text)[0]) == []
