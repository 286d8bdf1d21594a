"""What Claude is asked to add to the data, and how its answers become examples.

- augment-distill: a tier-B single-turn answer, rewritten into a better one.
- augment-preference: chosen/rejected pairs, the Claude-improved answer over the original and
  the branch the user kept after a rewind over the abandoned one (the latter costs nothing).
- augment-skill-qa and augment-scenario: per skill document, a configured number of questions
  about it and of realistic requests that need it, each with its answer.

Only scrubbed text is put into a request. Every example keeps the component of what it came
from, so the leak-free split puts it beside its source, and carries its share of the cost.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.claude import Answer, Ask
from pipeline.scrub import scrub_text
from pipeline.types import ChatExample, Conversation, Turn

Run = Callable[[Sequence[Ask]], list[Answer]]

DISTILL_SYSTEM = """You improve training data for a small coding assistant.
You get a developer's question and the answer an assistant gave. Write the answer the
assistant should have given: correct, direct, complete, with code where code helps, no
filler, no mention of the original answer. Reply with the improved answer only.
Placeholders such as <SECRET:kind>, <EMAIL> and <PHONE> stand for redacted values: keep them."""

SKILL_SYSTEM = """You write training data for a small coding assistant from a skill document.
Stay within what the document says; never invent commands, options or facts it lacks.
Reply with a JSON array only, no prose and no code fence around it."""

QA_PROMPT = """Skill "{name}":

{doc}

Return a JSON array of exactly {n} objects with keys "question" and "answer": questions a
developer would ask about this skill, each answered from the document."""

SCENARIO_PROMPT = """Skill "{name}":

{doc}

