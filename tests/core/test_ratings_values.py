"""Stored values read whatever their storage, on SQLite and PostgreSQL: exported flags, text ids,
BLOB content, rating values; marking writes what the column wants and a re-read finds nothing."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pipeline.ratings import RatingsDatabaseError, mark_exported, read_rated_conversations
from tests.core.ratings_dbs import Chat, build, empty_db_url, fresh_postgres, stored


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return empty_db_url(request, tmp_path)


def one_chat(flag: Any, rid: Any = 7) -> list[Chat]:
    return [Chat("c1", [f"m{n}" for n in range(5)], ratings=[(rid, 4, 1, flag)])]


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


# (column type, value as stored, exported?, value marking writes on SQLite, on PostgreSQL);
# exported None: a value that says neither, a counted skip.
FLAGS = {
    "null_integer": ("INTEGER", None, False, 1, 1),
    "null_boolean": ("BOOLEAN", None, False, 1, True),
    "null_text": ("TEXT", None, False, "true", "true"),
    "text_false": ("TEXT", "false", False, "true", "true"),
    "text_true": ("TEXT", "true", True, None, None),
    "text_0": ("TEXT", "0", False, "1", "1"),
    "text_1": ("TEXT", "1", True, None, None),
    "text_f_padded": ("TEXT", " F ", False, "T", "T"),
    "text_t": ("TEXT", "t", True, None, None),
    "text_no": ("TEXT", "No", False, "Yes", "Yes"),
    "text_yes": ("TEXT", "YES", True, None, None),
    "text_empty": ("TEXT", "", False, "true", "true"),
    "text_FALSE": ("TEXT", "FALSE", False, "TRUE", "TRUE"),
    "text_unknown": ("TEXT", "maybe", None, None, None),
    "text_2": ("TEXT", "2", None, None, None),
    "boolean_false": ("BOOLEAN", False, False, 1, True),
    "boolean_true": ("BOOLEAN", True, True, None, None),
    "integer_0": ("INTEGER", 0, False, 1, 1),
    "integer_1": ("INTEGER", 1, True, None, None),
    "integer_2": ("INTEGER", 2, None, None, None),
    "integer_minus_1": ("INTEGER", -1, None, None, None),
    "smallint_0": ("SMALLINT", 0, False, 1, 1),
    "varchar1_n": ("VARCHAR(1)", "n", False, "y", "y"),
}


@pytest.mark.parametrize("case", list(FLAGS))
def test_exported_flag(empty_db: str, case: str) -> None:
    kind, flag, exported, sqlite_writes, pg_writes = FLAGS[case]
    url = build(empty_db, one_chat(flag), flag=kind)
    conversations, report = read_rated_conversations(url)
    if exported is None:
        assert report.skipped == {"bad_exported": 1, "no_unexported_rating": 1}
        assert report.rating_ids == [] and conversations == []
        assert mark_exported(url, []) == 0
        return
    if exported:
        assert report.skipped == {"no_unexported_rating": 1} and report.rating_ids == []
        return
    assert report.rating_ids == [7] and report.used == 1 and report.positive == 1
    assert not report.skipped
    assert mark_exported(url, report.rating_ids) == 1
    writes = pg_writes if is_postgres(url) else sqlite_writes
    assert stored(url, "SELECT exported FROM ratings") == [(writes,)]
    conversations, again = read_rated_conversations(url)
    assert again.rating_ids == [] and conversations == []
    assert again.skipped == {"no_unexported_rating": 1}


def test_sqlite_text_flags_in_an_integer_column(tmp_path: Path) -> None:
    """SQLite keeps 'false' as text even in an INTEGER column; marking follows the neighbours."""
    chats = [
        Chat(f"c{i}", [f"c{i}m{n}" for n in range(5)], ratings=[(i, 4, 1, flag)])
        for i, flag in enumerate(["false", "true", "false", "maybe"])
    ]
    url = build(f"sqlite:///{tmp_path / 'r.sqlite'}", chats, flag="INTEGER")
    _, report = read_rated_conversations(url)
    assert report.rating_ids == [0, 2]
    assert report.skipped == {"bad_exported": 1, "no_unexported_rating": 2}
    assert mark_exported(url, report.rating_ids) == 2
    assert stored(url, "SELECT id, exported FROM ratings ORDER BY id") == [
        (0, "true"),
        (1, "true"),
        (2, "true"),
        (3, "maybe"),
    ]
    assert read_rated_conversations(url)[1].rating_ids == []


def test_text_convention_of_existing_values(empty_db: str) -> None:
    """A text column already holding 'Y' for exported rows gets 'Y', not 'true'."""
    chats = [
        Chat(f"c{i}", [f"c{i}m{n}" for n in range(5)], ratings=[(i, 4, 1, flag)])
        for i, flag in enumerate(["N", "Y", "Y", "N"])
    ]
    url = build(empty_db, chats, flag="TEXT")
    _, report = read_rated_conversations(url)
    assert report.rating_ids == [0, 3]
    assert mark_exported(url, report.rating_ids) == 2
    assert stored(url, "SELECT exported FROM ratings ORDER BY id") == [("Y",)] * 4


@pytest.mark.parametrize("id_type", ["TEXT", "UUID"])
def test_text_ids(empty_db: str, id_type: str) -> None:
    """UUIDs for conversations, messages and ratings: read, reported as text, marked once."""
    if id_type == "UUID" and not is_postgres(empty_db):
        pytest.skip("SQLite has no UUID type: TEXT covers it")
    make = lambda: str(uuid.uuid4())  # noqa: E731
    chats = [
        Chat(make(), [make() for _ in range(5)], ratings=[(make(), 2, -1, 0), (make(), 4, 1, 0)])
        for _ in range(3)
    ]
    url = build(empty_db, chats, cid=id_type, mid=id_type, rid=id_type)
    conversations, report = read_rated_conversations(url)
    every = sorted(r[0] for chat in chats for r in chat.ratings)
    assert report.rating_ids == every and all(isinstance(i, str) for i in every)
    assert {c.id for c in conversations} == {f"db:{chat.id}" for chat in chats}
    turn = conversations[0].turns[2]
    assert turn.uuid.startswith("db:") and uuid.UUID(turn.message_id) and turn.rating == -1
    assert report.to_json()["rating_ids"] == every  # JSON-ready: no UUID objects
    assert (report.positive, report.negative) == (3, 3)
    # Half now, the rest later: each rating is marked exactly once.
    assert mark_exported(url, every[:3]) == 3
    _, later = read_rated_conversations(url)
    assert sorted(later.rating_ids) == sorted(
        r[0] for chat in chats for r in chat.ratings if r[0] not in every[:3]
    )
    assert mark_exported(url, later.rating_ids) == len(later.rating_ids)
    assert read_rated_conversations(url)[1].rating_ids == []


def test_integer_and_text_ids_mixed(tmp_path: Path) -> None:
    """messages.id INTEGER while ratings.message_id is TEXT: the rating still finds its turn."""
    url = build(
        f"sqlite:///{tmp_path / 'r.sqlite'}",
        [Chat(5, [10, 11, 12, 13, 14], ratings=[("r-1", 4, 1, 0)])],
        cid="INTEGER",
        mid="INTEGER",
        rid="TEXT",
    )
    conversations, report = read_rated_conversations(url)
    assert report.rating_ids == ["r-1"] and conversations[0].id == "db:5"
    assert conversations[0].turns[4].message_id == "14" and conversations[0].turns[4].rating == 1
    assert mark_exported(url, ["r-1"]) == 1
    assert read_rated_conversations(url)[1].rating_ids == []


def blob_type(url: str) -> str:
    return "BYTEA" if is_postgres(url) else "BLOB"


def test_blob_content_valid_utf8(empty_db: str) -> None:
    text = "résumé: naïve ✓ 中文"
    chat = one_chat(0)[0]
    chat.contents = {n: f"{text} {n}".encode() for n in range(5)}
    url = build(empty_db, [chat], content=blob_type(empty_db))
    conversations, report = read_rated_conversations(url)
    assert not report.skipped and report.used == 1
    assert [t.text for t in conversations[0].turns] == [f"{text} {n}" for n in range(5)]


def test_blob_content_invalid_utf8_is_a_counted_skip(empty_db: str) -> None:
    """Undecodable system text is dropped alone (a question or answer would cut the
    conversation there: test_ratings_shapes)."""
    chat = one_chat(0)[0]
    chat.contents = {n: f"fine {n}".encode() for n in range(5)}
    chat.contents[0] = b"\xff\xfe not utf-8 \xc3"
    url = build(empty_db, [chat], content=blob_type(empty_db))
    conversations, report = read_rated_conversations(url, min_messages=4)
    assert report.skipped == {"undecodable_content": 1}
    texts = [t.text for t in conversations[0].turns]
    assert texts == ["fine 1", "fine 2", "fine 3", "fine 4"]
    assert not any("b'" in t or "\\x" in t for t in texts)


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [("TEXT", "-1", -1), ("TEXT", " +1 ", 1), ("TEXT", "up", None), ("INTEGER", 3, None)],
)
def test_rating_values(empty_db: str, kind: str, value: Any, expected: int | None) -> None:
    chat = Chat("c1", [f"m{n}" for n in range(5)], ratings=[(1, 4, value, 0)])
    url = build(empty_db, [chat], value=kind)
    conversations, report = read_rated_conversations(url)
    if expected is None:
        assert report.skipped == {"bad_rating": 1, "no_unexported_rating": 1}
    else:
        assert conversations[0].turns[4].rating == expected and report.rating_ids == [1]


@pytest.mark.parametrize("id_type", ["INTEGER", "TEXT"])
def test_mark_exported_is_one_transaction(empty_db: str, id_type: str) -> None:
    """One id that is not there (or cannot be an id of that column) and nothing is marked."""
    rid = (lambda n: n) if id_type == "INTEGER" else (lambda n: f"r-{n}")
    chats = [
        Chat(f"c{i}", [f"c{i}m{n}" for n in range(5)], ratings=[(rid(i), 4, 1, "false")])
        for i in range(4)
    ]
    url = build(empty_db, chats, rid=id_type, flag="TEXT")
    _, report = read_rated_conversations(url)
    assert report.rating_ids == [rid(i) for i in range(4)]
    for extra in (rid(99), "not-an-id", None):
        with pytest.raises(RatingsDatabaseError, match="nothing was marked"):
            mark_exported(url, [*report.rating_ids, extra])
        assert stored(url, "SELECT DISTINCT exported FROM ratings") == [("false",)]
    assert mark_exported(url, [*report.rating_ids, *report.rating_ids]) == 4  # repeats once
    assert read_rated_conversations(url)[1].rating_ids == []


def test_postgres_enum_flag_marks_with_an_enum_value(postgres_url: str) -> None:
    """An enum ('no', 'yes') holding only NULL: 'true' would be refused, so 'yes' is written."""
    url = fresh_postgres(postgres_url)
    engine = sa.create_engine(url)
    with engine.begin() as db:
        db.execute(sa.text("CREATE TYPE yes_no AS ENUM ('no', 'yes')"))
    engine.dispose()
    build(url, one_chat(None), flag="yes_no")
    _, report = read_rated_conversations(url)
    assert report.rating_ids == [7]
    assert mark_exported(url, report.rating_ids) == 1
    assert stored(url, "SELECT exported::text FROM ratings") == [("yes",)]
    assert read_rated_conversations(url)[1].rating_ids == []
