"""What the Claude Code reader shares between its modules: settings, counts and graph nodes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pipeline.sessions_recover import encodable
from pipeline.types import Turn

MAX_PROBLEMS = 100  # files and folders named in a report; the counts go on past it


@dataclass
class ReadReport:
    files: int = 0
    bytes: int = 0
    records: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> count
    recovered: int = 0  # records rescued from damaged lines
    repaired: Counter[str] = field(default_factory=Counter)  # kept after a repair: reason -> count
    # secrets scrubbed from tool outputs before they were cut to head and tail: kind -> count
    scrubbed: Counter[str] = field(default_factory=Counter)
    merged_turns: int = 0  # assistant records merged into an earlier record of the same response
    sessions: int = 0
    conversations: int = 0
    subagent_conversations: int = 0
    compactions: int = 0
    rewinds: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)  # skipped files/folders, and why

    def __post_init__(self) -> None:
        self._noted: set[tuple[str, str]] = (
            set()
        )  # not a field: listing and reading meet a file twice

    def skip_path(self, reason: str, path: Path, detail: str = "") -> None:
        """Count a file or folder that is not read, once per path, and name it in `problems`."""
        key = (reason, str(path))
        if key in self._noted:
            return
        self._noted.add(key)
        self.skipped[reason] += 1
        if len(self.problems) < MAX_PROBLEMS:
            shown = encodable(str(path))  # undecodable bytes in a name as `\xff` escapes
            self.problems.append({"path": shown, "reason": reason, "detail": detail})

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["skipped"] = dict(sorted(self.skipped.items()))
        out["repaired"] = dict(sorted(self.repaired.items()))
        out["scrubbed"] = dict(sorted(self.scrubbed.items()))
        out["problems"] = list(self.problems)
        return out


@dataclass(frozen=True)
class ReaderConfig:
    keep_thinking: bool = True  # thinking kept as Block(kind="thinking"), signature dropped
    max_tool_output_chars: int = 20_000  # longer tool outputs keep their head and tail
    # Bytes. Parsing is linear, so this only bounds memory: one line is held whole. Real
    # lines reach several MB (large tool results written inline); longer ones are skipped
    # (counted as line_too_long). 0: no limit.
    max_line_bytes: int = 64 * 2**20
    # Nesting of a tool call's input, the one part of a record kept as an object (and
    # serialized again later, where deep nesting would exhaust the stack). Real inputs nest a
    # few levels; a line nested past the JSON scanner's own limit is skipped whole.
    max_depth: int = 100
    exclude_agent_prefixes: tuple[str, ...] = (
        "agent-acompact-",
        "agent-aprompt_suggestion-",
        "aside_question-",
    )

    def internal(self, name: str) -> bool:
        """Whether a log file name (or an inline agent's `agent-<id>`) is harness overhead."""
        return name.startswith(self.exclude_agent_prefixes)


@dataclass(frozen=True)
class LogFile:
    """One JSONL file and what its location says about the records inside."""

    path: Path
    project_dir: Path
    session: str | None  # the owning session when the location fixes it; else the records say
    agent: str | None = None  # agent id of a subagent log file
    tool_use_id: str | None = None  # the spawning call, from the agent's meta.json


@dataclass(slots=True, eq=False)
class Node:
    """A record with a uuid: a vertex of the session graph, with its turn where it has one."""

    uuid: str
    parent: str | None  # parentUuid, or logicalParentUuid across a compaction
    timestamp: str
    seq: int  # read order: breaks timestamp ties and keeps split records in file order
    session: str
    agent: str | None  # None: main chain; "": inline sidechain without an agentId
    turn: Turn | None  # None for structural records (system, progress, damaged user records)
    human: bool = False  # a typed prompt: siblings of these are rewinds
    merge_key: tuple[str, ...] | None = None
    compaction: bool = False
    damage: int = 0  # 0: intact; more: rescued from a damaged line, a key repaired, bytes replaced

    def completeness(self) -> tuple[bool, int]:
        """Of two copies of one uuid, the greater keeps its text."""
        return (self.turn is not None and bool(self.turn.blocks), -self.damage)