Return a JSON array of exactly {n} objects with keys "question" and "answer": "question" is
a realistic request a developer makes mid-task that this skill solves, in their own words;
"answer" is the ideal reply, applying the skill step by step."""


@dataclass(frozen=True)
class AugmentConfig:
    distill_tiers: tuple[str, ...] = ("B",)
    qa_per_skill: int = 3  # questions about each skill document
    scenarios_per_skill: int = 2  # realistic requests per skill document
    max_tokens: int = 1024  # output cap per answer; also the budget's worst case
    model: str = ""  # recorded in provenance


@dataclass
class AugmentResult:
    examples: list[ChatExample] = field(default_factory=list)
    preferences: list[dict[str, Any]] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)

    def by_strategy(self) -> dict[str, int]:
        counts = Counter(e.provenance["strategy"] for e in self.examples)
        counts.update(p["provenance"]["strategy"] for p in self.preferences)
        return dict(counts)


def _clean(text: str) -> str:
    return scrub_text(text)[0]


def _derived(source: dict[str, Any], strategy: str, cfg: AugmentConfig, cost: float) -> dict:
    return {
        **source,
        "strategy": strategy,
        "source": "claude",
        "model": cfg.model,
        "derived_from": source.get("conversation", ""),
        "derived_strategy": source.get("strategy", ""),
        "cost_usd": round(cost, 8),
    }


def distill_candidates(examples: Sequence[ChatExample], cfg: AugmentConfig) -> list[ChatExample]:
    """Single-turn Q&A (strategy B) of the configured tiers, scrubbed."""
    out = []
    for ex in examples:
        prov = ex.provenance
        if prov.get("strategy") == "B" and prov.get("tier") in cfg.distill_tiers:
            messages = [{**m, "content": _clean(m["content"])} for m in ex.messages]
            out.append(ChatExample(messages, dict(prov)))
    return out


def distill_ask(example: ChatExample, cfg: AugmentConfig) -> Ask:
    question, answer = example.messages[-2]["content"], example.messages[-1]["content"]
    prompt = f"Question:\n{question}\n\nOriginal answer:\n{answer}"
    return Ask(DISTILL_SYSTEM, prompt, cfg.max_tokens)


def _pair(prompt: str, chosen: str, rejected: str, provenance: dict) -> dict[str, Any]:
    # The field names mlx-lm-lora's DPO/ORPO loaders and TRL's standard preference format read.
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "provenance": provenance}


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def distill(
    candidates: Sequence[ChatExample], answers: Sequence[Answer], cfg: AugmentConfig
) -> AugmentResult:
    out = AugmentResult()
    for ex, answer in zip(candidates, answers, strict=True):
        improved = _clean(answer.text.strip())
        if answer.status not in ("ok", "cached"):
            out.dropped[f"augment-distill:{answer.status}"] += 1
            continue
        if not improved:
            out.dropped["augment-distill:empty_answer"] += 1
            continue
        question, original = ex.messages[-2]["content"], ex.messages[-1]["content"]
        messages = [
            {"role": "user", "content": question},
            {"role": "assistant", "content": improved},
        ]
        # The pair reuses the same answer, so the example carries its whole cost.
        out.examples.append(
            ChatExample(messages, _derived(ex.provenance, "augment-distill", cfg, answer.cost_usd))
        )
        if _same(improved, original):
            out.dropped["augment-preference:chosen_equals_rejected"] += 1
            continue
        prov = {**_derived(ex.provenance, "augment-preference", cfg, 0.0), "pair": "improved"}
        out.preferences.append(_pair(question, improved, original, prov))
    return out


def _exchange(turns: Sequence[Turn], start: int) -> tuple[str, str]:
    """The human prompt at or before `start` and the last text answer before the next prompt."""
    prompt = next((t.text for t in reversed(turns[: start + 1]) if t.kind == "human"), "")
    answer = ""
    for i, turn in enumerate(turns[start:]):
        if turn.kind == "human" and i > 0:
            break
        if turn.kind == "assistant" and turn.text.strip():
            answer = turn.text
    return prompt, answer


def rewind_pairs(conversations: Sequence[Conversation]) -> tuple[list[dict], Counter[str]]:
    """Kept branch over abandoned branch, at the turn where the user rewound."""
    mains = {c.id: c for c in conversations if c.kind != "rejected_branch"}
    pairs: list[dict] = []
    dropped: Counter[str] = Counter()
    for branch in (c for c in conversations if c.kind == "rejected_branch"):
        main = mains.get(branch.id.rsplit("/rejected-", 1)[0])
        if main is None:
            dropped["rewind:no_main_conversation"] += 1
            continue
        in_main = {t.uuid for t in main.turns}
        fork = next((i for i, t in enumerate(branch.turns) if t.uuid not in in_main), None)
        in_branch = {t.uuid for t in branch.turns}
        parent = branch.turns[fork].parent_uuid if fork is not None else None
        kept = next(
            (
                i
                for i, t in enumerate(main.turns)
                if fork is not None and t.parent_uuid == parent and t.uuid not in in_branch
            ),
            None,
        )
        if fork is None or kept is None:
            dropped["rewind:no_fork_found"] += 1
            continue
        prompt, chosen = _exchange(main.turns, kept)
        _, rejected = _exchange(branch.turns, fork)
        if not (prompt.strip() and chosen.strip() and rejected.strip()) or _same(chosen, rejected):
            dropped["rewind:no_distinct_answers"] += 1
            continue
        prov = {
            "source": "claude_code",
            "session": main.session_id,
            "conversation": main.id,
            "component": main.component,
            "project": main.project,
            "strategy": "augment-preference",
            "pair": "rewind",
            "rejected_conversation": branch.id,
            "cost_usd": 0.0,
        }
        pairs.append(_pair(_clean(prompt), _clean(chosen), _clean(rejected), prov))
    return pairs, dropped


@dataclass(frozen=True)
class SkillDoc:
    name: str
    text: str  # scrubbed


def skill_docs(skills_dir: Path) -> list[SkillDoc]:
    docs = []
    for path in sorted(skills_dir.glob("*/SKILL.md")) if skills_dir.is_dir() else []:
        text = path.read_text(encoding="utf-8", errors="replace")
        name = path.parent.name
        if text.startswith("---"):
            try:
                meta = yaml.safe_load(text[3:].partition("\n---")[0]) or {}
            except yaml.YAMLError:
                meta = {}
            if isinstance(meta, dict) and meta.get("name"):
                name = str(meta["name"])
        docs.append(SkillDoc(name, _clean(text)))
    return docs


def skill_asks(docs: Sequence[SkillDoc], cfg: AugmentConfig) -> list[tuple[str, SkillDoc, Ask]]:
    out = []
    for doc in docs:
        for strategy, template, n in (
            ("augment-skill-qa", QA_PROMPT, cfg.qa_per_skill),
            ("augment-scenario", SCENARIO_PROMPT, cfg.scenarios_per_skill),
        ):
            if n > 0:
                prompt = template.format(name=doc.name, doc=doc.text, n=n)
                out.append((strategy, doc, Ask(SKILL_SYSTEM, prompt, cfg.max_tokens)))
    return out


FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


def parse_pairs(text: str, limit: int) -> list[tuple[str, str]] | None:
    """Question/answer pairs from a JSON array answer; None when it is not one."""
    try:
        rows = json.loads(FENCE.sub("", text.strip()))
    except ValueError:
        return None
    if not isinstance(rows, list):
        return None
    pairs = [
        (str(r["question"]).strip(), str(r["answer"]).strip())
        for r in rows
        if isinstance(r, dict) and r.get("question") and r.get("answer")
    ]
    return pairs[:limit]


def from_skills(
    asked: Sequence[tuple[str, SkillDoc, Ask]], answers: Sequence[Answer], cfg: AugmentConfig
) -> AugmentResult:
    out = AugmentResult()
    for (strategy, doc, _), answer in zip(asked, answers, strict=True):
        if answer.status not in ("ok", "cached"):
            out.dropped[f"{strategy}:{answer.status}"] += 1
            continue
        limit = cfg.qa_per_skill if strategy == "augment-skill-qa" else cfg.scenarios_per_skill
        pairs = parse_pairs(answer.text, limit)
        if not pairs:
            out.dropped[f"{strategy}:unparseable_answer"] += 1
            continue
        source = {
            "session": f"skill:{doc.name}",
            "conversation": f"skill:{doc.name}",
            "component": f"skill:{doc.name}",  # beside the skill's own Q&A in the split
            "project": "skills",
            "tier": "A",
            "started": "",
        }
        share = answer.cost_usd / len(pairs)
        for question, reply in pairs:
            messages = [
                {"role": "user", "content": question},
                {"role": "assistant", "content": reply},
            ]
            out.examples.append(ChatExample(messages, _derived(source, strategy, cfg, share)))
    return out


def augment(
    examples: Sequence[ChatExample],
    conversations: Sequence[Conversation],
    skills_dir: Path,
    run: Run,
    cfg: AugmentConfig = AugmentConfig(),
) -> AugmentResult:
    """Everything Claude adds, asked for in one `run` call (one Message Batch)."""
    candidates = distill_candidates(examples, cfg)
    asked = skill_asks(skill_docs(skills_dir), cfg)
    answers = run([distill_ask(ex, cfg) for ex in candidates] + [a for _, _, a in asked])
    result = distill(candidates, answers[: len(candidates)], cfg)
    skills = from_skills(asked, answers[len(candidates) :], cfg)
    pairs, why = rewind_pairs(conversations)
    result.examples += skills.examples
    seen = {(p["prompt"], p["chosen"], p["rejected"]) for p in result.preferences}
    for pair in pairs:
        if (pair["prompt"], pair["chosen"], pair["rejected"]) in seen:
            result.dropped["augment-preference:exact_duplicate"] += 1
        else:
            seen.add((pair["prompt"], pair["chosen"], pair["rejected"]))
            result.preferences.append(pair)
    result.dropped += skills.dropped
    result.dropped += why
    return result


def write_augmented(result: AugmentResult, usage: dict[str, Any], out: Path) -> None:
    """examples.jsonl (ChatML with provenance), preferences.jsonl, usage.json."""
    out.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(e.to_json(), ensure_ascii=False) for e in result.examples]
    (out / "examples.jsonl").write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    lines = [json.dumps(p, ensure_ascii=False) for p in result.preferences]
    (out / "preferences.jsonl").write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    report = {**usage, "by_strategy": result.by_strategy(), "dropped": dict(result.dropped)}
    (out / "usage.json").write_text(json.dumps(report, indent=2) + "\n")
