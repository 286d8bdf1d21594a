"""Claude Code JSONL to graph nodes: damaged-line recovery, record triage and turn building."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pipeline.sessions_model import LogFile, Node, ReaderConfig, ReadReport
from pipeline.types import Block, Turn, TurnKind

SPAWNERS = frozenset({"Task", "Agent"})
METADATA = frozenset(
    {
        *("summary", "file-history-snapshot", "queue-operation", "progress", "attachment"),
        *("ai-title", "custom-title", "last-prompt", "permission-mode", "mode", "agent-name"),
    }
)
RECORD_TYPES = METADATA | {"user", "assistant", "system"}
COMMAND_PREFIXES = (
    *("<command-name>", "<command-message>", "<command-args>", "<local-command-caveat>"),
    *("<local-command-stdout>", "<local-command-stderr>", "<bash-input>", "<bash-stdout>"),
    "<bash-stderr>",
)
INTERRUPTED = "[Request interrupted by user"  # written by the harness, not typed
PERSISTED = "<persisted-output>"
_DECODER = json.JSONDecoder()
_SCAN = _DECODER.scan_once  # the C scanner: skips json.loads' Python layers on every line


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def truncate(text: str, limit: int) -> str:
    """Keep the head and the tail: errors tend to show at the end of long outputs."""
    if len(text) <= limit:
        return text
    head = limit // 2
    tail = text[len(text) - (limit - head) :]
    return f"{text[:head]}\n[... truncated {len(text) - limit} chars ...]\n{tail}"


def _record_like(value: Any) -> bool:
    # Objects nested in a record (message, content blocks, usage) must not pass for records.
    if not isinstance(value, dict):
        return False
    kind = value.get("type")
    return (
        "uuid" in value or "sessionId" in value or (isinstance(kind, str) and kind in RECORD_TYPES)
    )


def recover(line: str) -> tuple[list[Any], bool]:
    """The values on a line the fast path refused, and whether the line was damaged: NULs are
    stripped, then each `{"` is tried in turn (records fused by `}{` or after a cut)."""
    text = line.strip()
    damaged = "\x00" in text
    if damaged:
        text = text.replace("\x00", "").strip()
    if not text:
        return [], damaged
    try:
        return [json.loads(text)], damaged
    except ValueError:
        pass
    found = []
    pos = text.find('{"')
    while pos != -1:
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except ValueError:
            pos = text.find('{"', pos + 1)
            continue
        if _record_like(value):
            found.append(value)
        pos = text.find('{"', end)
    return found, True


class Parser:
    """Reads log files into nodes, collecting the links from subagents to their Task calls."""

    def __init__(self, config: ReaderConfig, report: ReadReport) -> None:
        self.config, self.report = config, report
        self.seq = 0
        self.agent_calls: dict[tuple[str, str], str] = {}  # (session, agent id) -> tool_use id
        self.prompt_calls: dict[tuple[str, str], str] = {}  # (session, prompt) -> tool_use id

    def read(self, log: LogFile) -> list[Node]:
        report, skipped = self.report, self.report.skipped
        report.files += 1
        nodes: list[Node] = []
        seen: set[int] = set()
        last_ts = ""
        records = recovered = 0
        scan = _SCAN
        with log.path.open(encoding="utf-8", errors="replace", newline="\n") as fh:
            report.bytes += os.fstat(fh.fileno()).st_size
            for line in fh:
                if line == "\n":
                    continue
                key = hash(line)  # repeated base64 lines bloat real logs to gigabytes
                if key in seen:
                    skipped["duplicate_line"] += 1
                    continue
                seen.add(key)
                damaged = False
                try:
                    value, end = scan(line, 0)
                    n = len(line)
                    if end != n and (end != n - 1 or line[end] != "\n"):
                        raise ValueError("extra data")
                    values: list[Any] = [value]
                except (ValueError, StopIteration):
                    values, damaged = recover(line)
                    if not values:
                        skipped["unparseable_line"] += damaged  # blank lines are no damage
                        continue
                for value in values:
                    if value.__class__ is not dict:
                        skipped["bare_string" if isinstance(value, str) else "not_an_object"] += 1
                        continue
                    records += 1
                    recovered += damaged
                    ts = value.get("timestamp")
                    if ts and isinstance(ts, str):
                        last_ts = ts
                    node = self.record(value, log, last_ts)
                    if node is not None:
                        nodes.append(node)
        report.records += records
        report.recovered += recovered
        if log.agent and log.session and log.tool_use_id:
            self.agent_calls[(log.session, log.agent)] = log.tool_use_id  # meta.json wins
        return nodes

    def record(self, rec: dict[str, Any], log: LogFile, ts: str) -> Node | None:
        skipped = self.report.skipped
        session = log.session or _str(rec.get("sessionId")) or log.path.stem
        agent = log.agent
        if agent is None and rec.get("isSidechain"):
            agent = _str(rec.get("agentId"))
            if agent and self.config.internal(f"agent-{agent}"):
                skipped["internal_agent"] += 1
                return None
        kind = rec.get("type")
        uuid = rec.get("uuid")
        parent = rec.get("parentUuid") or rec.get("logicalParentUuid")
        if parent.__class__ is not str:
            parent = None
        self.seq += 1
        linked = uuid.__class__ is str and uuid != ""
        if not linked:
            uuid = f"{log.path.name}:{self.seq}"  # old or hand-made records: kept as orphans
        turn = None
        if kind == "user" or kind == "assistant":
            message = rec.get("message")
            if message.__class__ is dict:
                turn = self.turn(rec, kind, message, uuid, parent, ts, session, log)
            else:
                skipped["missing_message"] += 1
        elif kind == "system":
            if rec.get("subtype") == "compact_boundary":
                return Node(uuid, parent, ts, self.seq, session, agent, None, compaction=True)
            skipped["system"] += 1
        elif isinstance(kind, str) and kind in METADATA:
            skipped["metadata"] += 1
        else:
            skipped["unknown_type"] += 1
        if turn is None:
            # A record that says nothing may still link others: keep it if it has a uuid.
            return Node(uuid, parent, ts, self.seq, session, agent, None) if linked else None
        node = Node(uuid, parent, ts, self.seq, session, agent, turn, turn.kind == "human")
        if turn.message_id:
            request = _str(rec.get("requestId"))
            # Gateways drop requestId or reuse message ids: then the timestamp must match too.
            node.merge_key = (session, agent or "", turn.message_id, request, "" if request else ts)
        return node

    def turn(
        self,
        rec: dict[str, Any],
        role: str,
        message: dict[str, Any],
        uuid: str,
        parent: str | None,
        ts: str,
        session: str,
        log: LogFile,
    ) -> Turn | None:
        if role == "assistant" and rec.get("isApiErrorMessage"):
            self.report.skipped["api_error"] += 1  # harness-written text, not the model's
            return None
        blocks = self.blocks(message.get("content"), rec, log, session)
        if role == "assistant":
            for block in blocks:
                if block.tool_name in SPAWNERS and block.tool_input:
                    prompt = block.tool_input.get("prompt")
                    if isinstance(prompt, str):
                        self.prompt_calls[(session, prompt.strip())] = block.tool_use_id
            message_id = _str(message.get("id")) or None
            return Turn(uuid, parent, "assistant", "assistant", blocks, ts, session, message_id)
        result = rec.get("toolUseResult")
        if isinstance(result, dict) and isinstance(result.get("agentId"), str):
            calls = [b.tool_use_id for b in blocks if b.kind == "tool_result"]
            if calls:
                self.agent_calls.setdefault((session, result["agentId"]), calls[0])
        return Turn(uuid, parent, "user", _user_kind(rec, blocks), blocks, ts, session)

    def blocks(self, content: Any, rec: dict[str, Any], log: LogFile, session: str) -> list[Block]:
        if content.__class__ is str:
            return [Block("text", content)]
        blocks: list[Block] = []
        for item in content if content.__class__ is list else ():
            kind = item.get("type") if item.__class__ is dict else None
            if kind == "text":
                blocks.append(Block("text", _str(item.get("text"))))
            elif kind == "tool_use":
                args = item.get("input")
                name, call = _str(item.get("name")), _str(item.get("id"))
                blocks.append(
                    Block("tool_use", "", name, args if args.__class__ is dict else {}, call)
                )
            elif kind == "tool_result":
                call = _str(item.get("tool_use_id"))
                text = self.tool_output(item.get("content"), call, rec, log, session)
                blocks.append(
                    Block("tool_result", text, "", None, call, bool(item.get("is_error")))
                )
            elif kind == "thinking":
                if self.config.keep_thinking:
                    blocks.append(Block("thinking", _str(item.get("thinking"))))
            elif kind in ("image", "document"):
                self.report.skipped["image_stripped"] += 1
            else:
                self.report.skipped["unknown_block"] += 1
        return blocks

    def tool_output(
        self, content: Any, call: str, rec: dict[str, Any], log: LogFile, session: str
    ) -> str:
        if isinstance(content, str):
            text = content
        elif isinstance(content, list):
            parts = []
            for item in content:
                if isinstance(item, str):
                    parts.append(item)
                elif isinstance(item, dict) and item.get("type") == "text":
                    parts.append(_str(item.get("text")))
                elif isinstance(item, dict) and item.get("type") in ("image", "document"):
                    self.report.skipped["image_stripped"] += 1
            text = "\n".join(parts)
        else:
            text = ""
        if PERSISTED in text and call:
            full = _persisted(log, call, (_str(rec.get("sessionId")), session, log.path.stem))
            text = text if full is None else full
        limit = self.config.max_tool_output_chars
        return truncate(text, limit) if len(text) > limit else text


def _persisted(log: LogFile, call: str, sessions: tuple[str, ...]) -> str | None:
    """The full output Claude Code moved to `<sessionId>/tool-results/<tool_use_id>.txt`."""
    if "/" in call or "\\" in call or call.startswith("."):
        return None  # ids come from the log: never let one point outside the project
    for session in dict.fromkeys(s for s in sessions if s and "/" not in s):
        path: Path = log.project_dir / session / "tool-results" / f"{call}.txt"
        if path.is_file():
            return path.read_text(encoding="utf-8", errors="replace")
    return None


def _user_kind(rec: dict[str, Any], blocks: list[Block]) -> TurnKind:
    if rec.get("isCompactSummary"):
        return "compact_summary"
    if rec.get("isMeta"):
        return "meta"
    head = None
    for block in blocks:
        if block.kind == "tool_result":
            return "tool_result"
        if head is None and block.kind == "text":
            head = block.text
    head = (head or "")[:64].lstrip()
    if head.startswith(COMMAND_PREFIXES):
        return "command"
    if head.startswith(INTERRUPTED):
        return "meta"
    return "human"
