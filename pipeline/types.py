"""The few records that flow through the data stages: turns, conversations, examples."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

BlockKind = Literal["text", "thinking", "tool_use", "tool_result"]
TurnKind = Literal["human", "assistant", "tool_result", "meta", "command", "compact_summary"]
ConversationKind = Literal["main", "subagent", "rejected_branch", "rated"]


@dataclass
class Block:
    """One content block of a turn; images are stripped before they get here."""

    kind: BlockKind
    text: str = ""  # text, thinking (signature dropped), or the tool result's text
    tool_name: str = ""
    tool_input: dict[str, Any] | None = None
    tool_use_id: str = ""
    is_error: bool = False


@dataclass
class Turn:
    """A user, assistant or system turn; split assistant records are merged into one."""

    uuid: str
    parent_uuid: str | None
    role: Literal["user", "assistant", "system"]
    kind: TurnKind
    blocks: list[Block]
    timestamp: str  # ISO 8601, as written by the source
    session_id: str
    message_id: str | None = None
    rating: int | None = None  # +1 / -1 from the ratings database, where rated

    @property
    def text(self) -> str:
        return "\n".join(b.text for b in self.blocks if b.kind == "text" and b.text)


@dataclass
class Conversation:
    """A linear path of turns: a main session, a subagent run, or an abandoned branch."""

    id: str
    source: Literal["claude_code", "ratings_db"]
    kind: ConversationKind
    session_id: str
    project: str
    turns: list[Turn]
    started: str  # ISO timestamp of the first turn: the partition key's source
    component: str = ""  # connected component of the session graph, for leak-free splits
    parent_tool_use_id: str | None = None  # the Task/Agent call that spawned a subagent
    compactions: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Conversation:
        turns = [Turn(**{**t, "blocks": [Block(**b) for b in t["blocks"]]}) for t in data["turns"]]
        return cls(**{**data, "turns": turns})


@dataclass
class ChatExample:
    """A training example in ChatML messages, with where it came from."""

    messages: list[dict[str, str]]
    provenance: dict[str, str] = field(default_factory=dict)  # source, session, component,
    # strategy, tier

    def to_json(self) -> dict[str, Any]:
        return {"messages": self.messages, "provenance": self.provenance}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChatExample:
        return cls(data["messages"], data.get("provenance") or {})
