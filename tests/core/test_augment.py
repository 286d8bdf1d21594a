"""What Claude is asked, and how its answers become examples and preference pairs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import anthropic
import pytest

from pipeline.augment import (
    AugmentConfig,
    augment,
    parse_pairs,
    rewind_pairs,
    write_augmented,
)
from pipeline.claude import ClaudeClient, ClaudeConfig, ResponseCache
from pipeline.scrub import has_secret
from pipeline.types import ChatExample
from tests.anthropic_server import API_KEY, AnthropicServer, FakeAnthropic
from tests.core.factories import conv, text, turn

SECRET = "export ANTHROPIC_API_KEY=sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH"
CFG = AugmentConfig(qa_per_skill=3, scenarios_per_skill=2, max_tokens=300, model="claude-x")


@pytest.fixture
def fake() -> FakeAnthropic:
    return FakeAnthropic(batch_polls=1)


@pytest.fixture
def claude(fake: FakeAnthropic, tmp_path: Path) -> Iterator[ClaudeClient]:
    with AnthropicServer(fake) as url:
        sdk = anthropic.Anthropic(api_key=API_KEY, base_url=url, max_retries=2)
        cfg = ClaudeConfig(model="claude-sonnet-4-5", budget_usd=1.0, poll_interval_s=0.01)
        yield ClaudeClient(sdk, ResponseCache(tmp_path / "responses"), cfg)


def qa(question: str, answer: str, tier: str = "B", strategy: str = "B") -> ChatExample:
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    prov = {"strategy": strategy, "tier": tier, "component": "c7", "conversation": "s7"}
    return ChatExample(messages, prov)


def skills(root: Path) -> Path:
    for name in ("deploy", "review"):
        (root / name).mkdir(parents=True)
        head = f"---\nname: {name}-skill\ndescription: how to {name}\n---\n"
        doc = head + f"## Steps\nRun make {name}.\n"
        (root / name / "SKILL.md").write_text(doc)
    return root


def rewound():
    """A session rewound at its second prompt: kept and abandoned branches share the start."""
    h1 = turn("human", text("Set up the project"))
    a1 = replace(turn("assistant", text("Done: the project is set up.")), parent_uuid=h1.uuid)
    kept_q = replace(turn("human", text("Add a health endpoint")), parent_uuid=a1.uuid)
    kept_a = replace(
        turn("assistant", text("Added GET /health returning 200.")), parent_uuid=kept_q.uuid
    )
    lost_q = replace(turn("human", text("Add a health check")), parent_uuid=a1.uuid)
    lost_a = replace(turn("assistant", text("I cannot do that.")), parent_uuid=lost_q.uuid)
    main = conv([h1, a1, kept_q, kept_a], cid="s9", component="c9")
    branch = replace(conv([h1, a1, lost_q, lost_a], cid="s9"), id="s9/rejected-1")
    branch.kind = "rejected_branch"
    return [main, branch]


def test_augment_distills_tier_b_pairs_them_and_writes_skill_qa(claude, fake, tmp_path):
    examples = [
        qa("How do I list files?", "ls"),
        qa("What is a tier A thing?", "ignored", tier="A"),  # only tier B is distilled
        qa("Why does it fail?", f"because of {SECRET}"),
    ]
    result = augment(examples, rewound(), skills(tmp_path / "skills"), claude.run, CFG)
    strategies = result.by_strategy()
    assert strategies == {
        "augment-distill": 2,
        "augment-skill-qa": 6,  # 3 per skill document
        "augment-scenario": 4,
        "augment-preference": 3,  # 2 improved-over-original, 1 rewind
    }
    # One batch carried everything, and nothing secret went into it.
    batch = [b for b in fake.bodies if b["path"] == "/v1/messages/batches"]
    assert len(batch) == 1 and len(batch[0]["requests"]) == 2 + 4
    assert not any(has_secret(json.dumps(b)) for b in fake.bodies)
    distilled = [e for e in result.examples if e.provenance["strategy"] == "augment-distill"]
    first = distilled[0]
    assert first.messages[0]["content"] == "How do I list files?"
    assert first.messages[1]["content"].startswith("Improved answer")
    assert first.provenance["component"] == "c7"  # split beside its source
    assert first.provenance["source"] == "claude" and first.provenance["model"] == "claude-x"
    assert first.provenance["cost_usd"] > 0
    skill = [e for e in result.examples if e.provenance["strategy"] == "augment-skill-qa"]
    assert {e.provenance["component"] for e in skill} == {
        "skill:deploy-skill",
        "skill:review-skill",
    }
    total = sum(e.provenance["cost_usd"] for e in result.examples)
    assert total == pytest.approx(claude.usage.spent_usd, rel=1e-4)
    improved = [p for p in result.preferences if p["provenance"]["pair"] == "improved"]
    assert improved[0]["rejected"] == "ls"
    assert improved[0]["chosen"].startswith("Improved answer")
    assert improved[1]["rejected"].endswith("<SECRET:anthropic_key>")  # scrubbed, then sent
    pairs = {p["provenance"]["pair"]: p for p in result.preferences}
    assert pairs["rewind"] == {
        "prompt": "Add a health endpoint",
        "chosen": "Added GET /health returning 200.",
        "rejected": "I cannot do that.",
        "provenance": pairs["rewind"]["provenance"],
    }
    assert pairs["rewind"]["provenance"]["component"] == "c9"


def test_a_second_run_is_answered_from_the_cache(claude, fake, tmp_path):
    examples = [qa("How do I list files?", "ls")]
    first = augment(examples, [], skills(tmp_path / "skills"), claude.run, CFG)
    posts = len(fake.bodies)
    claude.usage.spent_usd = 0.0
    again = augment(examples, [], tmp_path / "skills", claude.run, CFG)
    assert [e.messages for e in again.examples] == [e.messages for e in first.examples]
    assert len(fake.bodies) == posts and claude.usage.spent_usd == 0.0
    assert all(e.provenance["cost_usd"] == 0 for e in again.examples)


def test_answers_that_are_not_json_arrays_are_dropped_with_a_reason(claude, fake, tmp_path):
    fake.answer = lambda params: "Sure! Here are some questions."
    result = augment([], [], skills(tmp_path / "skills"), claude.run, CFG)
    assert result.examples == []
    assert result.dropped == {
        "augment-skill-qa:unparseable_answer": 2,
        "augment-scenario:unparseable_answer": 2,
    }


def test_failed_requests_are_counted_not_fatal(claude, fake, tmp_path):
    fake.fail_if = lambda params: "Question:" in params["messages"][0]["content"]
    result = augment([qa("How do I list files?", "ls")], [], tmp_path / "none", claude.run, CFG)
    assert result.examples == [] and result.dropped == {"augment-distill:errored": 1}


def test_rewind_pairs_need_a_main_conversation_and_distinct_answers():
    main, branch = rewound()
    assert rewind_pairs([branch])[1] == {"rewind:no_main_conversation": 1}
    same = replace(branch, turns=branch.turns[:3] + [replace(main.turns[3], uuid="x")])
    assert rewind_pairs([main, same])[1] == {"rewind:no_distinct_answers": 1}


def test_parse_pairs_reads_a_fenced_json_array_and_caps_it():
    reply = '```json\n[{"question": "q1", "answer": "a1"}, {"question": "q2", "answer": "a2"}]\n```'
    assert parse_pairs(reply, 1) == [("q1", "a1")]
    assert parse_pairs('{"question": "q"}', 3) is None
    assert parse_pairs("not json", 3) is None


def test_write_augmented_writes_examples_preferences_and_usage(tmp_path):
    main, branch = rewound()
    result = augment([], [main, branch], tmp_path / "none", lambda asks: [], CFG)
    write_augmented(result, {"spent_usd": 0.0}, tmp_path / "out")
    prefs = [
        json.loads(x) for x in (tmp_path / "out" / "preferences.jsonl").read_text().splitlines()
    ]
    assert [sorted(p) for p in prefs] == [["chosen", "prompt", "provenance", "rejected"]]
    assert (tmp_path / "out" / "examples.jsonl").read_text() == ""
    usage = json.loads((tmp_path / "out" / "usage.json").read_text())
    assert usage["by_strategy"] == {"augment-preference": 1}
