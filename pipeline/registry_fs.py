"""How the registry touches its folder without being led outside it.

Below the registry root nothing is followed: every path component from the version folder down
is opened with O_NOFOLLOW relative to its parent's descriptor and must be a real folder, the
last a regular file (checked on the open descriptor, so a swap after the check is caught too).
A FIFO or device is refused unread (reading one would hang or never end), JSON files are read
with a size bound, the lock is opened without following or truncating, and temporary files are
created exclusively, so a planted symlink can neither be read through nor written through.
Errors are OSError subclasses carrying the message (RefusedPath) or the OS's own.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MAX_JSON = 16 << 20  # bytes; a registry JSON file larger than this is not one we wrote
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC  # a FIFO must not block open
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
SYMLINK = "a symbolic link (refused: it could point outside the registry)"


class RefusedPath(OSError):
    """A path component is a symlink, or not a folder or regular file where one must be."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where} is {what}")
        self.where, self.what = where, what

    def about(self, name: str) -> str:
        """The message for a caller reading `name`, naming it first."""
        return f"{name}: {self.what if self.where == name else self}"


_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO: reading it would hang"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
    (stat.S_ISSOCK, "a socket"),
)


def kind(mode: int) -> str:
    """What a non-regular file is, for a message."""
    if stat.S_ISLNK(mode):
        return SYMLINK
    for test, what in _KINDS:
        if test(mode):
            return f"not a regular file ({what})"
    return "not a regular file"


@contextmanager
def open_regular(root: Path, name: str) -> Iterator[tuple[int, os.stat_result]]:
    """A read descriptor of the regular file `root/name` and its stat, following no symlink
    below `root`; RefusedPath names the offending component (relative to `root`)."""
    parts = name.split("/")
    fds = [os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
    try:
        for i, part in enumerate(parts):
            last, where = i == len(parts) - 1, "/".join(parts[: i + 1])
            mode = os.lstat(part, dir_fd=fds[-1]).st_mode
            if not (stat.S_ISREG(mode) if last else stat.S_ISDIR(mode)):
                raise RefusedPath(where, kind(mode) if last else _not_folder(mode))
            try:
                fds.append(os.open(part, _FILE if last else _DIR, dir_fd=fds[-1]))
            except OSError as exc:  # swapped for a link or a non-folder since the lstat
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise RefusedPath(where, f"changed while being opened: {SYMLINK}") from None
                raise
        st = os.fstat(fds[-1])
        if not stat.S_ISREG(st.st_mode):
            raise RefusedPath(name, kind(st.st_mode))
        yield fds[-1], st
    finally:
        for fd in fds:
            os.close(fd)


def _not_folder(mode: int) -> str:
    return SYMLINK if stat.S_ISLNK(mode) else "not a folder"


def read_bounded(root: Path, name: str, limit: int = MAX_JSON) -> bytes:
    """The bytes of the regular file `root/name`; RefusedPath if it is larger than `limit`."""
    with open_regular(root, name) as (fd, st):
        if st.st_size > limit:
            raise RefusedPath(name, f"too large to be a registry file ({st.st_size:,} bytes)")
        chunks, size = [], 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # it grew since the fstat
                raise RefusedPath(name, "too large to be a registry file")
        return b"".join(chunks)


def sha256_regular(fd: int) -> str:
    digest = hashlib.sha256()
    while block := os.read(fd, 1 << 20):
        digest.update(block)
    return digest.hexdigest()


def entry_kind(root: Path, name: str) -> str | None:
    """None if `root/name` is a real folder, else what it is (a symlink is never followed)."""
    mode = os.lstat(root / name).st_mode
    return None if stat.S_ISDIR(mode) else _not_folder(mode)


def is_dir(path: Path) -> bool:
    """Whether `path` is a real folder (a link to one is not)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def is_file(path: Path) -> bool:
    """Whether `path` is a regular file (a link to one is not)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def remove(path: Path) -> None:
    """Delete `path` if present: a real folder's tree (rmtree follows no link inside it), or
    else the link or file itself, never what a link points to."""
    if is_dir(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def open_lock(root: Path) -> int:
    """A descriptor of `root/.lock`, created if absent; never follows a link nor truncates."""
    try:
        fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RefusedPath(".lock", f"{SYMLINK}; delete it") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RefusedPath(".lock", "not a regular file; delete it")
    return fd


def place(src: Path, dst: Path) -> None:
    """Hard-link `src` to `dst` where the filesystem allows (versions are never edited in
    place), else copy it."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not allowed
        shutil.copy2(src, dst)


def write_new(path: Path, data: bytes) -> None:
    """Create `path` afresh (a stale file or planted link of that name is removed, never
    followed) holding `data`, on disk before returning."""
    try:
        os.unlink(path)  # unlink removes a link itself, not its target
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        raise RefusedPath(path.name, "a folder; delete it") from None
    fd = os.open(path, _NEW, 0o644)
    try:
        with os.fdopen(fd, "wb", closefd=False) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fd)  # on disk before a rename makes it the file
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)
