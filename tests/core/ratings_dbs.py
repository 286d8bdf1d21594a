"""Small ratings databases with chosen column types, on SQLite or the real test PostgreSQL."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

# {cid}/{mid}/{rid}: id types ({mcid}: messages.conversation_id, {cid} unless given);
# {content}, {flag}, {pos}, {created}: content, exported, position and created_at types.
DDL = """
CREATE TABLE conversations(id {cid} PRIMARY KEY, title TEXT, created_at {created} NOT NULL);
CREATE TABLE messages(id {mid} PRIMARY KEY, conversation_id {mcid} NOT NULL,
    position {pos} NOT NULL, role TEXT NOT NULL, content {content}, created_at TEXT NOT NULL);
CREATE TABLE ratings(id {rid} PRIMARY KEY, message_id {mid} NOT NULL, rating {value} NOT NULL,
    rated_at TEXT NOT NULL, exported {flag})
"""
ROLES = ("system", "user", "assistant", "user", "assistant")
_names = itertools.count()


@dataclass
class Chat:
    """One conversation of five messages (system, user, assistant, user, assistant)."""

    id: Any
    message_ids: list[Any]
    # (rating id, message index, rating value, exported as stored)
    ratings: list[tuple[Any, int, Any, Any]] = field(default_factory=list)
    contents: dict[int, Any] = field(default_factory=dict)  # message index -> stored content
    day: int = 1
    roles: tuple[str, ...] = ROLES
    positions: list[Any] | None = None  # as stored; 0, 1, 2... unless given
    created: Any = None  # conversations.created_at as stored; ISO text of `day` unless given
    message_conversation: Any = None  # messages.conversation_id as stored; `id` unless given

    def rows(self) -> dict[str, list[dict[str, Any]]]:
        when = f"2026-11-{self.day:02d}T10:00:00+00:00"
        positions = self.positions or list(range(len(self.message_ids)))
        cid = self.id if self.message_conversation is None else self.message_conversation
        messages = [
            {
                "id": mid,
                "conversation_id": cid,
                "position": positions[n],
                "role": role,
                "content": self.contents.get(n, f"{role} says {n} in {self.id}"),
                "created_at": when,
            }
            for n, (mid, role) in enumerate(zip(self.message_ids, self.roles, strict=True))
        ]
        ratings = [
            {
                "id": rid,
                "message_id": self.message_ids[n],
                "rating": value,
                "rated_at": when,
                "exported": flag,
            }
            for rid, n, value, flag in self.ratings
        ]
        created = when if self.created is None else self.created
        conversation = {"id": self.id, "title": "t", "created_at": created}
        return {"conversations": [conversation], "messages": messages, "ratings": ratings}


def build(url: str, chats: list[Chat], **types: str) -> str:
    """Create the three tables with `types` (cid, mcid, mid, rid, content, flag, value, pos,
    created) and fill them."""
    kinds = {"cid": "TEXT", "mid": "TEXT", "rid": "INTEGER", "content": "TEXT"}
    kinds |= {"flag": "INTEGER", "value": "INTEGER", "pos": "INTEGER", "created": "TEXT"} | types
    kinds.setdefault("mcid", kinds["cid"])
    engine = sa.create_engine(url)
    with engine.begin() as db:
        for statement in DDL.format(**kinds).split(";"):
            db.execute(sa.text(statement))
        for table in ("conversations", "messages", "ratings"):
            rows = [r for chat in chats for r in chat.rows()[table]]
            if rows:
                names = list(rows[0])
                db.execute(
                    sa.text(
                        f"INSERT INTO {table}({', '.join(names)}) "
                        f"VALUES ({', '.join(':' + n for n in names)})"
                    ),
                    rows,
                )
    engine.dispose()
    return url


def stored(url: str, sql: str) -> list[tuple]:
    engine = sa.create_engine(url)
    with engine.connect() as db:
        rows = [tuple(r) for r in db.execute(sa.text(sql))]
    engine.dispose()
    return rows


def fresh_postgres(postgres_url: str) -> str:
    """A new, empty database on the test server; its URL."""
    name = f"ratings_{next(_names)}"
    with sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT").connect() as admin:
        admin.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.execute(sa.text(f"CREATE DATABASE {name}"))
    return sa.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)


def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The body of a fixture parametrized with "sqlite" and "postgres": an empty database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ratings.sqlite'}"
    return fresh_postgres(request.getfixturevalue("postgres_url"))
