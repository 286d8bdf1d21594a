"""Read rated conversations from the chat UI's ratings database, and mark ratings exported.

Every table and column name comes from a `RatingsMapping`, because real databases name things
their own way. Queries are SQLAlchemy Core over Table objects built from the mapping, so names
are quoted by the dialect and values are always bound; it runs on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from pipeline.types import Block, Conversation, Turn

URL_FORM = (
    "sqlite:////absolute/path/feedback.sqlite or "
    "postgresql+psycopg://user:password@host:5432/dbname"
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ROLES = {"user": "human", "assistant": "assistant", "system": "meta"}
# Bound parameters per IN (...): far below SQLite's and PostgreSQL's limits on one statement.
_CHUNK = 500


# Each table field of the mapping with the column fields the reader uses from it.
_LAYOUT: dict[str, tuple[str, ...]] = {
    "conversations": ("conversation_id", "conversation_created"),
    "messages": (
        "message_id",
        "message_conversation",
        "message_position",
        "message_role",
        "message_content",
        "message_created",
    ),
    "ratings": ("rating_id", "rating_message", "rating_value", "rating_created", "rating_exported"),
}


class RatingsDatabaseError(RuntimeError):
    """The ratings database cannot be opened or updated; the message says what to change."""


class RatingsSchemaError(RatingsDatabaseError):
    """The database lacks a table or column the mapping names; the message names the field."""


@dataclass(frozen=True)
class RatingsMapping:
    """Where the reader finds each piece; override a field to match your database's names."""

    conversations: str = "conversations"
    conversation_id: str = "id"
    conversation_title: str = "title"  # not read: Conversation carries no title
    conversation_created: str = "created_at"
    messages: str = "messages"
    message_id: str = "id"
    message_conversation: str = "conversation_id"
    message_position: str = "position"
    message_role: str = "role"
    message_content: str = "content"
    message_created: str = "created_at"
    ratings: str = "ratings"
    rating_id: str = "id"
    rating_message: str = "message_id"
    rating_value: str = "rating"
    rating_created: str = "rated_at"
    rating_exported: str = "exported"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, str) or not _IDENTIFIER.match(value):
                raise ValueError(
                    f"RatingsMapping.{f.name}={value!r} is not a plain SQL name "
                    "(letters, digits and _, not starting with a digit)"
                )
        for table, columns in _LAYOUT.items():
            names = [getattr(self, c) for c in columns]
            if len(set(names)) < len(names):
                raise ValueError(f"RatingsMapping maps two fields of {table!r} to one column")


@dataclass
class RatingsReport:
    """What one read found; `rating_ids` are exactly the ratings a release should mark."""

    conversations: int = 0  # considered: in the since/until window, or with no usable date
    used: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # conversations, messages or ratings
    ratings: int = 0  # rated turns in the used conversations: positive + negative
    positive: int = 0
    negative: int = 0
    rating_ids: list[int] = field(default_factory=list)  # also superseded ratings of a turn

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
    with _engine(url) as engine:
        _check(engine, mapping)
        conv, msg, rat = _tables(mapping)
        with engine.connect() as db:
            for chunk in _chunks(_window(db, conv, start, end, report)):
                ids = [cid for cid, _ in chunk]
                messages, ratings = _messages(db, msg, ids), _ratings(db, msg, rat, ids)
                for cid, created in chunk:
                    found = _conversation(
                        cid, created, messages[cid], ratings, min_messages, report
                    )
                    conversations += [found] if found else []
    report.used = len(conversations)
    report.rating_ids.sort()
    return conversations, report


