"""Safe access to a projects folder: what is listed, opened and copied, and why not.

Only regular files are read. A symlink to a regular file is followed wherever it points (the
user made it; Claude Code never does); a dangling link, a self-link or a loop is a counted
skip. Folder symlinks below the projects folder are never followed: a linked folder can
alias another project (read twice) or loop back, and could pull an unrelated tree into the
store. Every file or folder not read is counted with its reason and named in the report.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pipeline.disk import disk_full_guard
from pipeline.sessions_model import MAX_PROBLEMS

# reason, path, detail: ReadReport.skip_path has this shape
Skip = Callable[[str, Path, str], None]

_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a folder",
}
CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One name in a folder, classified without opening it."""

    path: Path
    link: bool  # a symlink (what it points at decides `kind`)
    kind: str  # "file", "dir" or "other"
    st: os.stat_result  # of the target


def _why(exc: OSError) -> tuple[str, str]:
    if exc.errno == errno.ELOOP:
        return "symlink_loop", "the link points back at itself"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission_denied", exc.strerror or "permission denied"
    if exc.errno == errno.ENOENT:
        return "vanished", "missing, or removed while being read"
    if exc.errno == errno.ENOTDIR:
        return "vanished", "not a folder"
    return "unreadable_file", exc.strerror or str(exc)


def classify(path: Path) -> Entry | tuple[str, str]:
    """What `path` is (an Entry), or (reason, detail) when it cannot even be looked at."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return _why(exc)
    link = stat.S_ISLNK(st.st_mode)
    if link:
        try:
            st = os.stat(path)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return "symlink_dangling", "the link's target is missing"
            return _why(exc)
    if stat.S_ISREG(st.st_mode):
        return Entry(path, link, "file", st)
    return Entry(path, link, "dir" if stat.S_ISDIR(st.st_mode) else "other", st)


def regular_file(path: Path, skip: Skip) -> Entry | None:
    """The entry of a regular file (or a link to one); anything else is skipped with a reason."""
    found = classify(path)
    if isinstance(found, tuple):
        skip(found[0], path, found[1])
        return None
    if found.kind != "file":
        skip("not_a_regular_file", path, _kind(found))
        return None
    return found


def _kind(entry: Entry) -> str:
    return _KINDS.get(stat.S_IFMT(entry.st.st_mode), "not a file")


def list_folder(folder: Path, skip: Skip) -> list[os.DirEntry[str]] | None:
    """A folder's entries by name; an unreadable folder is reported, never passed over."""
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as exc:
        reason, detail = _why(exc)
        skip("unreadable_folder" if reason != "symlink_loop" else reason, folder, detail)
        return None


def real_folder(path: Path, skip: Skip) -> bool:
    """Whether to walk into `path`: real folders only. A linked folder, a dangling link and
    a loop are reported; a file is not a folder, and not reported here."""
    found = classify(path)
    if isinstance(found, tuple):
        skip(found[0], path, found[1])
        return False
    if found.kind == "dir" and found.link:
        skip("symlink_to_folder", path, "linked folders are not followed")
        return False
    return found.kind == "dir"


