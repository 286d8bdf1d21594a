"""The betterleaks rule set as the scrubber's primary detectors, the command-line, webhook and
base64 detectors, rule skipping, the committed fixtures, and linear time on hostile input.

Fixtures: tests/fixtures/secrets (README there: betterleaks' true-positive cases, MIT, and
generated benign session text). Every key written here is made up in its provider's format.
"""

# ruff: noqa: E501

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from pipeline.scrub import (
    PLACEHOLDER_RE,
    check_rule_ids,
    find_secrets,
    has_secret,
    rule_ids,
    scrub_text,
    scrub_value,
)
from pipeline.scrub_rules import RULES_FILE, leak_rules
from pipeline.types import ChatExample
from pipeline.validate import ValidateConfig, validate

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "secrets"


def _read(name: str) -> list[dict]:
    with (FIXTURES / name).open() as f:
        return [json.loads(line) for line in f]


POSITIVES = _read("positives.jsonl")
BENIGN = _read("benign.jsonl")


def _leaked(scrubbed: str, secrets: list[str]) -> bool:
    rest = PLACEHOLDER_RE.sub("\0", scrubbed)  # `<SECRET:url_password>` spells "password"
    return any(s in rest for s in secrets)


def test_the_rule_set_loads_every_reporting_rule_and_our_ids_stay_distinct():
    ids = rule_ids()
    assert len(ids) == len(set(ids)) and len(leak_rules()) > 400
    assert {"stripe-access-token", "slack-webhook-url", "gcp-api-key", "gitlab-pat"} <= set(ids)
    assert {"env_value", "cli_password", "base64_secret", "email", "phone"} <= set(ids)
    # Companion rules that name no secret (ids, hosts) are not scrubbed; lone secrets are.
    assert "generic-username" not in ids and "aws-secret-access-key" in ids
    assert (RULES_FILE.parent / "betterleaks.LICENSE").read_text().startswith("MIT License")


def test_fixture_recall_and_benign_share_meet_their_targets():
    missed = [p for p in POSITIVES if _leaked(scrub_text(p["text"])[0], p["secrets"])]
    recall = 1 - len(missed) / len(POSITIVES)
    changed = [b for b in BENIGN if scrub_text(b["text"])[0] != b["text"]]
    benign = 1 - len(changed) / len(BENIGN)
    assert len(POSITIVES) > 2000 and len(BENIGN) >= 3000
    assert recall >= 0.99, [(p["rule"], p["text"][:80]) for p in missed][:20]
    assert benign >= 0.95, [(b["kind"], b["text"][:80]) for b in changed][:20]
    # Every rule the scrubber loads has cases, but for two whose regex cannot be sampled.
    assert len({p["rule"] for p in POSITIVES} & set(rule_ids())) >= len(leak_rules()) - 2


ISSUE = [p for p in POSITIVES if p["source"] == "issue"]


@pytest.mark.parametrize("case", ISSUE, ids=[p["rule"] for p in ISSUE])
def test_the_issues_credentials_are_scrubbed(case: dict):
    scrubbed, counts = scrub_text(case["text"])
    assert not _leaked(scrubbed, case["secrets"]) and sum(counts.values()) >= 1
    assert has_secret(case["text"]) and scrub_text(scrubbed) == (scrubbed, {})


