"""Training examples in ChatML `{"messages": [...]}`, by strategy, each with its provenance.

- A: multi-turn windows of tier-A conversations, tool calls and results included.
- B: single-turn Q&A, a human question answered directly (no tools in between), tiers A and B.
- C: skill Q&A from `skills/*/SKILL.md`: each section answers a question about the skill.
- D: subagent task executions: the task prompt, the agent's work, its report.
- rated: rated conversations up to each positively rated answer (never a negative one).

mlx-lm with prompt masking learns only the last message, so every example ends on the
assistant answer it is meant to teach.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import yaml

from pipeline.qualify import Score
from pipeline.structured import scrub_structured
from pipeline.types import ChatExample, Conversation, Turn

Message = dict[str, str]
T = TypeVar("T")


@dataclass(frozen=True)
class CurateConfig:
    multi_turn_tiers: tuple[str, ...] = ("A",)
    single_turn_tiers: tuple[str, ...] = ("A", "B")
    subagent_tiers: tuple[str, ...] = ("A", "B")
    max_exchanges: int = 4  # human-led exchanges per multi-turn window
    include_thinking: bool = False  # thinking as <think> text; off: small models imitate it badly
    max_tool_chars: int = 2_000  # a tool result longer than this is cut in the example
    # Tool inputs and results are scrubbed here, before serializing nests them in JSON and the
    # cut splits a key in two; ids as in ValidateConfig.scrub_skip_rules.
    scrub_skip_rules: tuple[str, ...] = ()


def _scrubbed(value: T, cfg: CurateConfig) -> T:
    return scrub_structured(value, frozenset(cfg.scrub_skip_rules))[0]


def _tool_call(name: str, arguments: object) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"


def render_turn(turn: Turn, cfg: CurateConfig) -> Message | None:
    """A turn as one ChatML message; turns that are not conversation (meta, commands) give None."""
    if turn.kind in ("human",):
        return {"role": "user", "content": turn.text} if turn.text.strip() else None
    if turn.kind == "tool_result":
        parts = []
        for b in turn.blocks:
            if b.kind == "tool_result":
                body = _scrubbed(b.text, cfg)[: cfg.max_tool_chars]
                tag = "tool_error" if b.is_error else "tool_response"
                parts.append(f"<{tag}>\n{body}\n</{tag}>")
        return {"role": "user", "content": "\n".join(parts)} if parts else None
    if turn.kind == "assistant":
        parts = []
        for b in turn.blocks:
            if b.kind == "thinking" and cfg.include_thinking and b.text:
                parts.append(f"<think>\n{b.text}\n</think>")
            elif b.kind == "text" and b.text.strip():
                parts.append(b.text)
            elif b.kind == "tool_use":
                parts.append(_tool_call(b.tool_name, _scrubbed(b.tool_input or {}, cfg)))
        return {"role": "assistant", "content": "\n".join(parts)} if parts else None
    return None


def render(turns: list[Turn], cfg: CurateConfig) -> list[Message]:
    """ChatML messages with consecutive same-role messages joined."""
    out: list[Message] = []
    for turn in turns:
        msg = render_turn(turn, cfg)
        if msg is None:
            continue
        if out and out[-1]["role"] == msg["role"]:
            out[-1] = {"role": msg["role"], "content": out[-1]["content"] + "\n" + msg["content"]}
        else:
            out.append(msg)
    return out


def _ends_on_answer(messages: list[Message]) -> bool:
    return (
        len(messages) >= 2
        and messages[-1]["role"] == "assistant"
        and "<tool_call>" not in messages[-1]["content"]
    )


def _provenance(conv: Conversation, strategy: str, tier: str) -> dict[str, str]:
    return {
        "source": conv.source,
        "session": conv.session_id,
        "conversation": conv.id,
        "component": conv.component,
        "project": conv.project,
        "strategy": strategy,
        "tier": tier,
        "started": conv.started,
    }


def _windows(turns: list[Turn], size: int) -> list[list[Turn]]:
    """Windows of up to `size` exchanges, each starting at a human turn."""
    starts = [i for i, t in enumerate(turns) if t.kind == "human"]
    return [
        turns[starts[i] : starts[i + size] if i + size < len(starts) else len(turns)]
        for i in range(0, len(starts), size)
    ]


def multi_turn(conv: Conversation, tier: str, cfg: CurateConfig) -> list[ChatExample]:
    out = []
    for window in _windows(conv.turns, cfg.max_exchanges):
        messages = render(window, cfg)
        while messages and not _ends_on_answer(messages):
            messages.pop()  # trailing tool calls or questions teach nothing under masking
        if _ends_on_answer(messages):
            out.append(ChatExample(messages, _provenance(conv, "A", tier)))
    return out


def single_turn(conv: Conversation, tier: str, cfg: CurateConfig) -> list[ChatExample]:
    out = []
    for question, answer in zip(conv.turns, conv.turns[1:], strict=False):
        if question.kind != "human" or answer.kind != "assistant" or answer.rating == -1:
            continue
        if any(b.kind == "tool_use" for b in answer.blocks) or not answer.text.strip():
            continue
        messages = [
            {"role": "user", "content": question.text},
            {"role": "assistant", "content": answer.text},
        ]
        out.append(ChatExample(messages, _provenance(conv, "B", tier)))
    return out


def subagent_task(conv: Conversation, tier: str, cfg: CurateConfig) -> list[ChatExample]:
    messages = render(conv.turns, cfg)
    while messages and not _ends_on_answer(messages):
        messages.pop()
    return (
        [ChatExample(messages, _provenance(conv, "D", tier))] if _ends_on_answer(messages) else []
    )


def rated(conv: Conversation, tier: str, cfg: CurateConfig) -> list[ChatExample]:
    """One example per positively rated answer, its conversation so far as the context."""
    out = []
    for i, turn in enumerate(conv.turns):
        if turn.kind == "assistant" and turn.rating == 1:
            messages = render(conv.turns[: i + 1], cfg)
            if _ends_on_answer(messages):
                out.append(ChatExample(messages, _provenance(conv, "rated", tier)))
    return out


def curate(
    convs: list[Conversation], scores: dict[str, Score], cfg: CurateConfig = CurateConfig()
) -> tuple[list[ChatExample], Counter[str]]:
    """Examples from conversations; the counter says why a conversation gave none."""
    examples: list[ChatExample] = []
    dropped: Counter[str] = Counter()
    for conv in convs:
        tier = scores[conv.id].tier if conv.id in scores else "C"
        if conv.kind == "rated":
            made = rated(conv, tier, cfg)
        elif conv.kind == "subagent":
            made = subagent_task(conv, tier, cfg) if tier in cfg.subagent_tiers else []
        elif conv.kind == "main":
            made = multi_turn(conv, tier, cfg) if tier in cfg.multi_turn_tiers else []
            made += single_turn(conv, tier, cfg) if tier in cfg.single_turn_tiers else []
        else:
            dropped["rejected_branch"] += 1  # kept for preference pairs, never a target
            continue
        if not made:
            dropped[f"no_example_tier_{tier}" if tier == "C" else "no_answer_to_learn"] += 1
        examples += made
    return examples, dropped


SECTION = re.compile(r"^##+\s+(.+?)\s*$", re.M)


def skill_examples(skills_dir: Path) -> tuple[list[ChatExample], Counter[str]]:
    """Strategy C: each SKILL.md section answers a question about that skill."""
    examples: list[ChatExample] = []
    dropped: Counter[str] = Counter()
    for path in sorted(skills_dir.glob("*/SKILL.md")) if skills_dir.is_dir() else []:
        text = path.read_text(encoding="utf-8", errors="replace")
        meta, body = {}, text
        if text.startswith("---"):
            head, _, body = text[3:].partition("\n---")
            try:
                meta = yaml.safe_load(head) or {}
            except yaml.YAMLError:
                dropped["bad_front_matter"] += 1
        name = (
            str(meta.get("name") or path.parent.name)
            if isinstance(meta, dict)
            else path.parent.name
        )
        prov = {
            "source": "skill",
            "session": f"skill:{name}",
            "conversation": f"skill:{name}",
            "component": f"skill:{name}",
            "project": "skills",
            "strategy": "C",
            "tier": "A",
            "started": "",
        }
        if isinstance(meta, dict) and meta.get("description"):
            q = {"role": "user", "content": f"What is the {name} skill for?"}
            a = {"role": "assistant", "content": str(meta["description"])}
            examples.append(ChatExample([q, a], dict(prov)))
        heads = list(SECTION.finditer(body))
        for i, head in enumerate(heads):
            end = heads[i + 1].start() if i + 1 < len(heads) else len(body)
            answer = body[head.end() : end].strip()
            if not answer:
                dropped["empty_section"] += 1
                continue
            q = {"role": "user", "content": f"{name}: {head.group(1)}"}
            examples.append(ChatExample([q, {"role": "assistant", "content": answer}], dict(prov)))
    return examples, dropped