def mark_exported(
    url: str, rating_ids: Sequence[int], mapping: RatingsMapping = RatingsMapping()
) -> int:
    """Set exported on exactly these ratings in one transaction; any failure changes nothing."""
    ids = sorted({int(i) for i in rating_ids})
    if not ids:
        return 0
    with _engine(url) as engine:
        kind = _check(engine, mapping)[mapping.ratings][mapping.rating_exported]
        rat = _tables(mapping)[2]
        # A boolean column (PostgreSQL) refuses 1, an integer one refuses true.
        done = True if isinstance(kind, sa.Boolean) else 1
        updated = 0
        with engine.begin() as db:
            for chunk in _chunks(ids):
                result = db.execute(
                    sa.update(rat)
                    .where(rat.c.rating_id.in_(chunk))
                    .values({rat.c.rating_exported: done})
                )
                updated += result.rowcount
            if updated != len(ids):
                # Raising inside begin() rolls back the chunks already updated.
                raise RatingsDatabaseError(
                    f"only {updated} of {len(ids)} ratings exist in {_safe(engine)}; "
                    "nothing was marked (was the database changed since the read?)"
                )
    return updated


def check_schema(url: str, mapping: RatingsMapping = RatingsMapping()) -> None:
    """Raise RatingsSchemaError naming each missing table or column and the field to set."""
    with _engine(url) as engine:
        _check(engine, mapping)


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    try:
        parsed = sa.make_url(url)
    except ArgumentError:
        raise RatingsDatabaseError(
            f"{url!r} is not a SQLAlchemy database URL; write it as {URL_FORM}"
        ) from None
    path = parsed.database
    # SQLite would silently create an empty database at a mistyped path.
    on_disk = path not in (None, "", ":memory:") and not parsed.query.get("uri")
    if parsed.get_backend_name() == "sqlite" and on_disk and not Path(path).is_file():
        raise RatingsDatabaseError(
            f"no SQLite database at {path}; check the path in {url!r} ({URL_FORM})"
        )
    try:
        engine = sa.create_engine(parsed)
    except (NoSuchModuleError, ImportError) as exc:
        raise RatingsDatabaseError(
            f"cannot open {parsed.render_as_string(hide_password=True)}: {exc}. "
            f"Install the driver (for PostgreSQL: pip install 'psycopg[binary]') and write the "
            f"URL as {URL_FORM}"
        ) from exc
    try:
        yield engine
    finally:
        engine.dispose()


def _check(engine: Engine, mapping: RatingsMapping) -> dict[str, dict[str, Any]]:
    """Each mapped table's column types, or RatingsSchemaError listing everything missing."""
    try:
        inspector = sa.inspect(engine)
        tables = inspector.get_table_names()
    except OperationalError as exc:
        raise RatingsDatabaseError(f"cannot connect to {_safe(engine)}: {exc.orig}") from exc
    problems, found = [], {}
    for table_field, column_fields in _LAYOUT.items():
        table = getattr(mapping, table_field)
        if table not in tables:
            problems.append(
                f"no table {table!r}; set RatingsMapping({table_field}=...) to the table that "
                f"holds the {table_field}{_hint(table, tables, 'tables')}"
            )
            continue
        found[table] = {c["name"]: c["type"] for c in inspector.get_columns(table)}
        columns = list(found[table])
        for column_field in column_fields:
            column = getattr(mapping, column_field)
            if column not in columns:
                problems.append(
                    f"table {table!r} has no column {column!r}; set "
                    f"RatingsMapping({column_field}=...){_hint(column, columns, 'columns')}"
                )
    if problems:
        raise RatingsSchemaError(
            f"the ratings database {_safe(engine)} does not match the mapping:\n  - "
            + "\n  - ".join(problems)
        )
    return found


def _hint(name: str, present: list[str], what: str) -> str:
    listed = f"{what} there: {', '.join(sorted(present)) or 'none'}"
    close = difflib.get_close_matches(name, present, n=1)
    return f" (did you mean {close[0]!r}? {listed})" if close else f" ({listed})"


