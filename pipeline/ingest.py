"""The raw stage: copy the logs into the store, read the sessions of some days, keep them by day.

A day is the local date a session started on (the partition key). Only the sessions that
start on the requested days are parsed, so a nightly run reads one day, not the history.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from pipeline.paths import atomic_write_text
from pipeline.ratings import RatingsMapping, read_rated_conversations
from pipeline.sessions import ReaderConfig, ReadReport, ingest_copy, read_projects, session_logs
from pipeline.sessions_files import lines, open_regular
from pipeline.sessions_recover import LENIENT, SCAN, SURROGATE, encodable, long_integer
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
    damaged: str | None = None  # why an unreadable index was set aside and rebuilt

    @classmethod
    def load(cls, path: Path) -> IngestIndex:
        if not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text())
            return cls(dict(data["files"]), {u: tuple(v) for u, v in data["uuids"].items()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # Only a cache of what was read: rebuilt by reading the logs again. The damaged file
            # is kept beside it for a look, never deleted.
            aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
            path.replace(aside)
            return cls(
                damaged=f"{path.name} was unreadable ({type(exc).__name__}); kept as "
                f"{aside.name}, every log is read again"
            )

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps({"files": self.files, "uuids": self.uuids}))

    def remember(self, conversations: Iterable[Conversation]) -> None:
        for conv in conversations:
            if conv.source == "claude_code" and conv.kind != "rejected_branch":
                for turn in conv.turns:
                    self.uuids.setdefault(turn.uuid, (conv.session_id, conv.component))


def _start_timestamp(
    path: Path, known: dict[str, tuple[str, str]], reader: ReaderConfig, report: ReadReport
) -> str | None:
    """The first timestamp of a record this session wrote itself (a resume replays history)."""
    session = encodable(path.stem)
    fh = open_regular(path, report.skip_path)
    if fh is None:
        return None
    with fh:
        try:
            for n, raw in enumerate(lines(fh, reader.max_line_bytes)):
                if n >= PEEK_LINES and not known:
                    break
                record = _first_value(raw)
                if not isinstance(record, dict) or not isinstance(record.get("timestamp"), str):
                    continue
                owner = known.get(record.get("uuid", ""))
                if owner is None or owner[0] == session:
                    return record["timestamp"]
        except OSError as exc:
            report.skip_path("unreadable_file", path, exc.strerror or str(exc))
    return None


def _first_value(raw: bytes | None) -> object:
    """The value a line starts with; None for one too long, too deep or not JSON. A peek: the
    reader proper recovers damaged lines and counts them."""
    if raw is None:
        return None
    line = raw.decode(errors="replace").replace("\x00", "").strip()
    try:
        return SCAN(line, 0)[0]
    except ValueError as exc:
        if not long_integer(exc):
            return None
    except (StopIteration, RecursionError):
        return None
    try:  # an integer past the digit limit: still the record whose timestamp is wanted
        return LENIENT(line, 0)[0]
    except (ValueError, StopIteration, RecursionError):
        return None


def session_days(
    projects_dir: Path,
    tz: ZoneInfo,
    index: IngestIndex | None = None,
    reader: ReaderConfig = ReaderConfig(),
    report: ReadReport | None = None,
) -> dict[str, str]:
    """Session id -> the local day it started; files unchanged since the index are not read.
    Files and folders that cannot be read are counted in `report` when one is given."""
    index = index or IngestIndex()
    report = report if report is not None else ReadReport()
    days: dict[str, str] = {}
    for entry in session_logs(projects_dir, report):
        path, stat = entry.path, entry.st
        if path.name.startswith("agent-"):
            continue  # second-generation subagent logs belong to their session
        rel = str(path.relative_to(projects_dir))
        seen = index.files.get(rel)
        if seen and (seen["size"], seen["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns):
            day = seen["day"]
        else:
            stamp = _start_timestamp(path, index.uuids, reader, report)
            day = local_day(stamp, tz) if stamp else None
            if day:
                index.files[rel] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "day": day}
        if day:
            sid = encodable(path.stem)  # as the reader names the session
            days[sid] = min(day, days.get(sid, day))
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
    # One report for the listing and the reading: a bad file is counted once, and files
    # and folders that cannot be read are reported even on a day with nothing to read.
    read = ReadReport()
    by_session = session_days(projects_dir, tz, index, reader, read)
    chosen = {sid for sid, day in by_session.items() if day in batch.days}
    report: dict = {"days": wanted, "session_files": len(by_session), "sessions_read": len(chosen)}
    unassigned: Counter[str] = Counter()
    if chosen:
        known = index.uuids if index is not None else None
        convs, read = read_projects(projects_dir, reader, chosen, known, read)
        if index is not None:
            index.remember(convs)
        for conv in convs:
            day = by_session.get(conv.session_id) or local_day(conv.started, tz)
            if day in batch.days:
                batch.days[day].append(conv)
            else:
                unassigned["outside_requested_days"] += 1
    if chosen or read.skipped:
        report["claude_code"] = read.to_json()
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
    try:
        atomic_write_text(folder / "conversations.jsonl", text)
    except UnicodeEncodeError:  # a lone surrogate the reader missed: never fail the night on it
        text, count = SURROGATE.subn("\ufffd", text)
        report["unencodable_replaced"] = count
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
