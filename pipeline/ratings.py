"""Read rated conversations from the chat UI's ratings database, and mark ratings exported.

Split by topic: ratings_mapping (names and errors), ratings_db (opening, schema check, error
messages), ratings_values (stored values read whatever their type), ratings_read and
ratings_mark. Callers import from here.
"""

from pipeline.ratings_db import URL_FORM, RatingsDatabaseError, RatingsSchemaError, check, database
from pipeline.ratings_mapping import RatingsError, RatingsMapping
from pipeline.ratings_mark import mark_exported
from pipeline.ratings_read import RatingsReport, read_rated_conversations

__all__ = [
    "URL_FORM",
    "RatingsDatabaseError",
    "RatingsError",
    "RatingsMapping",
    "RatingsReport",
    "RatingsSchemaError",
    "check_schema",
    "mark_exported",
    "read_rated_conversations",
]


def check_schema(url: str, mapping: RatingsMapping = RatingsMapping()) -> None:
    """Raise RatingsSchemaError naming each missing table or column and the field to set."""
    with database(url) as engine:
        check(engine, mapping)
