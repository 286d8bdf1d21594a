from __future__ import annotations

from pipeline.qualify import DIMENSIONS, QualifyConfig, score_conversation
from tests.core.factories import conv, result, rich_session, text, tool, turn


def test_a_rich_completed_session_is_tier_a():
    s = score_conversation(rich_session())
    assert s.tier == "A" and s.score >= 0.7
    assert all(0.0 <= getattr(s, d) <= 1.0 for d in DIMENSIONS)
    assert s.completion == 1.0 and s.error_ratio == 1.0
    assert s.tool_richness > 0.9  # Bash, Edit, Read: 3 of 4 distinct, plus 12 calls
    assert s.reasoning == 0.3333  # 1 of 3 assistant turns per exchange thinks or explains


def test_an_unanswered_erroring_session_is_tier_c():
    turns = [
        turn("human", text("hi")),
        turn("assistant", tool("Bash", command="ls")),
        turn("tool_result", result("permission denied", error=True)),
    ]
    s = score_conversation(conv(turns))
    assert s.completion < 0.5 and s.error_ratio == 0.0 and s.tier == "C"


def test_each_dimension_moves_the_score_it_should():
    base = conv([turn("human", text("fix the bug in api.py")), turn("assistant", text("Done."))])
    ended_on_question = conv([*base.turns, turn("human", text("and the other one?"))])
    assert score_conversation(ended_on_question).completion == 0.0
    assert score_conversation(base).completion == 1.0
    assert score_conversation(rich_session()).depth > score_conversation(base).depth


def test_tiers_and_weights_are_configurable():
    s = score_conversation(rich_session(), QualifyConfig(tier_a=0.99, tier_b=0.1))
    assert s.tier == "B"
    only_reasoning = QualifyConfig(weights={"reasoning": 1.0})
    assert score_conversation(rich_session(), only_reasoning).score == 0.3333