def open_regular(path: Path, skip: Skip) -> BinaryIO | None:
    """Open for reading only if it is a regular file: O_NONBLOCK so a FIFO that appears
    after listing can never block, and the open file is checked before any read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENOENT and os.path.islink(path):
            skip("symlink_dangling", path, "the link's target is missing")
        elif exc.errno == errno.ENXIO:
            skip("not_a_regular_file", path, "a socket")
        else:
            reason, detail = _why(exc)
            skip(reason, path, detail)
        return None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        skip("not_a_regular_file", path, _KINDS.get(stat.S_IFMT(st.st_mode), "not a file"))
        return None
    return os.fdopen(fd, "rb")


def lines(fh: BinaryIO, limit: int) -> Iterator[bytes | None]:
    """The lines of a file, split on b"\\n" only; None for a line longer than `limit` bytes,
    which is passed over without holding it in memory."""
    readline = fh.readline
    size = limit + 1 if limit > 0 else -1
    while True:
        raw = readline(size)
        if not raw:
            return
        if size > 0 and len(raw) == size and raw[-1] != 10:  # 10: b"\n"
            while (rest := readline(CHUNK)) and rest[-1] != 10:
                pass
            yield None
            continue
        yield raw


def read_text(path: Path, skip: Skip, limit: int) -> str | None:
    """A small side file (meta.json, a persisted tool output), or None with a counted reason."""
    fh = open_regular(path, skip)
    if fh is None:
        return None
    with fh:
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            reason, detail = _why(exc)
            skip(reason, path, detail)
            return None
    if len(data) > limit:
        skip("file_too_large", path, f"over {limit} bytes")
        return None
    return data.decode("utf-8", errors="replace")


def walk_files(root: Path, skip: Skip) -> Iterator[Entry]:
    """Every regular file below `root` (links to regular files included), real folders only."""
    pending = [root]
    while pending:
        folder = pending.pop()
        below = []
        for entry in list_folder(folder, skip) or ():
            path = Path(entry.path)
            found = classify(path)
            if isinstance(found, tuple):
                skip(found[0], path, found[1])
            elif found.kind == "dir":
                if found.link:
                    skip("symlink_to_folder", path, "linked folders are not followed")
                else:
                    below.append(path)
            elif found.kind == "file":
                yield found
            else:
                skip("not_a_regular_file", path, _kind(found))
        pending.extend(reversed(below))


def ingest_copy(projects_dir: Path, dest: Path) -> dict:
    """Copy new or changed files into `dest` so history outlives Claude Code's cleanup.

    Unchanged means same size and mtime, or else same bytes; nothing in `dest` is deleted, and
    each file lands under a temporary name first so readers never see half of it. Files and
    folders that cannot be copied are counted under "skipped" and named under "problems"
    (both keys present only when something was skipped).
    """
    projects_dir, dest = Path(projects_dir), Path(dest)
    skipped: dict[str, int] = {}
    problems: list[dict[str, str]] = []

    def skip(reason: str, path: Path, detail: str = "") -> None:
        skipped[reason] = skipped.get(reason, 0) + 1
        if len(problems) < MAX_PROBLEMS:
            problems.append({"path": str(path), "reason": reason, "detail": detail})

    copied = unchanged = nbytes = 0
    for found in walk_files(projects_dir, skip):
        src, st = found.path, found.st
        target = dest / src.relative_to(projects_dir)
        same = _unchanged(src, target, st, skip)
        if same:
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # next time: no read
            unchanged += 1
        elif same is False and _copy(src, target, skip):
            copied += 1
            nbytes += st.st_size
    out: dict = {"copied": copied, "unchanged": unchanged, "bytes": nbytes}
    if skipped:
        out |= {"skipped": dict(sorted(skipped.items())), "problems": problems}
    return out


def _unchanged(src: Path, target: Path, st: os.stat_result, skip: Skip) -> bool | None:
    """Whether `target` already holds `src`; None when `src` cannot be read (counted)."""
    try:
        old = os.stat(target)
    except OSError:
        return False
    if not stat.S_ISREG(old.st_mode) or old.st_size != st.st_size:
        return False
    if old.st_mtime_ns == st.st_mtime_ns:
        return True
    fh = open_regular(src, skip)
    if fh is None:
        return None
    with fh, open(target, "rb") as mine:
        while True:
            a, b = fh.read(CHUNK), mine.read(CHUNK)
            if a != b:
                return False
            if not a:
                return True


def _copy(src: Path, target: Path, skip: Skip) -> bool:
    """Copy through a temporary name; a read error skips the file, a write error (a full
    store) is raised: the store must not silently fall behind."""
    fh = open_regular(src, skip)
    if fh is None:
        return False
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with fh, disk_full_guard(target, [tmp]):
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as out:
                while True:
                    try:
                        chunk = fh.read(CHUNK)
                    except OSError as exc:
                        reason, detail = _why(exc)
                        skip(reason, src, detail)
                        return False
                    if not chunk:
                        break
                    out.write(chunk)
            st = os.fstat(fh.fileno())
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(tmp, target)
        return True
    finally:
        tmp.unlink(missing_ok=True)