# (text, secret, rule id of the finding covering it): each class of the issue, written anew.
CLASSES = [
    (
        "deploy with xoxb-5523781044-4829103746521-Zq8WkP3vN7sT2yR6uB1dF9hL now",
        "xoxb-5523781044-4829103746521-Zq8WkP3vN7sT2yR6uB1dF9hL",
        "slack-bot-token",
    ),
    (
        "POST https://hooks.slack.com/services/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",
        "Lm2Np4Qr6St8Uv0Wx2Yz4Ab6",
        "slack-webhook-url",
    ),
    (
        "hook: https://discordapp.com/api/webhooks/998877665544332211/aB3-cD5_eF7gH9iJ1kL3mN5oP7qR9sT1uV3wX5yZ7aB9cD1eF3gH5iJ7kL9mN1o",
        "aB3-cD5_eF7gH9iJ1kL3mN5oP7qR9sT1uV3wX5yZ7aB9cD1eF3gH5iJ7kL9mN1o",
        "webhook_url",
    ),
    (
        "charge it with rk_live_51Pz9Yq2Wx4Vu6Ts8Rq0Po2Nm4Lk6Ji8Hg0Fe2Dc4 please",
        "rk_live_51Pz9Yq2Wx4Vu6Ts8Rq0Po2Nm4Lk6Ji8Hg0Fe2Dc4",
        "stripe-access-token",
    ),
    (
        "The browser key AIzaSyB7xQ2mN9pL4kR8vT1wZ6yC3dF5gH0jK2l is restricted",
        "AIzaSyB7xQ2mN9pL4kR8vT1wZ6yC3dF5gH0jK2l",
        "gcp-api-key",
    ),
    ("clone with glpat-Qw3Er5Ty7Ui9Op1As3Df then push", "glpat-Qw3Er5Ty7Ui9Op1As3Df", "gitlab-pat"),
    (
        "twine upload -p pypi-AgEIcHlwaS5vcmcCJDk4ZjE2YmQ5LTc3MzUtNDk1MS1hODQ5LTQ2ZTk5ODg0ZTg1ZgACKlszLCI2NjQ1YjM3Yy0xODkyLTQ1NzYtYTAzNS04YjE5NjFjNGUxMDEiXQAABiA9dLx3kWq dist/*",
        "pypi-AgEIcHlwaS5vcmcCJDk4ZjE2YmQ5LTc3MzUtNDk1MS1hODQ5LTQ2ZTk5ODg0ZTg1ZgACKlszLCI2NjQ1YjM3Yy0xODkyLTQ1NzYtYTAzNS04YjE5NjFjNGUxMDEiXQAABiA9dLx3kWq",
        "pypi-upload-token",
    ),
    (
        "npm token is npm_Pq8Rs6Tu4Vw2Xy0Za8Bc6De4Fg2Hi0Jk8Lm6",
        "npm_Pq8Rs6Tu4Vw2Xy0Za8Bc6De4Fg2Hi0Jk8Lm6",
        "npm-access-token",
    ),
    (
        "npm token (cut) npm_Pq8Rs6Tu4Vw2Xy0Za8Bc6De4Fg2Hi0Jk8",
        "npm_Pq8Rs6Tu4Vw2Xy0Za8Bc6De4Fg2Hi0Jk8",
        "provider_token",
    ),
    (
        "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",
        "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",
        "sendgrid-api-token",
    ),
    (
        "key SG.Zx9Cv7Bn5Mm3Ll1Kk9Jj7H.Gg5Ff3Dd1Ss9Aa7Qq5Ww3Ee1Rr9Tt7Yy5Uu3Ii1Oo9Pp7",
        "SG.Zx9Cv7Bn5Mm3Ll1Kk9Jj7H.Gg5Ff3Dd1Ss9Aa7Qq5Ww3Ee1Rr9Tt7Yy5Uu3Ii1Oo9Pp7",
        "provider_token",
    ),
    (
        "curl https://api.telegram.org/bot7012345678:AAF9xK2mP5qR8tV1wY4zB7cE0gH3jL6nQ9s/getMe",
        "AAF9xK2mP5qR8tV1wY4zB7cE0gH3jL6nQ9s",
        "provider_token",
    ),
    (
        "doctl auth init --access-token dop_v1_0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "dop_v1_0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "digitalocean-pat",
    ),
    (
        "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 was rotated",
        "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",
        "shopify-access-token",
    ),
    (
        "echo dckr_pat_Mn3Bv5Cx7Zl9Kj1Hg3Fd5Sa7Po0 | docker login --password-stdin",
        "dckr_pat_Mn3Bv5Cx7Zl9Kj1Hg3Fd5Sa7Po0",
        "dockerhub-personal-access-token",
    ),
    (
        "Sorry, the secret is Qx18Q~Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9O.",
        "Qx18Q~Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9O",
        "provider_token",
    ),
    (
        "BlobEndpoint=https://a.blob.core.windows.net/;SharedAccessSignature=sv=2022-11-02&ss=b&sig=Qm9vZ2xlZ29vZ2xlQm9vZ2xlZ29vZ2xl%2Fk%3D",
        "Qm9vZ2xlZ29vZ2xlQm9vZ2xlZ29vZ2xl",
        "azure_sas",
    ),
    (
        "aws configure set aws_secret_access_key Vb8Nm6Qw4Er2Ty0Ui8Op6As4Df2Gh0Jk8Ll6Zx4C --profile prod",
        "Vb8Nm6Qw4Er2Ty0Ui8Op6As4Df2Gh0Jk8Ll6Zx4C",
        "cli_password",
    ),
    ("mysql -h db -uroot -pZt5Yx3Wv1Ut shop", "Zt5Yx3Wv1Ut", "cli_password"),
    ("sshpass -p Ks7Lm9Np1Qr ssh deploy@10.1.2.3", "Ks7Lm9Np1Qr", "cli_password"),
    ("curl -s -u deploy:Rw4Tx6Yz8Ab https://ci.internal/job", "Rw4Tx6Yz8Ab", "cli_password"),
    ("PGPASSWORD=Hj3Kl5Zx7Cv psql -h db -U app", "Hj3Kl5Zx7Cv", "env_value"),
    ("docker login registry.internal -u ci -p Pd2Fg4Hj6Kl", "Pd2Fg4Hj6Kl", "cli_password"),
    (
        "wget --http-password=Nb5Vc7Xz9Lk https://files.internal/a.tgz",
        "Nb5Vc7Xz9Lk",
        "cli_password",
    ),
    ("./release.sh --auth-token Gt6Hy8Ju0Ki2 --dry-run", "Gt6Hy8Ju0Ki2", "cli_password"),
    ("sshpass -pYh7Uj9Ik1Ol ssh deploy@10.1.2.3", "Yh7Uj9Ik1Ol", "cli_password"),
    ("redis-cli -h cache.internal -a Qa2Ws4Ed6Rf ping", "Qa2Ws4Ed6Rf", "cli_password"),
    (
        "openssl pkcs12 -export -passout pass:Tg5Yh7Uj9Ik -out site.p12",
        "Tg5Yh7Uj9Ik",
        "cli_password",
    ),
    ("mysqldump -uroot -p'Wq8#zR4!tY' shop > shop.sql", "Wq8#zR4!tY", "cli_password"),
]


