"""Mark ratings exported once a release has published them, so the next read skips them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import sqlalchemy as sa

from pipeline import ratings_values as values
from pipeline.ratings_db import RatingsDatabaseError, check, chunks, database, mask
from pipeline.ratings_mapping import RatingsMapping, tables


def mark_exported(
    url: str, rating_ids: Sequence[int | str], mapping: RatingsMapping = RatingsMapping()
) -> int:
    """Set exported on exactly these ratings in one transaction; any failure changes nothing.

    The value written is what the column's type wants (true, 1, or text like the values
    already there), so the chat UI and the next read both see these ratings as exported.
    """
    wanted = {values.ident(i) for i in rating_ids}
    if not wanted:
        return 0
    with database(url, writing=True) as engine:
        columns = check(engine, mapping)[mapping.ratings]
        id_type, flag_type = columns[mapping.rating_id], columns[mapping.rating_exported]
        rat = tables(mapping)[2]
        # Ids as the column compares them (PostgreSQL refuses integer = text); one that
        # cannot be such a value is not in the table, and fails the count below.
        converted = [None if i is None else values.as_column_type(i, id_type) for i in wanted]
        bound = set(converted) - {None}
        expected = len(bound) + converted.count(None)
        ids = sorted(bound, key=lambda i: values.id_order(values.ident(i) or ""))
        updated = 0
        with engine.begin() as db:
            stored = sa.select(rat.c.rating_exported, sa.func.count()).group_by(
                rat.c.rating_exported
            )
            done = values.exported_value(
                flag_type, engine.dialect.name, Counter(dict(_hashable(db.execute(stored))))
            )
            for chunk in chunks(ids):
                result = db.execute(
                    sa.update(rat)
                    .where(rat.c.rating_id.in_(chunk))
                    .values({rat.c.rating_exported: done})
                )
                updated += result.rowcount
            if updated != expected:
                # Raising inside begin() rolls back the chunks already updated.
                raise RatingsDatabaseError(
                    f"only {updated} of {expected} ratings exist in {mask(engine.url)}; "
                    "nothing was marked (was the database changed since the read?)"
                )
    return updated


def _hashable(rows: sa.CursorResult) -> list[tuple[object, int]]:
    """(stored value, count) pairs; psycopg2 returns bytea as an unhashable memoryview."""
    return [(bytes(v) if isinstance(v, memoryview) else v, n) for v, n in rows]
