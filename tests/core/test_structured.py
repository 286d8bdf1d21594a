"""Tool inputs and results scrubbed before they are serialized into example text."""

from __future__ import annotations

import base64
import json
import random

from pipeline.curate import CurateConfig, render_turn
from pipeline.scrub import find_secrets
from pipeline.secret_audit import audit_text
from pipeline.structured import scrub_structured
from pipeline.types import Block, Turn

_RNG = random.Random(7)
BODY = base64.b64encode(bytes(_RNG.getrandbits(8) for _ in range(1200))).decode()
PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    + "\n".join(BODY[i : i + 64] for i in range(0, len(BODY), 64))
    + "\n-----END PRIVATE KEY-----\n"
)
SERVICE_ACCOUNT = {
    "type": "service_account",
    "project_id": "demo-proj-4821",
    "private_key_id": "9c1b7e4d5a6f8b9c0d1e2f3a4b5c6d7e8f903f2a",
    "private_key": PEM,  # json.dumps writes its newlines as `\n` escapes
    "client_email": "trainer@demo-proj-4821.iam.gserviceaccount.com",
    "client_id": "104729318273645501928",
}
GITHUB = "ghp_" + "".join(_RNG.choices("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789", k=36))
STRIPE = "sk_live_" + "".join(_RNG.choices("abcdefghijklmnopqrstuvwxyzABCDEF0123456789", k=24))
MYSQL_PASSWORD = "Qz7vLp2mXk9w"
WEBHOOK = "https://hooks.slack.com/services/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"


def _call(name: str, args: dict) -> Turn:
    block = Block("tool_use", "", name, args, "toolu_1")
    return Turn("a1", None, "assistant", "assistant", [block], "", "s1")


def _result(text: str) -> Turn:
    return Turn(
        "u1", None, "user", "tool_result", [Block("tool_result", text, "", None, "t")], "", "s"
    )


def _arguments(content: str) -> dict:
    inner = content.removeprefix("<tool_call>\n").removesuffix("\n</tool_call>")
    return json.loads(inner)["arguments"]


def _leaked(text: str) -> list[str]:
    values = [BODY[:40], BODY[600:640], GITHUB, STRIPE, MYSQL_PASSWORD, "trainer@", WEBHOOK[-24:]]
    return [v for v in values if v in text]


def test_a_service_account_json_written_with_the_write_tool_loses_its_key():
    doc = json.dumps(SERVICE_ACCOUNT, indent=2)
    assert "\\n" in doc  # the file itself holds the key with escaped newlines
    turn = _call("Write", {"file_path": "/home/dev/app/sa.json", "content": doc})
    content = render_turn(turn, CurateConfig())["content"]
    assert _leaked(content) == []
    written = json.loads(_arguments(content)["content"])  # still the JSON file it was
    assert written["type"] == "service_account" and written["project_id"] == "demo-proj-4821"
    assert written["private_key"].startswith("<SECRET:")
    assert audit_text(content) == []  # neither scanner finds anything left


def test_edit_and_bash_inputs_holding_tokens_are_scrubbed():
    edit = _call(
        "Edit",
        {
            "file_path": "/home/dev/app/settings.py",
            "old_string": 'GITHUB_TOKEN = ""',
            "new_string": f'GITHUB_TOKEN = "{GITHUB}"\nstripe.api_key = "{STRIPE}"',
        },
    )
    bash = _call(
        "Bash",
        {"command": f"mysql -u root -p{MYSQL_PASSWORD} app < dump.sql", "description": "load"},
    )
    for turn in (edit, bash):
        content = render_turn(turn, CurateConfig())["content"]
        assert _leaked(content) == [], content
        assert audit_text(content) == [], content
    args = _arguments(render_turn(edit, CurateConfig())["content"])
    assert args["file_path"] == "/home/dev/app/settings.py"  # the rest is kept as it was


def test_json_inside_strings_is_decoded_before_scrubbing():
    # Some writers escape `/` as `\/`: the webhook is only recognizable once decoded.
    doc = json.dumps({"webhook": WEBHOOK, "channel": "#deploys"}).replace("/", "\\/")
    write = _call("Write", {"file_path": "/srv/hooks.json", "content": doc})
    content = render_turn(write, CurateConfig())["content"]
    assert _leaked(content) == [] and "#deploys" in content
    shown = render_turn(_result(doc), CurateConfig())["content"]
    assert _leaked(shown) == [] and "#deploys" in shown
    nested = json.dumps({"config": json.dumps({"credentials": json.dumps(SERVICE_ACCOUNT)})})
    clean, counts = scrub_structured({"content": nested})
    assert _leaked(json.dumps(clean)) == [] and counts
    assert json.loads(json.loads(json.loads(clean["content"])["config"])["credentials"])


def test_a_key_straddling_the_tool_result_cut_is_scrubbed_first():
    text = "x" * 1_950 + "\n" + PEM
    content = render_turn(_result(text), CurateConfig(max_tool_chars=2_000))["content"]
    assert _leaked(content) == [] and "BEGIN PRIVATE KEY" not in content


def test_deep_or_odd_json_is_kept_not_raised():
    deep = "[" * 1_500 + "]" * 1_500
    assert scrub_structured(deep)[0] == deep
    assert scrub_structured({"a": ["{not json", 3, None, ("x",)]})[0] == {
        "a": ["{not json", 3, None, ("x",)]
    }


def test_the_users_skipped_rules_are_honoured():
    skip = tuple(f.rule for f in find_secrets(STRIPE))
    turn = _call("Bash", {"command": f"export STRIPE={STRIPE}"})
    kept = render_turn(turn, CurateConfig(scrub_skip_rules=skip))["content"]
    assert STRIPE in kept
    assert STRIPE not in render_turn(turn, CurateConfig())["content"]
