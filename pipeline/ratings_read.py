"""Read rated conversations from the chat UI's ratings database.

Queries are SQLAlchemy Core over Table objects built from the mapping, so names are quoted by
the dialect and values are always bound; it runs on SQLite and PostgreSQL alike. Values are
judged in Python (pipeline.ratings_values), whatever type the database stored them as.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from pipeline import ratings_values as values
from pipeline.ratings_db import check, chunks, database
from pipeline.ratings_mapping import RatingsError, RatingsMapping, tables
from pipeline.types import Block, Conversation, Turn

_ROLES = {"user": "human", "assistant": "assistant", "system": "meta"}


@dataclass
class RatingsReport:
    """What one read found; `rating_ids` are exactly the ratings a release should mark."""

    conversations: int = 0  # considered: in the since/until window, or with no usable date
    used: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # conversations, messages or ratings
    ratings: int = 0  # rated turns in the used conversations: positive + negative
    positive: int = 0
    negative: int = 0
    # Integers or text (UUIDs), as the database stores them; also superseded ratings of a turn.
    rating_ids: list[int | str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "skipped": dict(sorted(self.skipped.items()))}


def read_rated_conversations(
    url: str,
    mapping: RatingsMapping = RatingsMapping(),
    min_messages: int = 4,
    since: str | None = None,
    until: str | None = None,
) -> tuple[list[Conversation], RatingsReport]:
    """Conversations created in [since, until) with enough messages and an unexported rating."""
    start, end = _bound("since", since), _bound("until", until)
    report = RatingsReport()
    conversations: list[Conversation] = []
    with database(url) as engine:
        how = _how(engine.dialect.name, check(engine, mapping), mapping)
        conv, msg, rat = tables(mapping)
        with engine.connect() as db:
            for chunk in chunks(_window(db, conv, start, end, report)):
                ids = [cid for cid, _ in chunk]
                messages = _messages(db, msg, ids, how)
                ratings = _ratings(db, msg, rat, ids, how, report)
                for cid, created in chunk:
                    rows = messages.get(values.key(cid), [])
                    found = _conversation(cid, created, rows, ratings, min_messages, report)
                    conversations += [found] if found else []
    report.used = len(conversations)
    report.rating_ids.sort(key=values.id_order)
    return conversations, report


def _window(
    db: sa.Connection,
    conv: sa.Table,
    start: datetime | None,
    end: datetime | None,
    report: RatingsReport,
) -> list[tuple[Any, Any]]:
    """(id, created_at) of the conversations in [start, end), oldest first."""
    window = []
    query = sa.select(conv.c.conversation_id, conv.c.conversation_created)
    for n, (cid, created) in enumerate(db.execute(query)):
        when = values.instant(created)
        if when is None:  # counted in every window, so a bad date is never silently lost
            report.conversations += 1
            report.skipped["bad_created_at"] += 1
        elif (start is None or when >= start) and (end is None or when < end):
            report.conversations += 1
            if values.key(cid) is None:
                report.skipped["bad_conversation_id"] += 1
            else:
                window.append((when, values.key(cid), n, cid, created))
    return [(cid, created) for *_, cid, created in sorted(window)]


def _in_conversations(msg: sa.Table, ids: list[Any], how: str) -> sa.ColumnElement:
    """Messages of these conversations, however each table stores the id (1 beside '1', a
    UUID's text beside its 16 bytes): SQLite compares an untyped column by storage type, and
    PostgreSQL refuses integer = text, so there unlike columns are compared as text."""
    column = msg.c.message_conversation
    if how == "values":
        # Each value bound with its own type: one list type would turn text into bytes.
        return column.in_([sa.literal(v) for cid in ids for v in values.lookup_values(cid)])
    if how == "same":
        return column.in_(ids)
    keys = {values.key(cid) for cid in ids} - {None}
    keys |= {"\\x" + bytes(c).hex() for c in ids if isinstance(c, (bytes, memoryview))}
    return sa.cast(column, sa.Text).in_(sorted(keys))  # type: ignore[arg-type]  # None removed


def _how(dialect: str, columns: dict[str, dict[str, Any]], mapping: RatingsMapping) -> str:
    if dialect == "sqlite":
        return "values"
    ours = columns[mapping.conversations][mapping.conversation_id]
    theirs = columns[mapping.messages][mapping.message_conversation]
    return "same" if type(ours) is type(theirs) else "text"  # same type: the index serves


def _messages(
    db: sa.Connection, msg: sa.Table, ids: list[Any], how: str
) -> dict[str, list[sa.Row]]:
    """Messages by conversation key, in position order: numeric positions by value (a TEXT
    column sorts '10' before '2'), then by message id the same way."""
    rows: dict[str, list[sa.Row]] = defaultdict(list)
    for row in db.execute(sa.select(msg).where(_in_conversations(msg, ids, how))):
        rows[values.key(row.message_conversation) or ""].append(row)
    for found in rows.values():
        found.sort(key=lambda r: (values.order(r.message_position), values.order(r.message_id)))
    return rows


def _ratings(
    db: sa.Connection,
    msg: sa.Table,
    rat: sa.Table,
    ids: list[Any],
    how: str,
    report: RatingsReport,
) -> dict[str, list[sa.Row]]:
    """Unexported ratings by message key, oldest first, so the last one is the latest."""
    rows: dict[str, list[sa.Row]] = defaultdict(list)
    query = (
        sa.select(rat)
        .join(msg, rat.c.rating_message == msg.c.message_id)
        .where(_in_conversations(msg, ids, how))
        .order_by(rat.c.rating_created, rat.c.rating_id)
    )
    for row in db.execute(query):
        done = values.exported(row.rating_exported)
        if done is None:  # never taken as exported: that would drop the rating for good
            report.skipped["bad_exported"] += 1
        elif done:
            continue
        elif values.ident(row.rating_id) is None:
            report.skipped["bad_rating_id"] += 1  # could never be marked exported
        else:
            rows[values.key(row.rating_message) or ""].append(row)
    return rows


def _conversation(
    cid: Any,
    created: Any,
    messages: list[sa.Row],
    ratings: dict[str, list[sa.Row]],
    min_messages: int,
    report: RatingsReport,
) -> Conversation | None:
    """One conversation's turns with ratings attached, or None with the reason counted."""
    key = f"db:{values.ident(cid)}"
    turns: list[Turn] = []
    used: list[int | str] = []
    for row in messages:
        role = (values.text(row.message_role) or "").strip().lower()
        dropped = _dropped(row, role)
        if dropped:
            report.skipped[dropped] += 1
            if role == "system":  # no prompt or answer lost: the turns around it still pair
                continue
            # A turn after the gap would follow the wrong one (an answer under the prompt
            # before the lost question): the conversation ends at the gap.
            report.skipped["cut_at_dropped_message"] += 1
            break
        message_id = values.ident(row.message_id)
        content = values.text(row.message_content) or ""
        rating = None
        for found in ratings.get(str(message_id), ()):
            value = values.rating(found.rating_value)
            if value is None:
                report.skipped["bad_rating"] += 1
            elif role != "assistant":
                report.skipped["rating_not_on_assistant"] += 1
            else:
                rating = value  # ordered oldest first: the latest wins
                used.append(values.ident(found.rating_id))  # type: ignore[arg-type]  # checked
        turns.append(
            Turn(
                uuid=f"db:{message_id}",
                parent_uuid=turns[-1].uuid if turns else None,
                role=role,  # type: ignore[arg-type]  # checked against _ROLES above
                kind=_ROLES[role],  # type: ignore[arg-type]
                blocks=[Block("text", text=content)],
                timestamp=values.iso(row.message_created),
                session_id=key,
                message_id=str(message_id),
                rating=rating,
            )
        )
    if len(turns) < min_messages:
        report.skipped["too_few_messages"] += 1
        return None
    rated = [t.rating for t in turns if t.rating is not None]
    if not rated:
        report.skipped["no_unexported_rating"] += 1
        return None
    report.ratings += len(rated)
    report.positive += rated.count(1)
    report.negative += rated.count(-1)
    report.rating_ids.extend(used)
    return Conversation(
        id=key,
        source="ratings_db",
        kind="rated",
        session_id=key,
        project="ratings",
        turns=turns,
        started=values.iso(created),
        component=key,
    )


def _dropped(row: sa.Row, role: str) -> str:
    """Why a message cannot be a turn, or "" when it can."""
    if values.ident(row.message_id) is None:
        return "bad_message_id"
    if role not in _ROLES:
        return "bad_role"
    content = values.text(row.message_content)
    if content is None and row.message_content is not None:
        return "undecodable_content"  # a BLOB that is not UTF-8 text
    if content is None or not content.strip():
        return "empty_content"
    return ""


def _bound(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    when = values.instant(value)
    if when is None:
        raise RatingsError(f"{name}={value!r} is not an ISO date or time, e.g. 2026-11-01")
    return when
