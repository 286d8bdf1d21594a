"""Opening a ratings database, checking it against the mapping, and turning every database
failure into one `RatingsDatabaseError` that names the URL (password masked), what is wrong
and what to do, never a raw SQLAlchemy traceback."""

from __future__ import annotations

import difflib
import re
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from pipeline.ratings_mapping import LAYOUT, RatingsError, RatingsMapping

URL_FORM = (
    "sqlite:////absolute/path/feedback.sqlite or "
    "postgresql+psycopg://user:password@host:5432/dbname"
)
# Bound parameters per IN (...): far below SQLite's and PostgreSQL's limits on one statement.
CHUNK = 500
# Seconds to wait for a PostgreSQL server before saying it is unreachable.
CONNECT_TIMEOUT_S = 10
_SQLITE_MAGIC = b"SQLite format 3\x00"
# user:password@ after the scheme's //, else at the start of a URL missing its scheme.
_PASSWORD_IN_URL = re.compile(r"(//[^:/@]*:).*@")
_PASSWORD_AT_START = re.compile(r"^([^:/@]*:).*@")


class RatingsDatabaseError(RatingsError):
    """The ratings database cannot be opened, read or updated; the message says what to change."""


class RatingsSchemaError(RatingsDatabaseError):
    """The database lacks a table or column the mapping names; the message names the field."""


def chunks(items: list) -> Iterator[list]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def mask(url: str | URL) -> str:
    """The URL with any password replaced by ***, even one SQLAlchemy cannot parse."""
    if isinstance(url, URL):
        shown = url.render_as_string(hide_password=True)
        # SQLite URLs hold no password; unquoted, a file: URI reads as the user wrote it.
        return unquote(shown) if url.get_backend_name() == "sqlite" else shown
    masked = _PASSWORD_IN_URL.sub(r"\1***@", url)
    return masked if masked != url else _PASSWORD_AT_START.sub(r"\1***@", url)


@contextmanager
def database(url: str, *, writing: bool = False) -> Iterator[Engine]:
    """An engine for `url`; any database failure inside the block becomes RatingsDatabaseError."""
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise RatingsDatabaseError(
            f"{mask(url)!r} is not a SQLAlchemy database URL; write it as {URL_FORM}"
        ) from None
    path = _sqlite_path(parsed)
    if path is not None:
        _check_sqlite_file(path, mask(parsed))
    options: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        # Without one, a firewalled host hangs the run for minutes before failing.
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        engine = sa.create_engine(parsed, **options)
    except (sa.exc.NoSuchModuleError, ImportError) as exc:
        raise RatingsDatabaseError(
            f"cannot open {mask(parsed)}: {_scrub(str(exc), parsed)}. Install the driver (for "
            f"PostgreSQL: pip install 'psycopg[binary]') and write the URL as {URL_FORM}"
        ) from None
    try:
        yield engine
    except (sa.exc.SQLAlchemyError, sqlite3.Error) as exc:
        # Raised outside `except`, so the driver's traceback does not come along.
        failure = _explain(exc, parsed, path, writing)
    else:
        failure = None
    finally:
        engine.dispose()
    if failure is not None:
        raise failure from None  # and not shown as raised "during handling" of the original


def check(engine: Engine, mapping: RatingsMapping) -> dict[str, dict[str, Any]]:
    """Each mapped table's column types, or RatingsSchemaError listing everything missing."""
    inspector = sa.inspect(engine)
    tables = inspector.get_table_names()
    problems, found = [], {}
    for table_field, column_fields in LAYOUT.items():
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
            f"the ratings database {mask(engine.url)} does not match the mapping:\n  - "
            + "\n  - ".join(problems)
        )
    return found


def _hint(name: str, present: list[str], what: str) -> str:
    listed = f"{what} there: {', '.join(sorted(present)) or 'none'}"
    close = difflib.get_close_matches(name, present, n=1)
    return f" (did you mean {close[0]!r}? {listed})" if close else f" ({listed})"


def _sqlite_path(parsed: URL) -> Path | None:
    """The file a SQLite URL opens (plain or `file:` URI form); None for memory and others."""
    if parsed.get_backend_name() != "sqlite":
        return None
    name = parsed.database or ""
    if name.startswith("file:"):
        if parsed.query.get("mode") == "memory":
            return None
        name = name.removeprefix("file:").split("?")[0].removeprefix("//localhost")
    return None if name in ("", ":memory:") else Path(name)


def _check_sqlite_file(path: Path, where: str) -> None:
    """Refuse what SQLite would not report well: connecting to a wrong path creates an empty
    database there, and a non-database file fails only at the first query."""
    fix = f"set ratings_url to the chat UI's database file ({URL_FORM})"
    try:
        info = path.stat()
    except FileNotFoundError:
        raise RatingsDatabaseError(
            f"no SQLite database at {path}: no such file ({where}); {fix}"
        ) from None
    except OSError as exc:
        raise RatingsDatabaseError(
            f"cannot see {path} ({where}): {exc.strerror}; make it and its folders readable "
            "by the user running nightshift"
        ) from None
    if stat.S_ISDIR(info.st_mode):
        raise RatingsDatabaseError(f"{path} is a folder, not a SQLite database ({where}); {fix}")
    if not stat.S_ISREG(info.st_mode):
        raise RatingsDatabaseError(f"{path} is not a regular file ({where}); {fix}")
    if info.st_size == 0:
        raise RatingsDatabaseError(f"{path} is empty (0 bytes), not a ratings database; {fix}")
    try:
        with path.open("rb") as fh:
            head = fh.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise RatingsDatabaseError(
            f"cannot read {path} ({where}): {exc.strerror}; make it readable by the user "
            "running nightshift"
        ) from None
    if head != _SQLITE_MAGIC:
        raise RatingsDatabaseError(
            f"{path} is not a SQLite database (file is not a database: it lacks the SQLite "
            f"header); {fix}"
        )


