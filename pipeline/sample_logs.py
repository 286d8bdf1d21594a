"""The Claude Code half of the sample workspace: session logs as Claude Code writes them.

Sessions are built record by record on a parentUuid chain, then serialised; a few get damaged
lines. The words come from sample_content and sample_quirks.
"""

from __future__ import annotations

import base64
import json
import random
import string
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline import sample_content as content
from pipeline import sample_quirks as quirks

BASE_DATE = datetime(2026, 11, 1, tzinfo=UTC)
SPAN_DAYS = 10
SESSIONS = 50  # main session files, the resumed one included
COMMAND_FIX_SESSIONS = 25
MODEL = "claude-sonnet-4-5-20250929"
PERSIST_OVER = 20_000  # characters; Claude Code moves bigger tool outputs to tool-results/
CLAUDE_HOME = "/home/dev/.claude"
BRANCHES = ("main", "main", "main", "fix/empty-input", "refactor/helpers")
DAMAGE = ("truncated", "fused", "nul", "bare", "misspelled")
# One session each; "clear" and "model" open with a local slash command.
ROLES = ("compact", "subagent", "subagent", "persist", "env", "contact", "resume")
ROLES += ("clear", "clear", "model")


def stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _dump(record: Any) -> str:
    # Compact and unescaped, like JSON.stringify in Claude Code.
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


class Ids:
    """Every id drawn from the seeded generator, in the shapes Claude Code uses."""

    ALNUM = string.ascii_letters + string.digits

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def token(self, prefix: str, n: int) -> str:
        return prefix + "".join(self.rng.choices(self.ALNUM, k=n))

    def hex(self, n: int) -> str:
        return f"{self.rng.getrandbits(4 * n):0{n}x}"

    def signature(self) -> str:
        return base64.b64encode(self.rng.randbytes(self.rng.randint(120, 300))).decode()


