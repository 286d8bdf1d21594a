from __future__ import annotations

from pathlib import Path

from pipeline.curate import CurateConfig, curate, skill_examples
from pipeline.qualify import score_conversation
from pipeline.types import Block
from tests.core.factories import conv, rich_session, text, turn


def _curate(convs):
    return curate(convs, {c.id: score_conversation(c) for c in convs}, CurateConfig())


def test_tier_a_gives_multi_turn_windows_ending_on_an_answer():
    examples, _ = _curate([rich_session()])
    multi = [e for e in examples if e.provenance["strategy"] == "A"]
    assert multi
    for e in multi:
        assert e.messages[-1]["role"] == "assistant"
        assert "<tool_call>" not in e.messages[-1]["content"]
        assert any("<tool_call>" in m["content"] for m in e.messages[:-1])
        assert any("<tool_response>" in m["content"] for m in e.messages)
        assert e.provenance["tier"] == "A" and e.provenance["component"] == "c1"
        roles = [m["role"] for m in e.messages]
        assert all(a != b for a, b in zip(roles, roles[1:], strict=False))  # alternating


def test_single_turn_qa_only_for_direct_answers_and_never_thinking():
    c = conv(
        [
            turn("human", text("Fix this command: gti stauts")),
            turn("assistant", Block("thinking", "typo"), text("git status")),
            turn("meta", text("<local-command-caveat>")),
            turn("human", text("why is the sky blue")),
            turn("assistant", text("Rayleigh scattering, because short wavelengths scatter more.")),
        ]
    )
    examples, _ = _curate([c])
    pairs = [
        (e.messages[0]["content"], e.messages[1]["content"])
        for e in examples
        if e.provenance["strategy"] == "B"
    ]
    assert ("Fix this command: gti stauts", "git status") in pairs
    assert all("<think>" not in a for _, a in pairs)


def test_rated_answers_are_targets_and_negative_ones_never_are():
    c = conv(
        [
            turn("human", text("q1")),
            turn("assistant", text("bad answer"), rating=-1),
            turn("human", text("q2")),
            turn("assistant", text("good answer"), rating=1),
            turn("human", text("q3")),
            turn("assistant", text("unrated answer")),
        ],
        kind="rated",
    )
    examples, _ = _curate([c])
    assert [e.messages[-1]["content"] for e in examples] == ["good answer"]
    assert examples[0].provenance["strategy"] == "rated"
    assert examples[0].messages[1]["content"] == "bad answer"  # context only


def test_rejected_branches_and_tier_c_are_counted_not_used():
    branch = rich_session(cid="s1/rejected-1")
    branch.kind = "rejected_branch"
    poor = conv([turn("human", text("hi"))], cid="s2")
    examples, dropped = _curate([branch, poor])
    assert examples == []
    assert dropped["rejected_branch"] == 1 and dropped["no_example_tier_C"] == 1


def test_skill_sections_become_questions(tmp_path: Path):
    doc = tmp_path / "git-workflow" / "SKILL.md"
    doc.parent.mkdir()
    doc.write_text(
        "---\nname: git-workflow\ndescription: Branch, commit, rebase.\n---\n"
        "# Git\n\n## Rebasing a branch\n\nRun `git rebase main`.\n\n## Empty\n\n"
    )
    examples, dropped = skill_examples(tmp_path)
    qa = {e.messages[0]["content"]: e.messages[1]["content"] for e in examples}
    assert qa["What is the git-workflow skill for?"] == "Branch, commit, rebase."
    assert qa["git-workflow: Rebasing a branch"] == "Run `git rebase main`."
    assert dropped["empty_section"] == 1
    assert {e.provenance["strategy"] for e in examples} == {"C"}
