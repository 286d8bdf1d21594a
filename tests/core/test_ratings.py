"""The ratings reader on the sample SQLite database, a renamed schema, and a real PostgreSQL."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pipeline import ratings_db
from pipeline.ratings import (
    RatingsDatabaseError,
    RatingsMapping,
    RatingsSchemaError,
    check_schema,
    mark_exported,
    read_rated_conversations,
)
from pipeline.sample import TERMINAL_CONVERSATIONS, SampleSummary

# The sample schema with every name changed, for the custom-mapping test.
RENAMED = """
CREATE TABLE chats(chat_key TEXT PRIMARY KEY, heading TEXT, opened TEXT NOT NULL);
CREATE TABLE lines(line_key TEXT PRIMARY KEY, chat TEXT NOT NULL, seq INTEGER NOT NULL,
    speaker TEXT NOT NULL, body TEXT NOT NULL, said TEXT NOT NULL);
CREATE TABLE votes(vote_key INTEGER PRIMARY KEY, line TEXT NOT NULL, thumb INTEGER NOT NULL,
    voted TEXT NOT NULL, sent INTEGER NOT NULL DEFAULT 0);
INSERT INTO chats SELECT id, title, created_at FROM src.conversations;
INSERT INTO lines SELECT id, conversation_id, position, role, content, created_at FROM src.messages;
INSERT INTO votes SELECT id, message_id, rating, rated_at, exported FROM src.ratings;
"""
RENAMED_MAPPING = RatingsMapping(
    conversations="chats",
    conversation_id="chat_key",
    conversation_title="heading",
    conversation_created="opened",
    messages="lines",
    message_id="line_key",
    message_conversation="chat",
    message_position="seq",
    message_role="speaker",
    message_content="body",
    message_created="said",
    ratings="votes",
    rating_id="vote_key",
    rating_message="line",
    rating_value="thumb",
    rating_created="voted",
    rating_exported="sent",
)
# The sample schema in PostgreSQL; `native` swaps in boolean and timestamptz columns.
PG_SCHEMA = """
CREATE TABLE conversations(id TEXT PRIMARY KEY, title TEXT NOT NULL, created_at {time} NOT NULL,
    source TEXT NOT NULL);
CREATE TABLE messages(id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id), position INTEGER NOT NULL,
    role TEXT NOT NULL CHECK(role IN ('system','user','assistant')), content TEXT NOT NULL,
    created_at {time} NOT NULL);
CREATE TABLE ratings(id INTEGER PRIMARY KEY, message_id TEXT NOT NULL REFERENCES messages(id),
    rating INTEGER NOT NULL CHECK(rating IN (-1, 1)), rated_at {time} NOT NULL,
    exported {flag} NOT NULL);