class _Session:
    """One log file being written: a parentUuid chain, a clock, and files kept beside it."""

    def __init__(
        self,
        ids: Ids,
        project: content.Project,
        session_id: str,
        start: datetime,
        agent_id: str | None = None,
    ) -> None:
        self.ids, self.rng, self.project = ids, ids.rng, project
        self.session_id, self.agent_id, self.clock = session_id, agent_id, start
        self.version = "2.0.30" if start < BASE_DATE + timedelta(days=5) else "2.0.31"
        self.branch = self.rng.choice(BRANCHES)
        self.role: str | None = None  # one of ROLES
        self.damage: str | None = None  # one of DAMAGE, applied when serialised
        self.records: list[dict[str, Any]] = []
        self.files: dict[str, str] = {}  # relative to the project directory
        self.parent: str | None = None
        self.titles: list[str] = []
        self.snapshots = False

    def add(self, kind: str, gap_ms: tuple[int, int], body: dict[str, Any]) -> dict[str, Any]:
        self.clock += timedelta(milliseconds=self.rng.randint(*gap_ms))
        record: dict[str, Any] = {
            "parentUuid": self.parent,
            "isSidechain": self.agent_id is not None,
            "userType": "external",
            "cwd": self.project.cwd,
            "sessionId": self.session_id,
            "version": self.version,
            "gitBranch": self.branch,
        }
        if self.agent_id:
            record["agentId"] = self.agent_id
        record |= {"type": kind, **body, "uuid": self.ids.uuid(), "timestamp": stamp(self.clock)}
        self.records.append(record)
        self.parent = record["uuid"]
        return record

    def user(self, text: Any, gap_ms: tuple[int, int] = (300, 3000), **extra: Any) -> dict:
        return self.add("user", gap_ms, {"message": {"role": "user", "content": text}, **extra})

    def exchange(self, ex: content.Exchange, gap_ms: tuple[int, int] = (20_000, 300_000)) -> None:
        prompt = self.user(ex.prompt, gap_ms)
        if self.snapshots:  # file backups, saved just before each prompt
            self.records.insert(-1, _snapshot(prompt))
        self.titles.append(ex.title)
        for reply in ex.replies:
            self.reply(reply)

    def reply(self, reply: content.Reply) -> None:
        blocks: list[dict[str, Any]] = []
        if reply.thinking:
            sig = self.ids.signature()
            blocks.append({"type": "thinking", "thinking": reply.thinking, "signature": sig})
        if reply.text:
            blocks.append({"type": "text", "text": reply.text})
        for call in reply.calls:
            tool_id = self.ids.token("toolu_01", 22)
            use = {"type": "tool_use", "id": tool_id, "name": call.name, "input": call.input}
            blocks.append(use)
        message_id, request_id = self.ids.token("msg_01", 22), self.ids.token("req_011C", 21)
        cache = self.rng.randint(0, 4000)
        usage = {
            "input_tokens": self.rng.randint(3, 12),
            "cache_creation_input_tokens": cache,
            "cache_read_input_tokens": self.rng.randint(12_000, 90_000),
            "cache_creation": {"ephemeral_5m_input_tokens": cache, "ephemeral_1h_input_tokens": 0},
            "output_tokens": self.rng.randint(20, 900),
            "service_tier": "standard",
        }
        uses = []
        # One record per content block: the split-turn shape readers must merge again.
        for i, block in enumerate(blocks):
            last = i == len(blocks) - 1
            message = {
                "model": MODEL,
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "content": [block],
                "stop_reason": ("tool_use" if reply.calls else "end_turn") if last else None,
                "stop_sequence": None,
                "usage": usage,
            }
            gap = (1500, 12_000) if i == 0 else (40, 900)
            record = self.add("assistant", gap, {"message": message, "requestId": request_id})
            if block["type"] == "tool_use":
                uses.append(record)
        for call, use in zip(reply.calls, uses, strict=True):
            self.parent = use["uuid"]  # each result hangs off its own tool_use record
            self.result(call, use["message"]["content"][0]["id"])

    def result(self, call: content.ToolCall, tool_id: str) -> None:
        inline: Any = call.output
        result = call.output if call.result is None else call.result
        if call.subagent is not None:
            inline = [{"type": "text", "text": call.output}]
            result = self.spawn(call, tool_id)
        elif len(call.output) > PERSIST_OVER:
            rel = f"{self.session_id}/tool-results/{tool_id}.txt"
            self.files[rel] = call.output
            where = f"{CLAUDE_HOME}/projects/{_dir_name(self.project.cwd)}/{rel}"
            inline = (
                f"<persisted-output>\nOutput too large ({len(call.output) / 1024:.1f}KB)."
                f" Full output saved to: {where}\n\nPreview (first 2KB):\n"
                f"{call.output[:2048]}\n...\n</persisted-output>"
            )
            result = {"stdout": inline, "stderr": "", "interrupted": False, "isImage": False}
        block = {"tool_use_id": tool_id, "type": "tool_result", "content": inline}
        block["is_error"] = call.is_error
        self.user([block], (80, 4000), toolUseResult=result)

    def sidechain(self, agent_id: str, ex: content.Exchange) -> str:
        """Run `ex` as an agent of this session; return its log's path without suffix."""
        agent = _Session(self.ids, self.project, self.session_id, self.clock, agent_id)
        agent.branch, agent.version = self.branch, self.version
        agent.exchange(ex, gap_ms=(300, 2000))
        base = f"{self.session_id}/subagents/agent-{agent_id}"
        self.files[f"{base}.jsonl"] = _jsonl(agent.records)
        self.clock = agent.clock
        return base

    def spawn(self, call: content.ToolCall, tool_id: str) -> dict[str, Any]:
        """Write the spawned agent's log and meta file; return the Task's toolUseResult."""
        assert call.subagent is not None
        agent_id, start = "a" + self.ids.hex(7), self.clock
        base = self.sidechain(agent_id, call.subagent)
        meta = {"toolUseId": tool_id, "agentType": call.input["subagent_type"]}
        self.files[f"{base}.meta.json"] = _dump(meta | {"description": call.input["description"]})
        took = self.clock - start
        return {
            "status": "completed",
            "prompt": call.input["prompt"],
            "agentId": agent_id,
            "content": [{"type": "text", "text": call.output}],
            "totalDurationMs": took // timedelta(milliseconds=1),
            "totalTokens": self.rng.randint(8_000, 40_000),
            "totalToolUseCount": sum(len(r.calls) for r in call.subagent.replies),
        }

    def compact(self) -> None:
        """Auto-compaction: the helper agent's log, a boundary, then the summary."""
        summary = content.compact_summary(self.project, self.titles)
        reply = content.Reply(f"<summary>\n{summary}\n</summary>")
        self.sidechain(
            f"acompact-{self.ids.hex(6)}", content.Exchange(content.COMPACT_PROMPT, (reply,), "")
        )
        metadata = {"trigger": "auto", "preTokens": self.rng.randint(150_000, 168_000)}
        body = {"subtype": "compact_boundary", "content": "Conversation compacted"}
        body |= {"isMeta": False, "level": "info", "logicalParentUuid": self.parent}
        boundary = self.add("system", (500, 2000), body | {"compactMetadata": metadata})
        boundary["parentUuid"] = None  # a new chain; logicalParentUuid bridges the gap
        self.user(summary, (50, 400), isVisibleInTranscriptOnly=True, isCompactSummary=True)

    def local_command(self, name: str) -> None:
        stdout = content.LOCAL_COMMANDS[name]
        self.user(content.CAVEAT, (0, 500), isMeta=True)
        self.user(content.command_wrapper(name), (10, 100))
        self.user(f"<local-command-stdout>{stdout}</local-command-stdout>", (10, 100))


def _dir_name(cwd: str) -> str:
    return cwd.replace("/", "-").replace(".", "-")


def _snapshot(prompt: dict[str, Any]) -> dict[str, Any]:
    snapshot = {"messageId": prompt["uuid"], "trackedFileBackups": {}}
    return {
        "type": "file-history-snapshot",
        "messageId": prompt["uuid"],
        "snapshot": snapshot | {"timestamp": prompt["timestamp"]},
        "isSnapshotUpdate": False,
    }


def _jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(_dump(record) + "\n" for record in records)


