"""The raw stage: copy the logs into the store, read the sessions of some days, keep them by day.

A day is the local date a session started on (the partition key). Only the sessions that
start on the requested days are parsed, so a nightly run reads one day, not the history.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from pipeline.paths import atomic_write_text
from pipeline.ratings import RatingsMapping, read_rated_conversations
from pipeline.sessions import ReaderConfig, ingest_copy, read_projects
from pipeline.types import Conversation

PEEK_LINES = 50  # the first timestamped record is near the top of every session file


@dataclass
class DayBatch:
    """Conversations by partition day, with the counts the asset reports."""

    days: dict[str, list[Conversation]] = field(default_factory=dict)
    report: dict = field(default_factory=dict)


def local_day(timestamp: str, tz: ZoneInfo) -> str | None:
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(tz).date().isoformat()


@dataclass
class IngestIndex:
    """What earlier runs ingested: each file's day, and every record uuid's session/component.

    It lets a nightly run skip files it has seen and recognise replayed (resumed) records
    without reading history again.
    """

    files: dict[str, dict] = field(default_factory=dict)  # rel path -> {size, mtime_ns, day}
    uuids: dict[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> IngestIndex:
        if not path.is_file():
            return cls()
        data = json.loads(path.read_text())
        return cls(data["files"], {u: tuple(v) for u, v in data["uuids"].items()})

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps({"files": self.files, "uuids": self.uuids}))

    def remember(self, conversations: Iterable[Conversation]) -> None:
        for conv in conversations:
            if conv.source == "claude_code" and conv.kind != "rejected_branch":
                for turn in conv.turns:
                    self.uuids.setdefault(turn.uuid, (conv.session_id, conv.component))


def _start_timestamp(path: Path, known: dict[str, tuple[str, str]]) -> str | None:
    """The first timestamp of a record this session wrote itself (a resume replays history)."""
    session = path.stem
    with path.open(encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh):
            if n >= PEEK_LINES and not known:
                break
            try:
                record = json.loads(line.replace("\x00", ""))
            except ValueError:
                continue
            if not isinstance(record, dict) or not isinstance(record.get("timestamp"), str):
                continue
            owner = known.get(record.get("uuid", ""))
            if owner is None or owner[0] == session:
                return record["timestamp"]
    return None


def session_days(
    projects_dir: Path, tz: ZoneInfo, index: IngestIndex | None = None
) -> dict[str, str]:
    """Session id -> the local day it started; files unchanged since the index are not read."""
    index = index or IngestIndex()
    days: dict[str, str] = {}
    for path in sorted(projects_dir.glob("*/*.jsonl")):
        if path.name.startswith("agent-"):
            continue  # second-generation subagent logs belong to their session
        rel, stat = str(path.relative_to(projects_dir)), path.stat()
        seen = index.files.get(rel)
        if seen and (seen["size"], seen["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns):
            day = seen["day"]
        else:
            stamp = _start_timestamp(path, index.uuids)
            day = local_day(stamp, tz) if stamp else None
            if day:
                index.files[rel] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "day": day}
        if day:
            days[path.stem] = min(day, days.get(path.stem, day))
    return days


def collect_days(
    projects_dir: Path,
    wanted: Iterable[str],
    tz: ZoneInfo,
    reader: ReaderConfig = ReaderConfig(),
    ratings_url: str | None = None,
    mapping: RatingsMapping = RatingsMapping(),
    index: IngestIndex | None = None,
) -> DayBatch:
    """Parse the sessions (and rated conversations) that started on the wanted days.

    With an index of earlier runs, only the chosen sessions' files are parsed and the index
    learns what this run read.
    """
    wanted = sorted(set(wanted))
    batch = DayBatch(days={d: [] for d in wanted})
    by_session = session_days(projects_dir, tz, index) if projects_dir.is_dir() else {}
    chosen = {sid for sid, day in by_session.items() if day in batch.days}
    report: dict = {"days": wanted, "session_files": len(by_session), "sessions_read": len(chosen)}
    unassigned: Counter[str] = Counter()
    if chosen:
        known = index.uuids if index is not None else None
        convs, read = read_projects(projects_dir, reader, only_sessions=chosen, known=known)
        report["claude_code"] = read.to_json()
        if index is not None:
            index.remember(convs)
        for conv in convs:
            day = by_session.get(conv.session_id) or local_day(conv.started, tz)
            if day in batch.days:
                batch.days[day].append(conv)
            else:
                unassigned["outside_requested_days"] += 1
    if ratings_url and wanted:
        since = wanted[0]
        until = (date.fromisoformat(wanted[-1]) + timedelta(days=1)).isoformat()
        rated, rep = read_rated_conversations(ratings_url, mapping, since=since, until=until)
        report["ratings_db"] = rep.to_json()
        for conv in rated:
            day = local_day(conv.started, tz)
            if day in batch.days:
                batch.days[day].append(conv)
            else:
                unassigned["outside_requested_days"] += 1
    report["unassigned"] = dict(unassigned)
    report["conversations_by_day"] = {d: len(c) for d, c in batch.days.items()}
    batch.report = report
    return batch


def write_day(folder: Path, conversations: list[Conversation], report: dict) -> Path:
    """One day's conversations as JSON lines, replaced atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(c.to_json(), ensure_ascii=False) + "\n" for c in conversations)
    atomic_write_text(folder / "conversations.jsonl", text)
    atomic_write_text(folder / "report.json", json.dumps(report, indent=2))
    return folder


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def copy_sources(projects_dir: Path, dest: Path) -> dict:
    """Copy the user's logs into the store first: Claude Code deletes them after 30 days."""
    if not projects_dir.is_dir():
        return {"copied": 0, "unchanged": 0, "bytes": 0, "missing": str(projects_dir)}
    return ingest_copy(projects_dir, dest)