"""


@pytest.fixture
def db(sample: SampleSummary, tmp_path: Path) -> Path:
    """A private copy of the sample database: tests here write to it."""
    return Path(shutil.copy(sample.ratings_db, tmp_path / "feedback.sqlite"))


def url(path: Path) -> str:
    return f"sqlite:///{path}"


def query(path: Path, sql: str, *args: Any) -> list[tuple]:
    with closing(sqlite3.connect(path)) as con:
        return con.execute(sql, args).fetchall()


def execute(path: Path, sql: str) -> None:
    with closing(sqlite3.connect(path)) as con:
        con.executescript(sql)
        con.commit()


def unexported(path: Path) -> set[int]:
    return {i for (i,) in query(path, "SELECT id FROM ratings WHERE exported = 0")}


def test_sample_counts_and_records(db: Path) -> None:
    conversations, report = read_rated_conversations(url(db))
    sizes = dict(query(db, "SELECT conversation_id, count(*) FROM messages GROUP BY 1"))
    rated = {
        c
        for (c,) in query(
            db,
            "SELECT DISTINCT conversation_id FROM messages m JOIN ratings r "
            "ON r.message_id = m.id WHERE r.exported = 0",
        )
    }
    short = {c for c, n in sizes.items() if n < 4}
    expected = {c for c in sizes if c not in short and c in rated}
    assert short and expected and len(sizes) - len(short) > len(expected)  # each case happens
    assert report.conversations == len(sizes) == 30 + TERMINAL_CONVERSATIONS
    assert report.skipped == {
        "too_few_messages": len(short),
        "no_unexported_rating": len(sizes) - len(short) - len(expected),
    }
    assert report.used == len(conversations) == len(expected)
    assert {c.id for c in conversations} == {f"db:{c}" for c in expected}
    # Every unexported rating of a used conversation is used; no exported one is.
    used = {
        i
        for i, c in query(
            db,
            "SELECT r.id, m.conversation_id FROM ratings r JOIN messages m "
            "ON r.message_id = m.id WHERE r.exported = 0",
        )
        if c in expected
    }
    assert report.rating_ids == sorted(used)
    values = dict(query(db, "SELECT message_id, rating FROM ratings WHERE exported = 0"))
    turns = [t for c in conversations for t in c.turns]
    assert {t.message_id: t.rating for t in turns if t.rating is not None} == {
        m: v for m, v in values.items() if m in {t.message_id for t in turns}
    }
    assert report.negative == sum(t.rating == -1 for t in turns) > 0
    assert report.positive == sum(t.rating == 1 for t in turns) > 0
    assert report.ratings == report.positive + report.negative == len(used)
    assert all(t.role == "assistant" for t in turns if t.rating is not None)
    assert {(t.role, t.kind) for t in turns} == {
        ("user", "human"),
        ("assistant", "assistant"),
        ("system", "meta"),
    }
    created = dict(query(db, "SELECT id, created_at FROM conversations"))
    for c in conversations:
        cid = c.id.removeprefix("db:")
        assert (c.source, c.kind, c.project) == ("ratings_db", "rated", "ratings")
        assert c.session_id == c.component == c.id and c.started == created[cid]
        assert all(t.session_id == c.id and t.text for t in c.turns)
    assert [c.started for c in conversations] == sorted(c.started for c in conversations)
    json = report.to_json()
    assert json["skipped"] == dict(report.skipped) and json["rating_ids"] == report.rating_ids


def test_turns_follow_position_not_insertion(db: Path) -> None:
    execute(db, "UPDATE messages SET position = 100 - position")
    conversations, _ = read_rated_conversations(url(db))
    for c in conversations:
        cid = c.id.removeprefix("db:")
        order = query(
            db, "SELECT id FROM messages WHERE conversation_id = ? ORDER BY position", cid
        )
        assert [t.message_id for t in c.turns] == [m for (m,) in order]
        assert [t.parent_uuid for t in c.turns] == [None] + [t.uuid for t in c.turns[:-1]]


@pytest.mark.parametrize(
    ("change", "reason"), [("role = 'tool'", "bad_role"), ("content = '  '", "empty_content")]
)
def test_a_bad_row_cuts_its_conversation_and_nothing_else(
    db: Path, change: str, reason: str
) -> None:
    """A lost question or answer ends the conversation there: a turn after it would follow
    the wrong one. The other conversations are read as before."""
    before, _ = read_rated_conversations(url(db))
    victim = next(c for c in before if len(c.turns) >= 6)
    cut = [n for n, t in enumerate(victim.turns) if t.role == "user"][-1]
    # The sample's CHECK forbids these rows; real databases are less careful.
    execute(
        db,
        f"PRAGMA ignore_check_constraints = ON;"
        f"UPDATE messages SET {change} WHERE id = '{victim.turns[cut].message_id}';",
    )
    after, report = read_rated_conversations(url(db))
    assert report.skipped[reason] == report.skipped["cut_at_dropped_message"] == 1
    kept = victim.turns[:cut]
    assert len(kept) >= 4 and any(t.rating is not None for t in kept)  # the sample's shape
    assert next(c for c in after if c.id == victim.id).turns == kept
    assert [c for c in after if c.id != victim.id] == [c for c in before if c.id != victim.id]


def test_latest_unexported_rating_wins(db: Path) -> None:
    conversations, first = read_rated_conversations(url(db))
    turn = next(t for c in conversations for t in c.turns if t.rating == 1)
    execute(
        db,
        "INSERT INTO ratings(message_id, rating, rated_at, exported) "
        f"VALUES ('{turn.message_id}', -1, '2099-01-01T00:00:00.000Z', 0)",
    )
    conversations, report = read_rated_conversations(url(db))
    again = next(t for c in conversations for t in c.turns if t.message_id == turn.message_id)
    assert again.rating == -1
    # Both ratings go out with the release, or the superseded one would come back next time.
    assert len(report.rating_ids) == len(first.rating_ids) + 1
    assert (report.positive, report.negative) == (first.positive - 1, first.negative + 1)


def test_mark_exported_marks_exactly_these(db: Path) -> None:
    _, report = read_rated_conversations(url(db))
    before = unexported(db)
    half = report.rating_ids[::2]
    assert mark_exported(url(db), half) == len(half)
    assert unexported(db) == before - set(half)
    _, again = read_rated_conversations(url(db))
    assert again.rating_ids == report.rating_ids[1::2]
    assert mark_exported(url(db), again.rating_ids) == len(again.rating_ids)
    conversations, last = read_rated_conversations(url(db))
    assert conversations == [] and last.rating_ids == [] and last.used == 0
    assert mark_exported(url(db), []) == 0


def test_mark_exported_is_all_or_nothing(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, report = read_rated_conversations(url(db))
    before = unexported(db)
    # Tiny chunks, so the failing UPDATE comes after several that succeeded.
    monkeypatch.setattr(ratings_db, "CHUNK", 2)
    execute(
        db,
        "CREATE TRIGGER refuse BEFORE UPDATE OF exported ON ratings "
        f"WHEN NEW.id = {report.rating_ids[-1]} BEGIN SELECT RAISE(ABORT, 'refused'); END;",
    )
    # The trigger's refusal comes back as the one ratings error, with its reason.
    with pytest.raises(RatingsDatabaseError, match="refused"):
        mark_exported(url(db), report.rating_ids)
    assert unexported(db) == before
    execute(db, "DROP TRIGGER refuse")
    with pytest.raises(RatingsDatabaseError, match="nothing was marked"):
        mark_exported(url(db), [*report.rating_ids, 999_999])
    assert unexported(db) == before


def test_custom_mapping_on_renamed_schema(db: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "renamed.sqlite"
    execute(renamed, f"ATTACH DATABASE '{db}' AS src;{RENAMED}")
    expected, expected_report = read_rated_conversations(url(db))
    got, report = read_rated_conversations(url(renamed), RENAMED_MAPPING)
    assert got == expected and report == expected_report
    assert mark_exported(url(renamed), report.rating_ids, RENAMED_MAPPING) == report.ratings
    assert read_rated_conversations(url(renamed), RENAMED_MAPPING)[1].used == 0


def test_check_schema_names_the_field(db: Path, tmp_path: Path) -> None:
    check_schema(url(db))
    with pytest.raises(RatingsSchemaError) as err:
        check_schema(url(db), RatingsMapping(ratings="votes", message_content="body"))
    assert "RatingsMapping(ratings=...)" in str(err.value)
    assert "RatingsMapping(message_content=...)" in str(err.value)
    assert "content" in str(err.value)  # the columns that are there
    with pytest.raises(RatingsSchemaError, match=r"did you mean 'ratings'"):
        read_rated_conversations(url(db), RatingsMapping(ratings="Ratings"))
    with pytest.raises(RatingsDatabaseError, match="sqlite:///"):
        check_schema(str(db))
    with pytest.raises(RatingsDatabaseError, match="no SQLite database"):
        check_schema(url(tmp_path / "missing.sqlite"))
    assert not (tmp_path / "missing.sqlite").exists()
    with pytest.raises(ValueError, match="rating_value"):
        RatingsMapping(rating_value="rating; DROP TABLE ratings")
    with pytest.raises(ValueError, match="since"):
        read_rated_conversations(url(db), since="yesterday")


def test_since_until_partition_by_day(db: Path) -> None:
    everything, full = read_rated_conversations(url(db))
    days = [f"2026-11-{d:02d}" for d in range(1, 13)]
    parts = [read_rated_conversations(url(db), since=a, until=b) for a, b in pairwise(days)]
    assert [c for got, _ in parts for c in got] == everything
    assert sum(r.conversations for _, r in parts) == full.conversations
    assert sorted(i for _, r in parts for i in r.rating_ids) == full.rating_ids
    got, report = read_rated_conversations(url(db), since="2026-11-05", until="2026-11-06")
    in_day = query(db, "SELECT count(*) FROM conversations WHERE created_at LIKE '2026-11-05%'")
    assert report.conversations == in_day[0][0]
    assert got and all(c.started.startswith("2026-11-05") for c in got)
    later, _ = read_rated_conversations(url(db), since="2026-11-09T00:00:00+00:00")
    assert later == [c for c in everything if c.started >= "2026-11-09"]


def pg_copy(sqlite_path: Path, postgres: str, name: str, native: bool = False) -> str:
    """A fresh PostgreSQL database holding the SQLite sample's rows; returns its URL."""
    with sa.create_engine(postgres, isolation_level="AUTOCOMMIT").connect() as admin:
        admin.execute(sa.text(f"CREATE DATABASE {name}"))
    target = sa.make_url(postgres).set(database=name).render_as_string(hide_password=False)
    schema = PG_SCHEMA.format(
        time="TIMESTAMPTZ" if native else "TEXT", flag="BOOLEAN" if native else "INTEGER"
    )
    engine = sa.create_engine(target)
    with engine.begin() as pg:
        for statement in schema.split(";"):
            if statement.strip():
                pg.execute(sa.text(statement))
        for table in ("conversations", "messages", "ratings"):
            rows = query(sqlite_path, f"SELECT * FROM {table}")
            if native and table == "ratings":
                rows = [(*row[:4], bool(row[4])) for row in rows]
            params = ", ".join(f":c{i}" for i in range(len(rows[0])))
            pg.execute(
                sa.text(f"INSERT INTO {table} VALUES ({params})"),
                [{f"c{i}": v for i, v in enumerate(row)} for row in rows],
            )
    engine.dispose()
    return target