def _damaged(records: list[dict[str, Any]], kind: str, rng: random.Random) -> str:
    """Serialise `records` with one damaged line of the given kind, as seen in real logs."""
    lines = [_dump(record) for record in records]
    k = rng.randrange(len(lines) - 1)
    if kind == "truncated":  # the writer died mid-record: half a line, no newline
        return "\n".join(lines[:-1] + [lines[-1][: len(lines[-1]) // 2]])
    if kind == "fused":
        lines[k : k + 2] = [lines[k] + lines[k + 1]]
    elif kind == "nul":
        lines[k] = "\x00" * rng.randint(16, 64) + lines[k]
    elif kind == "bare":
        lines.insert(k + 1, _dump("[Request interrupted by user]"))
    else:  # a hand edit misspelled the key
        k = rng.choice([i for i, line in enumerate(lines) if '"message":' in line])
        lines[k] = lines[k].replace('"message":', '"mesage":', 1)
    return "\n".join(lines) + "\n"


def claude_logs(rng: random.Random, ids: Ids) -> tuple[dict[str, str], int]:
    """All files under claude/projects, keyed by path relative to it; and the damaged count."""
    regular = SESSIONS - 1
    order = rng.sample(range(regular), regular)  # distinct sessions for the special roles
    roles = dict(zip(order, ROLES, strict=False))
    fixers = set(rng.sample(range(regular), COMMAND_FIX_SESSIONS))
    projects = [content.PROJECTS[i % len(content.PROJECTS)] for i in range(regular)]
    rng.shuffle(projects)
    specials = {
        "subagent": quirks.subagent_exchange,
        "persist": quirks.full_suite_exchange,
        "env": quirks.env_exchange,
        "contact": quirks.contact_exchange,
    }
    sessions: list[_Session] = []
    for i, project in enumerate(projects):
        start = BASE_DATE + timedelta(days=i * SPAN_DAYS // regular, hours=rng.randint(8, 19))
        start += timedelta(seconds=rng.randint(0, 3599))
        session = _Session(ids, project, ids.uuid(), start)
        session.role = role = roles.get(i)
        coding = rng.randint(0, 2) if i in fixers else rng.randint(1, 3)
        exchanges = [content.coding_exchange(project, rng) for _ in range(coding)]
        if i in fixers:
            exchanges += [content.command_fix_exchange(rng) for _ in range(rng.randint(1, 3))]
        rng.shuffle(exchanges)
        if role in specials:
            exchanges.insert(rng.randint(0, len(exchanges)), specials[role](project, rng))
        if role == "compact":
            exchanges += [content.coding_exchange(project, rng) for _ in range(4 - len(exchanges))]
        if role in content.LOCAL_COMMANDS:
            session.local_command(role)
        session.snapshots = rng.random() < 0.4
        for k, ex in enumerate(exchanges):
            if role == "compact" and k == 3:
                session.compact()
            session.exchange(ex)
        sessions.append(session)
        if role == "resume":
            sessions.append(_resume(session, ids))
    # Damage only plain sessions long enough to keep some intact records.
    plain = [s for s in sessions if s.role is None and len(s.records) >= 6]
    for session, kind in zip(rng.sample(plain, len(DAMAGE)), DAMAGE, strict=True):
        session.damage = kind
    _add_metadata(sessions, rng)
    files: dict[str, str] = {}
    for session in sessions:
        project_dir = _dir_name(session.project.cwd)
        kind = session.damage
        text = _damaged(session.records, kind, rng) if kind else _jsonl(session.records)
        files[f"{project_dir}/{session.session_id}.jsonl"] = text
        files |= {f"{project_dir}/{rel}": extra for rel, extra in session.files.items()}
    return files, len(DAMAGE)


def _resume(origin: _Session, ids: Ids) -> _Session:
    """`claude --resume`: a new file replays the old records under a new sessionId."""
    later = origin.clock + timedelta(hours=ids.rng.randint(1, 6))
    session = _Session(ids, origin.project, ids.uuid(), later)
    session.branch, session.version, session.role = origin.branch, origin.version, "resumed"
    replayed = [r for r in origin.records if r["type"] in ("user", "assistant", "system")]
    session.records = [record | {"sessionId": session.session_id} for record in replayed]
    session.parent = origin.parent
    for _ in range(ids.rng.randint(1, 2)):
        session.exchange(content.coding_exchange(origin.project, ids.rng))
    return session


def _add_metadata(sessions: list[_Session], rng: random.Random) -> None:
    """Non-conversation records: summaries of earlier sessions, and AI-generated titles."""
    latest: dict[str, _Session] = {}
    pairs = []
    for session in sessions:
        earlier = latest.get(session.project.cwd)
        if earlier is not None and earlier.damage is None:
            pairs.append((session, earlier))
        latest[session.project.cwd] = session
    for session, earlier in rng.sample(pairs, 4):
        summary = {"type": "summary", "summary": earlier.titles[-1], "leafUuid": earlier.parent}
        session.records.insert(0, summary)
    for session in rng.sample(sessions, 8):
        title = {"type": "ai-title", "aiTitle": session.titles[0], "sessionId": session.session_id}
        session.records.insert(min(3, len(session.records) - 1), title)
