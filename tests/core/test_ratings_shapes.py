"""Ratings tables shaped unlike the sample, on SQLite and PostgreSQL: TEXT positions, epoch
dates, ids stored differently in two tables, BLOB UUID ids, and messages dropped mid-way."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.ratings import mark_exported, read_rated_conversations
from tests.core.ratings_dbs import Chat, build, empty_db_url, stored

# 2026-11-02T10:00:00Z
EPOCH = int(datetime(2026, 11, 2, 10, tzinfo=UTC).timestamp())
CHAT_ROLES = ("system", *("user", "assistant") * 3)  # seven messages


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return empty_db_url(request, tmp_path)


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def test_text_positions_sort_as_numbers(empty_db: str) -> None:
    """'10' after '9', not after '1': else a rated answer follows the wrong prompt."""
    roles = ("user", "assistant") * 6
    chat = Chat("c1", [f"m{n}" for n in range(12)], ratings=[(1, 11, 1, 0)], roles=roles)
    chat.positions = [str(n) for n in range(12)]
    url = build(empty_db, [chat], pos="TEXT")
    conversations, report = read_rated_conversations(url)
    assert not report.skipped
    assert [t.message_id for t in conversations[0].turns] == [f"m{n}" for n in range(12)]
    assert conversations[0].turns[11].rating == 1


def test_untyped_sqlite_positions_mixed_storage(tmp_path: Path) -> None:
    """SQLite keeps what each row was given: integers and digit strings sort together."""
    roles = ("user", "assistant") * 6
    chat = Chat("c1", [f"m{n}" for n in range(12)], ratings=[(1, 11, 1, 0)], roles=roles)
    chat.positions = [n if n % 3 else str(n) for n in range(12)]
    url = build(f"sqlite:///{tmp_path / 'r.sqlite'}", [chat], pos="")
    conversations, _ = read_rated_conversations(url)
    assert [t.message_id for t in conversations[0].turns] == [f"m{n}" for n in range(12)]


@pytest.mark.parametrize(("stored_as", "scale"), [("seconds", 1), ("milliseconds", 1000)])
def test_epoch_created_at(empty_db: str, stored_as: str, scale: int) -> None:
    chat = Chat("c1", [f"m{n}" for n in range(5)], ratings=[(1, 4, 1, 0)], created=EPOCH * scale)
    url = build(empty_db, [chat], created="BIGINT")
    conversations, report = read_rated_conversations(url, since="2026-11-02", until="2026-11-03")
    assert not report.skipped and report.used == 1, stored_as
    assert datetime.fromisoformat(conversations[0].started) == datetime(2026, 11, 2, 10, tzinfo=UTC)
    _, later = read_rated_conversations(url, since="2026-11-03")
    assert later.conversations == 0 and not later.skipped


def test_epoch_digits_in_a_text_column(tmp_path: Path) -> None:
    chats = [
        Chat("c1", [f"a{n}" for n in range(5)], ratings=[(1, 4, 1, 0)], created=str(EPOCH)),
        Chat("c2", [f"b{n}" for n in range(5)], ratings=[(2, 4, 1, 0)], created="2026"),
    ]
    url = build(f"sqlite:///{tmp_path / 'r.sqlite'}", chats)
    conversations, report = read_rated_conversations(url)
    assert [c.id for c in conversations] == ["db:c1"]
    assert report.skipped == {"bad_created_at": 1}  # a year alone is no instant: never guessed


def test_integer_conversation_id_beside_text_in_messages(empty_db: str) -> None:
    """conversations.id 1, messages.conversation_id '1': the messages are still found."""
    mcid = "TEXT" if is_postgres(empty_db) else ""  # SQLite: untyped, compared by storage
    chat = Chat(1, [f"m{n}" for n in range(5)], ratings=[(1, 4, 1, 0)], message_conversation="1")
    url = build(empty_db, [chat], cid="INTEGER", mcid=mcid)
    conversations, report = read_rated_conversations(url)
    assert not report.skipped and report.rating_ids == [1]
    assert conversations[0].id == "db:1" and len(conversations[0].turns) == 5
    assert conversations[0].turns[4].rating == 1
    assert mark_exported(url, report.rating_ids) == 1
    assert read_rated_conversations(url)[1].rating_ids == []


def test_blob_uuid_ids(empty_db: str) -> None:
    """16-byte BLOB UUIDs for conversations, messages and ratings: read as UUID text, marked."""
    blob = "BYTEA" if is_postgres(empty_db) else "BLOB"
    cid, mids, rid = uuid.uuid4(), [uuid.uuid4() for _ in range(5)], uuid.uuid4()
    chat = Chat(cid.bytes, [m.bytes for m in mids], ratings=[(rid.bytes, 4, -1, 0)])
    url = build(empty_db, [chat], cid=blob, mid=blob, rid=blob)
    conversations, report = read_rated_conversations(url)
    assert not report.skipped and report.rating_ids == [str(rid)]
    assert conversations[0].id == f"db:{cid}"
    assert [t.message_id for t in conversations[0].turns] == [str(m) for m in mids]
    assert conversations[0].turns[4].rating == -1
    assert mark_exported(url, report.rating_ids) == 1
    assert read_rated_conversations(url)[1].rating_ids == []


def test_a_16_character_text_id_in_a_blob_stays_text(tmp_path: Path) -> None:
    chat = Chat(b"conversation-001", [f"m{n}" for n in range(5)], ratings=[(1, 4, 1, 0)])
    url = build(f"sqlite:///{tmp_path / 'r.sqlite'}", [chat], cid="BLOB")
    conversations, _ = read_rated_conversations(url)
    assert conversations[0].id == "db:conversation-001"


def gap_chat(change: str) -> Chat:
    """Seven messages, rated at 4 and 6; message 5 (a question) is made unreadable."""
    roles = list(CHAT_ROLES)
    chat = Chat("c1", [f"m{n}" for n in range(7)], ratings=[(1, 4, 1, 0), (2, 6, -1, 0)])
    chat.contents = {n: f"{role} {n}".encode() for n, role in enumerate(roles)}
    if change == "undecodable_content":
        chat.contents[5] = b"\xff\xfeQuelle est la capitale?"
    elif change == "empty_content":
        chat.contents[5] = b"   "
    elif change == "bad_role":
        roles[5] = "tool"
    chat.roles = tuple(roles)
    return chat


@pytest.mark.parametrize("reason", ["undecodable_content", "empty_content", "bad_role"])
def test_a_dropped_message_cuts_the_conversation_there(empty_db: str, reason: str) -> None:
    """Joining 4 to 6 across the lost question would put answer 6 under question 3."""
    chat = gap_chat(reason)
    url = build(empty_db, [chat], content="BYTEA" if is_postgres(empty_db) else "BLOB")
    conversations, report = read_rated_conversations(url)
    assert report.skipped == {reason: 1, "cut_at_dropped_message": 1}
    turns = conversations[0].turns
    assert [t.message_id for t in turns] == [f"m{n}" for n in range(5)]
    assert [t.parent_uuid for t in turns] == [None] + [t.uuid for t in turns[:-1]]
    assert report.rating_ids == [1]  # the answer after the gap stays unexported
    assert mark_exported(url, report.rating_ids) == 1
    assert stored(url, "SELECT id FROM ratings ORDER BY id") == [(1,), (2,)]
    _, again = read_rated_conversations(url)
    assert again.rating_ids == []  # 2, after the gap, is never used


def test_a_gap_before_enough_turns_drops_the_conversation(tmp_path: Path) -> None:
    chat = gap_chat("empty_content")
    chat.contents[2] = b""  # the first answer: only two turns before the gap
    url = build(f"sqlite:///{tmp_path / 'r.sqlite'}", [chat], content="BLOB")
    conversations, report = read_rated_conversations(url)
    assert conversations == []
    assert report.skipped == {
        "empty_content": 1,
        "cut_at_dropped_message": 1,
        "too_few_messages": 1,
    }


def test_a_dropped_system_message_cuts_nothing(empty_db: str) -> None:
    """No prompt or answer is lost: the turns around it still pair."""
    chat = gap_chat("none")
    chat.contents[0] = b""
    url = build(empty_db, [chat], content="BYTEA" if is_postgres(empty_db) else "BLOB")
    conversations, report = read_rated_conversations(url)
    assert report.skipped == {"empty_content": 1}
    assert [t.message_id for t in conversations[0].turns] == [f"m{n}" for n in range(1, 7)]
    assert report.rating_ids == [1, 2]
