"""The artifact store: files at fixed, versioned paths; assets pass paths and manifests.

Layout: `<root>/<asset>/<version>/...` plus `<root>/<asset>/current.json` naming the version in
use. A version directory appears whole (atomic rename) and `current.json` moves only after,
so a failed run leaves the previous version current and untouched. A full disk fails the write
with `DiskFullError` (path, free space) after the half-written version is removed (atomic_dir).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline.paths import atomic_dir, atomic_write_text


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_manifest(root: Path) -> dict[str, dict[str, int | str]]:
    """Size and sha256 of every file under `root`, by relative path."""
    return {
        str(p.relative_to(root)): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@dataclass(frozen=True)
class ArtifactStore:
    root: Path

    def asset_dir(self, asset: str) -> Path:
        return self.root / asset

    def version_dir(self, asset: str, version: str) -> Path:
        return self.asset_dir(asset) / version

    @contextmanager
    def write_version(self, asset: str, version: str) -> Iterator[Path]:
        """A scratch directory that becomes `<asset>/<version>` only if the block succeeds."""
        with atomic_dir(self.version_dir(asset, version)) as tmp:
            yield tmp

    def set_current(self, asset: str, version: str, **extra: object) -> dict:
        target = self.version_dir(asset, version)
        if not target.is_dir():
            raise FileNotFoundError(f"{target} does not exist; write the version first")
        record = {"version": version, "path": str(target), "updated": time.time(), **extra}
        atomic_write_text(self.asset_dir(asset) / "current.json", json.dumps(record, indent=2))
        return record

    def current(self, asset: str) -> Path | None:
        pointer = self.asset_dir(asset) / "current.json"
        if not pointer.is_file():
            return None
        version = json.loads(pointer.read_text())["version"]
        path = self.version_dir(asset, version)
        return path if path.is_dir() else None

    def assets(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "current.json").is_file())