def _scrub(said: str, parsed: URL) -> str:
    """A driver message with the URL's password removed, should the driver have echoed it."""
    password = parsed.password
    if password:
        for form in {str(password), quote(str(password), safe="")}:
            said = said.replace(form, "***")
    return mask(said)


def _explain(exc: BaseException, parsed: URL, path: Path | None, writing: bool) -> Exception:
    """One RatingsDatabaseError for a driver failure: what went wrong and what to do."""
    orig = getattr(exc, "orig", None) or exc
    said = _scrub(" ".join(str(orig).split())[:400], parsed)
    low = said.lower()
    where = mask(parsed)
    doing = "marking ratings exported in" if writing else "reading"

    def has(*needles: str) -> bool:
        return any(n in low for n in needles)

    if has("file is not a database", "file is encrypted"):
        fix = f"set ratings_url to the chat UI's database file ({URL_FORM})"
        return RatingsDatabaseError(f"{where} is not a SQLite database ({said}); {fix}")
    if has("malformed", "corrupt"):
        return RatingsDatabaseError(
            f"{where} is corrupt ({said}){_truncation(path)}: it may be truncated or a partial "
            "copy. Restore it from a backup, or recover its rows with "
            "`sqlite3 BROKEN.sqlite .recover | sqlite3 RECOVERED.sqlite` and point ratings_url "
            "at the result"
        )
    if has("readonly database", "read-only transaction") or (
        writing and has("unable to open database file")
    ):
        fix = (
            f"make {path} and its folder writable by the user running nightshift (SQLite "
            "writes a journal beside the file), and drop any mode=ro from the URL"
            if path is not None
            else "point ratings_url at the primary server, with a user allowed to UPDATE"
        )
        return RatingsDatabaseError(
            f"cannot mark ratings exported: {where} is read-only ({said}); {fix}. Nothing "
            "was marked"
        )
    if has("unable to open database file"):
        return RatingsDatabaseError(
            f"cannot open {where} ({said}); make the file and its folder readable (and, for a "
            "WAL database, the folder writable) by the user running nightshift"
        )
    if has("database is locked", "database is busy"):
        return RatingsDatabaseError(
            f"{where} is locked by another program ({said}); try again once it has finished"
        )
    if has("disk is full", "no space left"):
        return RatingsDatabaseError(f"the disk holding {where} is full ({said}); free space")
    if has("authentication failed", "no password supplied") or (
        has('role "') and has("does not exist")
    ):
        return RatingsDatabaseError(
            f"the server refused the login for {where} ({said}); check the user and password "
            "in ratings_url"
        )
    if has('database "') and has("does not exist"):
        return RatingsDatabaseError(
            f"{where} names a database the server does not have ({said}); create it or fix "
            "the database name in ratings_url"
        )
    if has("permission denied", "must be owner"):
        grant = "SELECT, UPDATE" if writing else "SELECT"
        return RatingsDatabaseError(
            f"the user in {where} may not do this ({said}); GRANT {grant} on the ratings "
            "tables to it, or use a user that may"
        )
    if has(
        "connection refused",
        "could not connect",
        "connection failed",
        "timeout expired",
        "could not translate host name",
        "name or service not known",
        "no route to host",
        "server closed the connection",
        "connection timed out",
    ):
        return RatingsDatabaseError(
            f"cannot reach the database server of {where} ({said}); start the server, or fix "
            "the host and port in ratings_url"
        )
    if has("operator does not exist", "cannot cast", "invalid input syntax"):
        return RatingsSchemaError(
            f"{where} stores ids of different types in columns the reader compares ({said}); "
            "map columns that hold the same kind of id (all integers or all text)"
        )
    if has("does not exist", "no such table", "no such column"):
        return RatingsSchemaError(
            f"{where} lacks a table or column the mapping names ({said}); check it with "
            "check_schema and set the RatingsMapping field to the name the database uses"
        )
    return RatingsDatabaseError(f"{doing} {where} failed: {said}")


def _truncation(path: Path | None) -> str:
    """', shorter than its header says' where a SQLite file lost its tail, else ''."""
    if path is None:
        return ""
    try:
        with path.open("rb") as fh:
            head = fh.read(100)
        size = path.stat().st_size
    except OSError:
        return ""
    if len(head) < 100:
        return f", {size} bytes, shorter than a SQLite header"
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    pages = int.from_bytes(head[28:32], "big")
    # The page count is only valid when the change counter matches its version stamp.
    valid = head[24:28] == head[92:96] and pages > 0
    if valid and size < page * pages:
        return f", {size:,} bytes where its header says {page * pages:,}"
    return ""
