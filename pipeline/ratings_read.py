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
        check(engine, mapping)
        conv, msg, rat = tables(mapping)
        with engine.connect() as db:
            for chunk in chunks(_window(db, conv, start, end, report)):
                ids = [cid for cid, _ in chunk]
                messages, ratings = _messages(db, msg, ids), _ratings(db, msg, rat, ids, report)
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


def _messages(db: sa.Connection, msg: sa.Table, ids: list[Any]) -> dict[str, list[sa.Row]]:
    rows: dict[str, list[sa.Row]] = defaultdict(list)
    query = (
        sa.select(msg)
        .where(msg.c.message_conversation.in_(ids))
        .order_by(msg.c.message_conversation, msg.c.message_position, msg.c.message_id)
    )
    for row in db.execute(query):
        rows[values.key(row.message_conversation) or ""].append(row)
    return rows


def _ratings(
    db: sa.Connection, msg: sa.Table, rat: sa.Table, ids: list[Any], report: RatingsReport
) -> dict[str, list[sa.Row]]:
    """Unexported ratings by message key, oldest first, so the last one is the latest."""
    rows: dict[str, list[sa.Row]] = defaultdict(list)
    query = (
        sa.select(rat)
        .join(msg, rat.c.rating_message == msg.c.message_id)
        .where(msg.c.message_conversation.in_(ids))
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
        message_id = values.ident(row.message_id)
        if message_id is None:
            report.skipped["bad_message_id"] += 1
            continue
        role = (values.text(row.message_role) or "").strip().lower()
        if role not in _ROLES:
            report.skipped["bad_role"] += 1
            continue
        content = values.text(row.message_content)
        if content is None and row.message_content is not None:
            report.skipped["undecodable_content"] += 1  # a BLOB that is not UTF-8 text
            continue
        if content is None or not content.strip():
            report.skipped["empty_content"] += 1
            continue
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


def _bound(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    when = values.instant(value)
    if when is None:
        raise RatingsError(f"{name}={value!r} is not an ISO date or time, e.g. 2026-11-01")
    return when
