"""A real, throwaway PostgreSQL server for the test session: `postgres_url` yields its URL.

It runs from a temp dir on a free 127.0.0.1 port with its socket inside that dir. PostgreSQL
refuses to run as root, so under root (CI) the server runs as the `postgres` system user, or
`nobody` where that is absent. Register with `pytest_plugins = ["tests.postgres"]` in
tests/conftest.py, or import the fixture into a test module.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

DATABASE = "nightshift_test"
INSTALL = "apt-get install postgresql (or set PATH to a PostgreSQL bin directory)"


def postgres_bin() -> Path | None:
    """The directory holding initdb and pg_ctl: on PATH, else the newest Debian install."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version)
    return Path(versions[-1]) if versions else None


def _version(path: str) -> tuple[int, ...]:
    return tuple(int(p) for p in Path(path).parent.name.split(".") if p.isdigit())


def _server_user() -> str | None:
    """None means run as ourselves; root must hand the server to an unprivileged account."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    pytest.fail("running as root with neither a 'postgres' nor a 'nobody' user: useradd postgres")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args: list[str], user: str | None, cwd: Path) -> None:
    # Drop root's groups too, not just the uid.
    ids = {} if user is None else {"group": pwd.getpwnam(user).pw_gid, "extra_groups": []}
    done = subprocess.run(
        args, user=user, cwd=cwd, capture_output=True, text=True, timeout=120, **ids
    )
    if done.returncode != 0:
        log = cwd / "server.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        pytest.fail(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}{tail}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    bindir = postgres_bin()
    if bindir is None:
        pytest.fail(f"PostgreSQL server binaries (initdb, pg_ctl) not found; {INSTALL}")
    user = _server_user()
    # Not under pytest's tmp_path: that is 0700 root-owned, so the server user could not enter.
    root = Path(tempfile.mkdtemp(prefix="nightshift-pg-"))
    data, port = root / "data", _free_port()
    if user is not None:
        shutil.chown(root, user)
    try:
        # trust auth is safe here: the server listens on loopback and a private socket dir.
        _run(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
            + ["-E", "UTF8", "--no-sync"],
            user,
            root,
        )
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {port}\n"
                f"unix_socket_directories = '{root}'\nfsync = off\n"
            )
        _run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log")]
            + ["-w", "-t", "60", "start"],
            user,
            root,
        )
        try:
            admin = sa.create_engine(
                f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres",
                isolation_level="AUTOCOMMIT",
            )
            with admin.connect() as db:
                db.execute(sa.text(f"CREATE DATABASE {DATABASE}"))
            admin.dispose()
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/{DATABASE}"
        finally:
            _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], user, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
