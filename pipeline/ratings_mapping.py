"""Where the reader finds each piece of a ratings database: real databases name things their own
way, so every table and column name comes from a `RatingsMapping`."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

import sqlalchemy as sa

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Each table field of the mapping with the column fields the reader uses from it.
LAYOUT: dict[str, tuple[str, ...]] = {
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


class RatingsError(ValueError):
    """Ratings input the reader cannot use; the message names the database and the fix."""


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
                raise RatingsError(
                    f"RatingsMapping.{f.name}={value!r} is not a plain SQL name "
                    "(letters, digits and _, not starting with a digit)"
                )
        for table, columns in LAYOUT.items():
            names = [getattr(self, c) for c in columns]
            if len(set(names)) < len(names):
                raise RatingsError(f"RatingsMapping maps two fields of {table!r} to one column")


def tables(mapping: RatingsMapping) -> tuple[sa.Table, ...]:
    """conversations, messages, ratings: untyped, so values come back as the driver gives them;
    columns are keyed by mapping field (msg.c.message_role) whatever the database calls them."""
    metadata = sa.MetaData()
    return tuple(
        sa.Table(
            getattr(mapping, t), metadata, *(sa.Column(getattr(mapping, c), key=c) for c in cs)
        )
        for t, cs in LAYOUT.items()
    )
