"""Claude Code JSONL to graph nodes: record triage and turn building (damaged lines are
rescued in sessions_recover)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.scrub import scrub_text
from pipeline.scrub_patterns import PLACEHOLDER_RE
from pipeline.sessions_files import lines, open_regular, read_text
from pipeline.sessions_model import LogFile, Node, ReaderConfig, ReadReport
from pipeline.sessions_recover import (
    LENIENT,
    LONE_SURROGATE,
    LONG_INTEGER,
    RECORD_TYPES,
    SCAN,
    SURROGATE_ESCAPE,
    encodable,
    fix_surrogates,
    long_integer,
    near_key,
    recover,
    too_deep,
)
from pipeline.types import Block, Turn, TurnKind

__all__ = ["RECORD_TYPES", "Parser", "recover", "truncate"]

SPAWNERS = frozenset({"Task", "Agent"})
METADATA = RECORD_TYPES - {"user", "assistant", "system"}
COMMAND_PREFIXES = (
    *("<command-name>", "<command-message>", "<command-args>", "<local-command-caveat>"),
    *("<local-command-stdout>", "<local-command-stderr>", "<bash-input>", "<bash-stdout>"),
    "<bash-stderr>",
)
INTERRUPTED = "[Request interrupted by user"  # written by the harness, not typed
PERSISTED = "<persisted-output>"
_PLACEHOLDER_MAX = 64  # longer than any placeholder: the window searched around a cut
# Dropped text scrubbed beside each cut: longer than any one secret (a PGP key block, a
# service-account JSON), so one straddling a cut is seen whole.
_MARGIN = 65_536


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def _is_type(value: Any) -> bool:
    return isinstance(value, str) and value in RECORD_TYPES


def _is_content(value: Any) -> bool:
    return isinstance(value, str | list)


def truncate(text: str, limit: int, found: Counter[str] | None = None) -> str:
    """Keep the head and the tail: errors tend to show at the end of long outputs. What is
    kept is scrubbed first, with a margin of the dropped text beside each cut (findings added
    to `found`): a secret cut in two (a key's BEGIN line dropped) no longer looks like one, so
    the scrub stage would miss the rest. Beyond the margins, dropped text is never scanned."""
    if len(text) <= limit:
        return text
    head_n, tail_n = limit // 2, limit - limit // 2
    unread = len(text) - limit - 2 * _MARGIN  # dropped, far from both cuts
    if unread > 0:
        first, counts = scrub_text(text[: head_n + _MARGIN])
        last, more = scrub_text(text[len(text) - tail_n - _MARGIN :])
        counts += more
    else:
        first, counts = scrub_text(text)
        last = first
    if found is not None:
        found.update(counts)
    if unread <= 0 and len(first) <= limit:
        return first
    head = _outside_placeholder(first, min(head_n, len(first)))
    start = _outside_placeholder(last, max(0, len(last) - tail_n))
    if unread > 0:
        dropped = len(first) - head + unread + start
    else:  # one text: both cuts may have moved into one placeholder
        start = max(start, head)
        dropped = start - head
    return f"{first[:head]}\n[... truncated {dropped} chars ...]\n{last[start:]}"


def _outside_placeholder(text: str, cut: int) -> int:
    """`cut`, moved to the start of a placeholder (`<SECRET:kind>`) it would split."""
    window = text[max(0, cut - _PLACEHOLDER_MAX) : cut + _PLACEHOLDER_MAX]
    offset = max(0, cut - _PLACEHOLDER_MAX)
    for match in PLACEHOLDER_RE.finditer(window):
        if offset + match.start() < cut < offset + match.end():
            return offset + match.start()
    return cut


class _TooDeep(Exception):
    """A tool input nested past ReaderConfig.max_depth: its record's turn is skipped."""


class Parser:
    """Reads log files into nodes, collecting the links from subagents to their Task calls."""

    def __init__(self, config: ReaderConfig, report: ReadReport) -> None:
        self.config, self.report = config, report
        self.seq = 0
        self.agent_calls: dict[tuple[str, str], str] = {}  # (session, agent id) -> tool_use id
        self.prompt_calls: dict[tuple[str, str], str] = {}  # (session, prompt) -> tool_use id
        self.nodes: list[Node] = []  # of the file being read
        self.last_ts = ""  # the latest timestamp seen in it: records without one inherit it

    def read(self, log: LogFile) -> list[Node]:
        report = self.report
        fh = open_regular(log.path, report.skip_path)
        if fh is None:
            return []
        report.files += 1
        self.nodes, self.last_ts = [], ""
        with fh:
            report.bytes += os.fstat(fh.fileno()).st_size
            try:
                self._lines(fh, log)
            except OSError as exc:  # a read error part way: keep what came before it
                report.skip_path("unreadable_file", log.path, exc.strerror or str(exc))
        if log.agent and log.session and log.tool_use_id:
            self.agent_calls[(log.session, log.agent)] = log.tool_use_id  # meta.json wins
        return self.nodes

    def _lines(self, fh: Any, log: LogFile) -> None:
        report, skipped, repaired = self.report, self.report.skipped, self.report.repaired
        seen: set[int] = set()
        scan = SCAN
        for raw in lines(fh, self.config.max_line_bytes):
            if raw is None:
                skipped["line_too_long"] += 1
                continue
            if raw == b"\n":
                continue
            key = hash(raw)  # repeated base64 lines bloat real logs to gigabytes
            if key in seen:
                skipped["duplicate_line"] += 1
                continue
            seen.add(key)
            try:
                line, damage = raw.decode(), 0
            except UnicodeDecodeError:
                line, damage = raw.decode(errors="replace"), 1
                repaired["invalid_utf8"] += 1
            damaged = False
            try:
                value, end = scan(line, 0)
                n = len(line)
                if end != n and (end != n - 1 or line[end] != "\n"):
                    raise ValueError("extra data")
                values: list[Any] = [value]
            except (ValueError, StopIteration) as exc:
                if long_integer(exc):  # valid JSON: keep the record, the digits as a string
                    values, damaged, reason = recover(line, LENIENT)
                    if values:
                        repaired[LONG_INTEGER] += 1
                        damage += 1
                else:
                    values, damaged, reason = recover(line)
                if not values:
                    if reason:  # blank lines are no damage
                        skipped[reason] += 1
                    continue
            except RecursionError:  # nested past what the C scanner allows
                skipped["too_deep"] += 1
                continue
            surrogates = SURROGATE_ESCAPE.search(raw) is not None
            for value in values:
                if value.__class__ is not dict:
                    skipped["bare_string" if isinstance(value, str) else "not_an_object"] += 1
                    continue
                if surrogates and fix_surrogates(value):  # unwritable as UTF-8 otherwise
                    repaired[LONE_SURROGATE] += 1
                report.records += 1
                report.recovered += damaged
                ts = value.get("timestamp")
                if ts and isinstance(ts, str):
                    self.last_ts = ts
                node = self.record(value, log, self.last_ts, damage + damaged)
                if node is not None:
                    self.nodes.append(node)

    def record(self, rec: dict[str, Any], log: LogFile, ts: str, damage: int = 0) -> Node | None:
        skipped = self.report.skipped
        session = log.session or _str(rec.get("sessionId")) or encodable(log.path.stem)
        agent = log.agent
        if agent is None and rec.get("isSidechain"):
            agent = _str(rec.get("agentId"))
            if agent and self.config.internal(f"agent-{agent}"):
                skipped["internal_agent"] += 1
                return None
        kind = rec.get("type")
        if kind is None and "type" not in rec and (kind := self._repair(rec, "type", _is_type)):
            damage += 1
        uuid = rec.get("uuid")
        parent = rec.get("parentUuid") or rec.get("logicalParentUuid")
        if parent.__class__ is not str:
            parent = None
        self.seq += 1
        conversational = kind == "user" or kind == "assistant"
        if uuid is None and conversational and (uuid := self._repair(rec, "uuid", _str)):
            damage += 1
        linked = uuid.__class__ is str and uuid != ""
        if not linked:
            # old or hand-made records: kept as orphans
            uuid = f"{encodable(log.path.name)}:{self.seq}"
        turn = None
        if conversational:
            message = rec.get("message")
            if message is None and (message := self._repair(rec, "message", _is_dict)):
                damage += 1
            if message.__class__ is dict:
                if "content" not in message and (
                    body := self._repair(message, "content", _is_content)
                ):
                    message, damage = {**message, "content": body}, damage + 1
                try:
                    turn = self.turn(rec, kind, message, uuid, parent, ts, session, log)
                except _TooDeep:
                    skipped["too_deep"] += 1
            else:
                skipped["missing_message"] += 1
        elif kind == "system":
            if rec.get("subtype") == "compact_boundary":
                return Node(
                    uuid, parent, ts, self.seq, session, agent, None, compaction=True, damage=damage
                )
            skipped["system"] += 1
        elif isinstance(kind, str) and kind in METADATA:
            skipped["metadata"] += 1
        else:
            skipped["unknown_type"] += 1
        if turn is None:
            # A record that says nothing may still link others: keep it if it has a uuid.
            if not linked:
                return None
            return Node(uuid, parent, ts, self.seq, session, agent, None, damage=damage)
        human = turn.kind == "human"
        node = Node(uuid, parent, ts, self.seq, session, agent, turn, human, damage=damage)
        if turn.message_id:
            request = _str(rec.get("requestId"))
            # Gateways drop requestId or reuse message ids: then the timestamp must match too.
            node.merge_key = (session, agent or "", turn.message_id, request, "" if request else ts)
        return node

    def _repair(self, obj: dict[str, Any], key: str, fits: Callable[[Any], Any]) -> Any:
        """The value of a misspelled `key`, counted as repaired; None when there is none."""
        value = near_key(obj, key, fits)
        if value is not None:
            self.report.repaired["misspelled_key"] += 1
        return value

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
                if args.__class__ is not dict:
                    args = {}
                elif too_deep(args, self.config.max_depth):
                    raise _TooDeep  # kept as an object, it would exhaust the stack downstream
                name, call = _str(item.get("name")), _str(item.get("id"))
                blocks.append(Block("tool_use", "", name, args, call))
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
            sessions = (_str(rec.get("sessionId")), session, log.path.stem)
            full = self.persisted(log, call, sessions)
            text = text if full is None else full
        limit = self.config.max_tool_output_chars
        return truncate(text, limit, self.report.scrubbed) if len(text) > limit else text

    def persisted(self, log: LogFile, call: str, sessions: tuple[str, ...]) -> str | None:
        """The full output Claude Code moved to `<sessionId>/tool-results/<tool_use_id>.txt`;
        None (the inline preview stays) when it is absent or cannot be read."""
        if "/" in call or "\\" in call or call.startswith("."):
            return None  # ids come from the log: never let one point outside the project
        for session in dict.fromkeys(s for s in sessions if s and _plain_name(s)):
            path: Path = log.project_dir / session / "tool-results" / f"{call}.txt"
            if os.path.lexists(path):
                return read_text(path, self.report.skip_path, self.config.max_line_bytes)
        return None


def _plain_name(name: str) -> bool:
    return "/" not in name and "\\" not in name and not name.startswith(".")


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