def _safe(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _tables(mapping: RatingsMapping) -> tuple[sa.Table, ...]:
    """conversations, messages, ratings: untyped, so values come back as the driver gives them;
    columns are keyed by mapping field (msg.c.message_role) whatever the database calls them."""
    metadata = sa.MetaData()
    return tuple(
        sa.Table(
            getattr(mapping, t), metadata, *(sa.Column(getattr(mapping, c), key=c) for c in cs)
        )
        for t, cs in _LAYOUT.items()
    )


def _window(
    db: sa.Connection,
    conv: sa.Table,
    start: datetime | None,
    end: datetime | None,
    report: RatingsReport,
) -> list[tuple[Any, Any]]:
    """(id, created_at) of the conversations in [start, end), oldest first."""
    window = []
    for cid, created in db.execute(sa.select(conv.c.conversation_id, conv.c.conversation_created)):
        when = _instant(created)
        if when is None:  # counted in every window, so a bad date is never silently lost
            report.conversations += 1
            report.skipped["bad_created_at"] += 1
        elif (start is None or when >= start) and (end is None or when < end):
            report.conversations += 1
            window.append((when, str(cid), cid, created))
    return [(cid, created) for _, _, cid, created in sorted(window)]


def _messages(db: sa.Connection, msg: sa.Table, ids: list[Any]) -> dict[Any, list[sa.Row]]:
    rows: dict[Any, list[sa.Row]] = defaultdict(list)
    query = (
        sa.select(msg)
        .where(msg.c.message_conversation.in_(ids))
        .order_by(msg.c.message_conversation, msg.c.message_position, msg.c.message_id)
    )
    for row in db.execute(query):
        rows[row.message_conversation].append(row)
    return rows


def _ratings(
    db: sa.Connection, msg: sa.Table, rat: sa.Table, ids: list[Any]
) -> dict[Any, list[sa.Row]]:
    """Unexported ratings by message id, oldest first, so the last one is the latest."""
    rows: dict[Any, list[sa.Row]] = defaultdict(list)
    query = (
        sa.select(rat)
        .join(msg, rat.c.rating_message == msg.c.message_id)
        .where(msg.c.message_conversation.in_(ids))
        .order_by(rat.c.rating_created, rat.c.rating_id)
    )
    for row in db.execute(query):
        if row.rating_exported == 0:  # 0, or false in a boolean column
            rows[row.rating_message].append(row)
    return rows


def _conversation(
    cid: Any,
    created: Any,
    messages: list[sa.Row],
    ratings: dict[Any, list[sa.Row]],
    min_messages: int,
    report: RatingsReport,
) -> Conversation | None:
    """One conversation's turns with ratings attached, or None with the reason counted."""
    key = f"db:{cid}"
    turns: list[Turn] = []
    used: list[int] = []
    for row in messages:
        role = str(row.message_role or "").strip().lower()
        if role not in _ROLES:
            report.skipped["bad_role"] += 1
            continue
        content = row.message_content
        if content is None or not str(content).strip():
            report.skipped["empty_content"] += 1
            continue
        rating = None
        for found in ratings.get(row.message_id, ()):
            if found.rating_value not in (1, -1):
                report.skipped["bad_rating"] += 1
            elif role != "assistant":
                report.skipped["rating_not_on_assistant"] += 1
            else:
                rating = int(found.rating_value)  # ordered oldest first: the latest wins
                used.append(int(found.rating_id))
        turns.append(
            Turn(
                uuid=f"db:{row.message_id}",
                parent_uuid=turns[-1].uuid if turns else None,
                role=role,  # type: ignore[arg-type]  # checked against _ROLES above
                kind=_ROLES[role],  # type: ignore[arg-type]
                blocks=[Block("text", text=str(content))],
                timestamp=_iso(row.message_created),
                session_id=key,
                message_id=str(row.message_id),
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
        started=_iso(created),
        component=key,
    )


def _chunks(items: list) -> Iterator[list]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _instant(value: Any) -> datetime | None:
    """A stored timestamp as an aware datetime (naive ones are taken as UTC), or None."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: Any) -> str:
    """Text timestamps stay as the source wrote them; native ones become ISO 8601."""
    return _instant(value).isoformat() if isinstance(value, datetime) else str(value)


def _bound(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    when = _instant(value)
    if when is None:
        raise ValueError(f"{name}={value!r} is not an ISO date or time, e.g. 2026-11-01")
    return when