@pytest.mark.parametrize(
    ("text", "secret", "rule"), CLASSES, ids=[c[2] + ":" + c[0][:20] for c in CLASSES]
)
def test_each_class_of_credential_is_found_by_its_rule(text: str, secret: str, rule: str):
    start = text.index(secret)
    covering = [f for f in find_secrets(text) if f.start <= start < f.end]
    assert covering and covering[0].rule == rule, find_secrets(text)
    assert PLACEHOLDER_RE.fullmatch(f"<SECRET:{covering[0].kind}>")
    assert secret not in scrub_text(text)[0]


@pytest.mark.parametrize(
    "text",
    [
        "ls -a /home/dana && tar -a -cf x.tgz dir",  # -a is no password outside redis-cli
        "psql -h db -p 5432 -U app",  # -p is a port outside mysql and sshpass
        'raise CLIError("--registry-password requires --registry-username")',
        "Pass it as `--secrets HF_TOKEN` or `--token $TOKEN`.",
        "instance=context.instance, asset_key=asset_key, partition_key=None",
        ">>> from transformers import AutoTokenizer, Qwen3ForCausalLM",
        "mysql -u root -p shop < dump.sql",
    ],
)
def test_command_lines_and_code_without_credentials_are_left_alone(text: str):
    assert find_secrets(text) == []


@pytest.mark.parametrize(
    "key",
    [
        "sk_live_1111222233334444aaaabbbb",  # a provider's exact format, however regular
        "ghp_aaaa1111aaaa1111aaaa1111aaaa1111aaaa",
        "xoxb-1111111111-2222222222-abababababababab",
        "glpat-aaaaaaaaaaaa11111111",
    ],
)
def test_a_providers_format_is_scrubbed_whatever_its_entropy(key: str):
    assert key not in scrub_text(f"the key is {key} ok")[0]


def test_base64_runs_holding_a_secret_are_scrubbed_whole_and_binary_runs_are_kept():
    key = "sk_live_51Hx8q2LkT9vR3mN7pW1zY4cB6dF8gJ0"
    run = base64.b64encode(f"STRIPE_KEY={key}\n".encode()).decode()
    twice = base64.b64encode(run.encode()).decode()
    assert scrub_text(f"value: {run}")[0] == "value: <SECRET:base64_secret>"
    assert scrub_text(f"echo {twice} | base64 -d | base64 -d")[0].startswith("echo <SECRET:")
    image = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3).decode()
    assert find_secrets(f"data:image/png;base64,{image}") == []


@pytest.mark.parametrize("escapes", [1, 2])
def test_a_private_key_json_escaped_once_or_twice_is_scrubbed(escapes: int):
    body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7Xk9pQ2rT7vW3yZ8a"
    pem = f"-----BEGIN PRIVATE KEY-----\n{body}\n{body[::-1]}\n-----END PRIVATE KEY-----\n"
    text = json.dumps({"type": "service_account", "private_key": pem})
    for _ in range(escapes - 1):
        text = json.dumps({"file_path": "sa.json", "content": text})
    scrubbed = scrub_text(text)[0]
    assert body not in scrubbed and body[::-1] not in scrubbed


def test_a_truncated_pgp_block_is_scrubbed_past_its_blank_line():
    body = "lQOYBF0j7VQBCADGxk3z8Qm2Lw9vT4pN6rY1sU8cB3dF5gH7jK9lM2nP4qR6tV8x"
    text = f"-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\n{body}\n"
    assert scrub_text(text)[0] == "<SECRET:private_key>\n"


