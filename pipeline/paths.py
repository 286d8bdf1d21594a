"""Where nightshift keeps things: the project home and the build cache."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.disk import disk_full_guard


def nightshift_home() -> Path:
    """Runs, artifacts and the registry live here (`NIGHTSHIFT_HOME`, default ~/.nightshift)."""
    return Path(os.environ.get("NIGHTSHIFT_HOME", "~/.nightshift")).expanduser().resolve()


def cache_root() -> Path:
    """Rebuildable things (the llama.cpp build) live here, shared by every checkout."""
    default = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "nightshift"
    return Path(os.environ.get("NIGHTSHIFT_CACHE", default)).expanduser().resolve()


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling directory that replaces `target` only if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide the result from other users and containers
    try:
        with disk_full_guard(target, partial=[tmp]):  # ENOSPC: "disk full", path, free space
            yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so readers see the old or the new content, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with disk_full_guard(path, partial=[tmp]):
        tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
