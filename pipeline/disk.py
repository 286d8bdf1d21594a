"""A full disk, reported as one: the path being written and the space left, never a bare
"disk I/O error" or a tool's last lines.

Every large write (artifact versions, training checkpoints, GGUF conversion and quantization,
copies of session logs) runs under `disk_full_guard`: on ENOSPC it removes the partial files it
was given, so the run has room to record its own failure, and raises `DiskFullError`.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# How the tools we run (llama.cpp, the converter, SQLite) word a full disk in their output.
FULL_TEXTS = ("no space left on device", "disk quota exceeded", "database or disk is full")
# Some writers lose the errno (mlx: "[write] Unable to write N bytes to file."): a write that
# failed with less than this free on its filesystem failed for want of space.
LOW_WATER_BYTES = 1 << 20


class DiskFullError(OSError):
    """A write failed because its filesystem is full; the message names the path and free space."""

    def __init__(self, path: Path, detail: str = "", free_at_failure: int | None = None) -> None:
        self.path = Path(path)
        self.detail = detail
        self.free_at_failure = free_at_failure
        self.free_bytes = free_bytes(self.path)
        when = "" if free_at_failure is None else f"{format_bytes(free_at_failure)} free then, "
        message = (
            f"disk full: no space left writing {self.path} ({when}"
            f"{format_bytes(self.free_bytes)} free now); "
            "free some space (old artifact versions, checkpoints) and run again"
        )
        super().__init__(errno.ENOSPC, message + (f"\n{detail}" if detail else ""))

    def __str__(self) -> str:
        return self.strerror or ""

    def __reduce__(self):  # pickles (multiprocessing) rebuild it from its own arguments
        return type(self), (self.path, self.detail, self.free_at_failure)


def free_bytes(path: Path) -> int | None:
    """Bytes available to us on the filesystem holding `path` (its nearest existing parent)."""
    for candidate in (Path(path), *Path(path).parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def format_bytes(n: int | None) -> str:
    if n is None:
        return "unknown space"
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} TB"  # unreachable: the loop returns at GB


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC/EDQUOT anywhere in the exception's chain, or a tool's own words for it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in FULL_ERRNOS:
            return True
        if any(text in str(current).lower() for text in FULL_TEXTS):
            return True
        current = current.__cause__ or current.__context__
    return False


def remove_partial(paths: Iterable[Path]) -> None:
    """Delete what a failed write left behind; the space is what the failure report needs."""
    for path in paths:
        path = Path(path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


@contextmanager
def disk_full_guard(path: Path, partial: Iterable[Path] = ()) -> Iterator[None]:
    """Run a block that writes under `path`; a full disk becomes `DiskFullError` naming `path`,
    after the `partial` files are removed. Any other error passes through unchanged."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as exc:
        free = free_bytes(path)
        if not (is_disk_full(exc) or (free is not None and free < LOW_WATER_BYTES)):
            raise
        remove_partial(partial)
        raise DiskFullError(path, _first_line(exc), free_at_failure=free) from exc


def _first_line(exc: BaseException) -> str:
    """The original error, short: a tool's whole output would bury the message."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    hits = [line for line in lines if any(t in line.lower() for t in FULL_TEXTS)]
    return f"({type(exc).__name__}: {(hits or lines or [''])[0].strip()[:300]})"