def test_skip_turns_named_rules_off_for_every_entry_point():
    key = "sk_live_51Hx8q2LkT9vR3mN7pW1zY4cB6dF8gJ0"
    text = f"use {key} and mail dana.berg@example.com"
    skip = frozenset({"stripe-access-token", "email"})
    assert [f.rule for f in find_secrets(text)] == ["stripe-access-token", "email"]
    assert find_secrets(text, skip) == [] and not has_secret(text, skip)
    assert scrub_text(text, skip) == (text, {})
    assert scrub_value({"m": [text]}, skip=skip) == ({"m": [text]}, {})
    only = scrub_text(text, frozenset({"email"}))[0]
    assert only == "use <SECRET:stripe_access_token> and mail dana.berg@example.com"


def test_unknown_rule_ids_fail_with_the_closest_names():
    assert check_rule_ids(("stripe-access-token", "env_value")) == {
        "stripe-access-token",
        "env_value",
    }
    with pytest.raises(
        ValueError, match=r"'stripe-acess-token' \(did you mean stripe-access-token"
    ):
        check_rule_ids(["stripe-acess-token"])
    with pytest.raises(ValueError, match="scrub_skip_rules"):
        ValidateConfig(scrub_skip_rules=("no-such-rule",))


def test_validate_passes_the_skip_setting_to_its_scrubbing():
    key = "sk_live_51Hx8q2LkT9vR3mN7pW1zY4cB6dF8gJ0"
    examples = [
        ChatExample(
            [
                {"role": "user", "content": f"is {key} live? ({i})"},
                {"role": "assistant", "content": f"yes {i}"},
            ],
            {"component": f"c{i}"},
        )
        for i in range(12)
    ]

    def texts(result) -> str:
        return " ".join(
            m["content"] for s in result.splits.values() for ex in s for m in ex.messages
        )

    assert key not in texts(validate(examples))
    assert key in texts(
        validate(examples, cfg=ValidateConfig(scrub_skip_rules=("stripe-access-token",)))
    )


@pytest.mark.parametrize("case", POSITIVES[::7], ids=[p["rule"] for p in POSITIVES[::7]])
def test_scrubbing_the_fixtures_twice_changes_nothing(case: dict):
    once, counts = scrub_text(case["text"])
    assert scrub_text(once) == (once, {})
    assert len(PLACEHOLDER_RE.findall(once)) >= sum(counts.values()) > 0


# Hostile inputs of a megabyte: each once took quadratic time in some scrubber (the issue's
# `password=` took 7 s for 36 KB). Linear work takes well under 2 s here; the bound is 20 s.
HOSTILE = [
    "password=", "password: ", 'password="', "api_key=A1", '{"', "a=", "QUJD", "key: ",
    "-----BEGIN PRIVATE KEY-----\n", "-----BEGIN PRIVATE KEY-----\\\\n", "curl -u a:b ",
    "--token ", "mysql -p", "config set ", "https://a:b@", "Bearer ", "eyJ", "AC" + "0" * 32 + ",",
    "xoxb-1234567890-", "kind: secret\ndata:\n", "a@", "+1 ", "?sig=",
    "password ", "password is ", "Password:\n", "<password>", "<password>a", "define('DB_PASSWORD', ",
    'variable "db_password" {', "ENV A_PASSWORD ", "machine a login b password ", "a:1:b:c:",
    "echo a | ", "htpasswd -b ", "mongosh -p ", "7z a -p", "smbclient -U a%", "IDENTIFIED BY ",
    "use password ", "\x1b[32m", "\x1b]0;", "sk_live_4eC39HqLyjWDarjtT1zdp7dc.",
]  # fmt: skip


@pytest.mark.parametrize("unit", HOSTILE)
def test_scrubbing_hostile_input_stays_linear(unit: str):
    text = unit * (1_000_000 // len(unit))
    start = time.process_time()
    scrubbed, _ = scrub_text(text)
    assert time.process_time() - start < 20.0
    assert len(scrubbed) > 0


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("password: correcthorsebatterystaple", "correcthorsebatterystaple"),
        ("db_password=CORRECTHORSEBATTERY", "CORRECTHORSEBATTERY"),
        ("the password is hunter2.", "hunter2"),
        ("my password is Tr0ub4dor&3 please remember", "Tr0ub4dor&3"),
        ('the passphrase was: "Xy8!kq".', "Xy8!kq"),
    ],
)
def test_bare_and_spoken_passwords_are_scrubbed(text, secret):
    assert secret not in scrub_text(text)[0]


@pytest.mark.parametrize(
    "text",
    [
        "password=password",
        "password=userPassword",
        "login(password=password_hash)",
        "password: str",
        "password: required",
        "The password is required.",
        "the password is wrong!",
        "password is $DB_PASS",
        "pwd is /home/me/project",
    ],
)
def test_password_words_in_code_and_prose_stay(text):
    assert scrub_text(text)[0] == text
