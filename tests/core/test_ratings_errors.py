"""Every database failure is one RatingsDatabaseError naming the URL (password masked), what is
wrong and the fix; never a raw SQLAlchemy traceback, never an empty database created."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import tempfile
import traceback
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.ratings import (
    RatingsDatabaseError,
    RatingsError,
    RatingsMapping,
    RatingsSchemaError,
    check_schema,
    mark_exported,
    read_rated_conversations,
)
from pipeline.sample import SampleSummary
from tests.core.ratings_dbs import fresh_postgres

REPO = Path(__file__).resolve().parents[2]
SECRET = "hunter2-s3cret"
NOBODY = 65534  # the unprivileged uid and gid a root test run writes as


@pytest.fixture
def db(sample: SampleSummary, tmp_path: Path) -> Path:
    return Path(shutil.copy(sample.ratings_db, tmp_path / "feedback.sqlite"))


def url(path: Path | str) -> str:
    return f"sqlite:///{path}"


def unexported(path: Path) -> int:
    with closing(sqlite3.connect(path)) as con:
        return con.execute("SELECT count(*) FROM ratings WHERE exported = 0").fetchone()[0]


def failure(call: Callable[[], object], *needles: str) -> str:
    """The message of the RatingsDatabaseError `call` raises; it holds every needle, and its
    traceback carries no SQLAlchemy or driver exception."""
    with pytest.raises(RatingsDatabaseError) as err:
        call()
    message = str(err.value)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    shown = "".join(traceback.format_exception(err.value))
    assert "sqlalchemy.exc" not in shown and "sqlite3." not in shown and "psycopg." not in shown
    assert isinstance(err.value, RatingsError) and isinstance(err.value, ValueError)
    return message


def every_call(target: str) -> list[Callable[[], object]]:
    return [
        lambda: read_rated_conversations(target),
        lambda: check_schema(target),
        lambda: mark_exported(target, [1]),
    ]


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite"
    path.write_text("these are my notes, not a database\n" * 50)
    for call in every_call(url(path)):
        failure(call, str(path), "is not a SQLite database", "set ratings_url")
    assert path.read_text().startswith("these are my notes")


def test_sqlite_header_over_garbage(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sqlite"
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    message = failure(lambda: read_rated_conversations(url(path)), str(path))
    assert "is not a SQLite database" in message or "is corrupt" in message


def test_truncated_database(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    for call in every_call(url(db)):
        failure(
            call,
            str(db),
            "is corrupt",
            f"{len(data) // 2:,} bytes where its header says {len(data):,}",
            ".recover",
        )


def test_malformed_page(db: Path) -> None:
    """Intact length, one page overwritten: SQLite's 'malformed' becomes the same advice."""
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page * 3 : page * 6] = b"\xa5" * (page * 3)
    db.write_bytes(bytes(data))
    failure(lambda: read_rated_conversations(url(db)), str(db), "is corrupt", ".recover")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite"
    path.touch()
    failure(lambda: read_rated_conversations(url(path)), str(path), "is empty (0 bytes)")