def test_postgres_reads_the_same(db: Path, postgres_url: str) -> None:
    pg = pg_copy(db, postgres_url, "same_schema")
    check_schema(pg)
    expected, expected_report = read_rated_conversations(url(db))
    got, report = read_rated_conversations(pg)
    assert got == expected and report == expected_report
    window = {"since": "2026-11-05", "until": "2026-11-08"}
    assert read_rated_conversations(pg, **window) == read_rated_conversations(url(db), **window)
    assert mark_exported(pg, report.rating_ids) == len(report.rating_ids)
    assert read_rated_conversations(pg)[1].used == 0
    with pytest.raises(RatingsSchemaError, match=r"RatingsMapping\(messages=\.\.\.\)"):
        check_schema(pg, RatingsMapping(messages="turns"))


def test_postgres_native_types(db: Path, postgres_url: str) -> None:
    """Boolean `exported` and timestamptz columns, as a PostgreSQL-first app would have."""
    pg = pg_copy(db, postgres_url, "native_types", native=True)
    expected, expected_report = read_rated_conversations(url(db))
    got, report = read_rated_conversations(pg, since="2026-11-01", until="2026-12-01")
    assert report == expected_report
    assert [(c.id, [(t.message_id, t.rating, t.text) for t in c.turns]) for c in got] == [
        (c.id, [(t.message_id, t.rating, t.text) for t in c.turns]) for c in expected
    ]
    assert got[0].started.endswith("+00:00")
    assert mark_exported(pg, report.rating_ids) == len(report.rating_ids)
    assert read_rated_conversations(pg)[1].rating_ids == []
