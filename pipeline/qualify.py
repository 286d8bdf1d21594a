"""Six quality dimensions per conversation, a weighted score, and tiers A/B/C.

Every dimension is 0..1 with 1 the better end, so the weighted mean is a score:
- completion: the conversation ends on an assistant answer, not on a question, a tool call
  in flight or a failed tool result.
- depth: human/assistant exchanges, saturating at `depth_cap` (log scale: the fifth exchange
  adds less than the second).
- domain_relevance: how much of the text is software work (code, paths, commands, errors).
- tool_richness: distinct tools used, saturating at `tools_cap`, with a little credit for calls.
- reasoning: assistant turns that think or explain (thinking blocks, "because", steps).
- error_ratio: 1 minus the share of tool results that were errors.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

from pipeline.types import Conversation, Turn

DIMENSIONS = (
    "completion",
    "depth",
    "domain_relevance",
    "tool_richness",
    "reasoning",
    "error_ratio",
)
DOMAIN = re.compile(
    r"```|\b(def|class|import|return|function|const|git|pytest|docker|npm|pip|make|kubectl|"
    r"error|exception|traceback|test|build|deploy|commit|branch|merge|api|sql|json|yaml)\b"
    r"|[\w.-]+\.(py|ts|js|go|rs|md|toml|yaml|yml|json|sh|sql)\b|(^|\s)[./~]?[\w.-]+/[\w./-]+",
    re.I,
)
REASONING = re.compile(r"\b(because|so that|therefore|first|then|the reason|which means)\b", re.I)


@dataclass(frozen=True)
class QualifyConfig:
    weights: dict[str, float] = field(
        default_factory=lambda: {
            "completion": 0.25,
            "depth": 0.15,
            "domain_relevance": 0.2,
            "tool_richness": 0.1,
            "reasoning": 0.1,
            "error_ratio": 0.2,
        }
    )
    tier_a: float = 0.7  # score >= tier_a is tier A
    tier_b: float = 0.4  # tier_b <= score < tier_a is tier B; below is C
    depth_cap: int = 5  # exchanges at which depth reaches 1
    tools_cap: int = 4  # distinct tools at which tool richness reaches 1
    domain_hits_per_100_words: float = 6.0  # density at which relevance reaches 1


@dataclass(frozen=True)
class Score:
    conversation_id: str
    session_id: str
    component: str
    kind: str
    started: str
    completion: float
    depth: float
    domain_relevance: float
    tool_richness: float
    reasoning: float
    error_ratio: float
    score: float
    tier: str

    def to_json(self) -> dict:
        return asdict(self)


def _completion(turns: list[Turn]) -> float:
    talk = [t for t in turns if t.kind in ("human", "assistant", "tool_result")]
    if not talk or talk[-1].kind == "human":
        return 0.0
    last = talk[-1]
    if last.kind == "tool_result":
        return 0.2 if any(b.is_error for b in last.blocks) else 0.4
    if any(b.kind == "tool_use" for b in last.blocks) and not last.text:
        return 0.5  # ended mid-task, waiting for a tool
    return 1.0


def _exchanges(turns: list[Turn]) -> int:
    count, waiting = 0, False
    for t in turns:
        if t.kind == "human":
            waiting = True
        elif t.kind == "assistant" and waiting and t.text:
            count, waiting = count + 1, False
    return count


def score_conversation(conv: Conversation, cfg: QualifyConfig = QualifyConfig()) -> Score:
    turns = conv.turns
    assistant = [t for t in turns if t.kind == "assistant"]
    uses = [b for t in assistant for b in t.blocks if b.kind == "tool_use"]
    results = [b for t in turns for b in t.blocks if b.kind == "tool_result"]
    text = " ".join(b.text for t in turns for b in t.blocks if b.kind in ("text", "thinking"))
    words = max(1, len(text.split()))

    exchanges = _exchanges(turns) or (1 if conv.kind == "subagent" and assistant else 0)
    depth = min(1.0, math.log1p(exchanges) / math.log1p(cfg.depth_cap))
    density = len(DOMAIN.findall(text)) * 100 / words
    domain = min(1.0, density / cfg.domain_hits_per_100_words)
    distinct = len({b.tool_name for b in uses})
    tools = min(1.0, distinct / cfg.tools_cap + 0.02 * len(uses)) if uses else 0.0
    thoughtful = sum(
        1
        for t in assistant
        if any(b.kind == "thinking" for b in t.blocks) or REASONING.search(t.text)
    )
    reasoning = thoughtful / len(assistant) if assistant else 0.0
    errors = sum(1 for b in results if b.is_error)
    error_ratio = 1.0 - errors / len(results) if results else 1.0
    dims = {
        "completion": _completion(turns),
        "depth": depth,
        "domain_relevance": domain,
        "tool_richness": tools,
        "reasoning": reasoning,
        "error_ratio": error_ratio,
    }
    total = sum(cfg.weights.values()) or 1.0
    score = sum(dims[d] * cfg.weights.get(d, 0.0) for d in DIMENSIONS) / total
    tier = "A" if score >= cfg.tier_a else "B" if score >= cfg.tier_b else "C"
    rounded = {k: round(v, 4) for k, v in dims.items()}
    return Score(
        conv.id,
        conv.session_id,
        conv.component,
        conv.kind,
        conv.started,
        **rounded,
        score=round(score, 4),
        tier=tier,
    )


def score_all(convs: list[Conversation], cfg: QualifyConfig = QualifyConfig()) -> list[Score]:
    return [score_conversation(c, cfg) for c in convs]


def tier_counts(scores: list[Score]) -> dict[str, int]:
    return {tier: sum(1 for s in scores if s.tier == tier) for tier in "ABC"}