def test_missing_file_is_never_created(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.sqlite", tmp_path / "no" / "such" / "dir" / "f.sqlite"):
        for call in every_call(url(path)):
            failure(call, f"no SQLite database at {path}", "set ratings_url")
        assert not path.exists() and not path.parent.exists() or path.parent == tmp_path
    uri = f"sqlite:///file:{tmp_path / 'missing.sqlite'}?mode=rwc&uri=true"
    failure(lambda: read_rated_conversations(uri), "no SQLite database at")
    assert not (tmp_path / "missing.sqlite").exists()


def test_folder_instead_of_file(tmp_path: Path) -> None:
    failure(lambda: check_schema(url(tmp_path)), str(tmp_path), "is a folder")


def test_read_only_uri_when_marking(db: Path) -> None:
    """mode=ro: reading works, marking says read-only and changes nothing."""
    ro = f"sqlite:///file:{db}?mode=ro&uri=true"
    _, report = read_rated_conversations(ro)
    before = unexported(db)
    message = failure(
        lambda: mark_exported(ro, report.rating_ids), "is read-only", "writable", "mode=ro"
    )
    assert "Nothing was marked" in message
    assert unexported(db) == before


def mark_as_unprivileged(target: str, ids: list) -> str:
    """mark_exported where file permissions apply (root ignores them): as `nobody` in a
    forked child when running as root; its message, or "marked"."""

    def attempt() -> str:
        try:
            mark_exported(target, ids)
            return "marked"
        except RatingsDatabaseError as exc:
            return str(exc)

    if os.geteuid() != 0:
        return attempt()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child never returns to pytest
        said = "child failed"
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            said = attempt()
        except BaseException as exc:  # reported to the parent, which fails the test
            said = f"child failed: {exc!r}"
        finally:
            os.write(write, said.encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        said = pipe.read().decode()
    os.waitpid(child, 0)
    return said


@pytest.mark.parametrize("what", ["file", "folder"])
def test_read_only_file_or_folder_when_marking(db: Path, what: str) -> None:
    # Not under tmp_path: that is 0700, so the unprivileged user could not enter it.
    root = Path(tempfile.mkdtemp(prefix="nightshift-ro-"))
    try:
        os.chmod(root, 0o755)
        folder = root / "chat"
        folder.mkdir()
        path = Path(shutil.copy(db, folder / "feedback.sqlite"))
        owner = NOBODY if os.geteuid() == 0 else os.geteuid()
        os.chown(folder, owner, -1)
        os.chown(path, owner, -1)
        _, report = read_rated_conversations(url(path))
        before = unexported(path)
        if what == "file":
            path.chmod(0o444)
        else:
            folder.chmod(0o555)  # SQLite cannot write its journal beside the file
        said = mark_as_unprivileged(url(path), report.rating_ids)
        assert "is read-only" in said and str(path) in said and "writable" in said, said
        assert unexported(path) == before
    finally:
        (root / "chat").chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


def test_not_a_url_masks_the_password() -> None:
    for bad in (f"bob:{SECRET}@localhost/ratings", f"postgresql://bob:{SECRET}@host:port/db"):
        message = failure(lambda bad=bad: read_rated_conversations(bad), "postgresql+psycopg://")
        assert SECRET not in message and "***" in message


def test_missing_driver_masks_the_password() -> None:
    target = f"postgresql+nosuchdriver://bob:{SECRET}@127.0.0.1/ratings"
    message = failure(lambda: read_rated_conversations(target), "Install the driver")
    assert SECRET not in message and "bob:***@" in message


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_postgres() -> None:
    target = f"postgresql+psycopg://bob:{SECRET}@127.0.0.1:{free_port()}/ratings"
    for call in every_call(target):
        message = failure(call, "cannot reach the database server", "start the server", "port")
        assert SECRET not in message and "bob:***@127.0.0.1" in message


def pg_sample(db: Path, postgres_url: str) -> str:
    from tests.core.test_ratings import pg_copy

    name = sa.make_url(fresh_postgres(postgres_url)).database
    with sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT").connect() as admin:
        admin.execute(sa.text(f"DROP DATABASE {name}"))
    return pg_copy(db, postgres_url, name)


def with_password(target: str, user: str = "postgres") -> str:
    """The URL with a password (the test server trusts loopback, so it is never checked)."""
    return sa.make_url(target).set(username=user, password=SECRET).render_as_string(False)


def test_postgres_missing_database(postgres_url: str) -> None:
    target = with_password(
        sa.make_url(postgres_url).set(database="no_such_db").render_as_string(False)
    )
    message = failure(lambda: check_schema(target), "no_such_db", "create it or fix")
    assert SECRET not in message and "***" in message


def test_postgres_missing_table_and_column(db: Path, postgres_url: str) -> None:
    target = with_password(pg_sample(db, postgres_url))
    with pytest.raises(RatingsSchemaError) as err:
        read_rated_conversations(target, RatingsMapping(ratings="votes", message_role="speaker"))
    message = str(err.value)
    assert (
        "RatingsMapping(ratings=...)" in message and "RatingsMapping(message_role=...)" in message
    )
    assert SECRET not in message and "postgres:***@" in message


def test_postgres_read_only_when_marking(db: Path, postgres_url: str) -> None:
    target = pg_sample(db, postgres_url)
    name = sa.make_url(target).database
    _, report = read_rated_conversations(target)
    with sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT").connect() as admin:
        admin.execute(sa.text(f"ALTER DATABASE {name} SET default_transaction_read_only = on"))
    failure(lambda: mark_exported(target, report.rating_ids), "is read-only", "primary server")
    assert read_rated_conversations(target)[1].rating_ids == report.rating_ids


def test_postgres_user_without_update(db: Path, postgres_url: str) -> None:
    target = pg_sample(db, postgres_url)
    engine = sa.create_engine(target, isolation_level="AUTOCOMMIT")
    with engine.connect() as admin:
        admin.execute(sa.text("DROP ROLE IF EXISTS reader"))
        admin.execute(sa.text("CREATE ROLE reader LOGIN"))
        admin.execute(sa.text("GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader"))
    engine.dispose()
    reader = with_password(target, "reader")
    _, report = read_rated_conversations(reader)
    message = failure(lambda: mark_exported(reader, report.rating_ids), "GRANT SELECT, UPDATE")
    assert SECRET not in message and "reader:***@" in message
    assert read_rated_conversations(target)[1].rating_ids == report.rating_ids
