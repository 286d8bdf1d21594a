from __future__ import annotations

import json

from pipeline.audit import leakage, schema_problems, secrets_left
from pipeline.types import ChatExample
from pipeline.validate import validate, write_splits


def ex(q: str, a: str, comp: str, tier: str = "A", strategy: str = "B") -> ChatExample:
    messages = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return ChatExample(messages, {"component": comp, "tier": tier, "strategy": strategy})


def _corpus(n: int = 120) -> list[ChatExample]:
    out = []
    for i in range(n):
        q = f"Question {i}: how do I configure the service number {i} with its own settings?"
        a = f"Answer {i}: " + " ".join(f"word{(i * 7 + j) % 97}" for j in range(40))
        out.append(ex(q, a, comp=f"c{i // 3}"))
    return out


def test_each_step_drops_with_a_reason_and_keeps_the_rest(tmp_path):
    good = _corpus()
    bad = [
        ChatExample([{"role": "user", "content": "q"}], {"component": "x"}),  # no answer
        ChatExample([{"role": "robot", "content": "q"}, {"role": "assistant", "content": "a"}], {}),
        ex("   ", "a", "y"),  # empty turn
        ex(good[0].messages[0]["content"], good[0].messages[1]["content"], "z"),  # exact dup
        ex("long " * 3000, "a", "w"),  # too long for 2048 tokens
    ]
    secret = ex(
        "deploy it", "set AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "s"
    )
    result = validate([*good, *bad, secret])
    reasons = result.report["dropped_by_reason"]
    assert reasons == {
        "no_final_answer": 1,
        "bad_role": 1,
        "empty_turn": 1,
        "exact_duplicate": 1,
        "too_long": 1,
    }
    assert result.report["examples_out"] == len(good) + 1
    assert len(result.dropped) == 5
    kept = [e for rows in result.splits.values() for e in rows]
    assert not any("wJalrXUtnFEMI" in m["content"] for e in kept for m in e.messages)
    assert result.report["stages"]["scrub"]["examples_changed"] == 1


def test_written_splits_pass_every_audit(tmp_path):
    result = validate(_corpus(300))
    write_splits(result, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "dropped.jsonl",
        "report.json",
        "report.md",
        "test.jsonl",
        "train.jsonl",
        "valid.jsonl",
    ]
    assert schema_problems(tmp_path) == {}
    assert leakage(tmp_path) == {
        "components": 0,
        "identical_texts": 0,
        "near_duplicate_clusters": 0,
    }
    assert secrets_left(tmp_path) == []
    train = [json.loads(x) for x in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert set(train[0]) == {"messages", "provenance"}  # mlx-lm reads `messages`, ignores the rest
    assert 250 <= len(train) <= 290
    assert "| split | examples |" in (tmp_path / "report.md").read_text()
    assert result.version() == validate(_corpus(300)).version()


def test_audits_catch_what_they_guard(tmp_path):
    rows = {
        "train": [ex("q1", "same answer here", "c1")],
        "valid": [ex("q1", "same answer here", "c1")],
        "test": [ex("mail me", "at jane.doe@example.com", "c2")],
    }
    for split, exs in rows.items():
        (tmp_path / f"{split}.jsonl").write_text(
            "".join(json.dumps(e.to_json()) + "\n" for e in exs)
        )
    found = leakage(tmp_path)
    assert found["components"] == 1 and found["identical_texts"] == 1
    [leak] = secrets_left(tmp_path)
    assert (leak.rule, leak.split, leak.line, leak.message) == ("scrubber:email", "test", 1, 1)
    (tmp_path / "test.jsonl").write_text(
        '{"messages": [{"role": "user", "content": "q"}]}\nnot json\n'
    )
    problems = schema_problems(tmp_path)
    assert problems["test:no_final_answer"] == 1 and problems["test:unparseable"] == 1
