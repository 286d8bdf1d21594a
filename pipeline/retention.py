"""Retention for the artifact store: old versions and stale scratch go, what is in use stays.

A version is kept when it is current, referenced by a registry manifest, among the newest
`keep_last` others, and younger than `max_age_days`; anything else is removed. Scratch left by
killed runs (`.<name>.*` from atomic writes, `<version>.work` checkpoints) goes once it is older
than `max_age_days`, so a run in progress never loses its scratch.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.artifacts import ArtifactStore
from pipeline.registry_fs import read_bounded

# The assets that write a new version per input; per-day folders of the data assets are data,
# not versions, and base_model versions are rebuilt only when the corpus changes.
VERSIONED_ASSETS = (
    "validated_splits",
    "lora_adapter",
    "fused_model",
    "gguf_quants",
    "base_model_gguf",
    "eval_report",  # registry versions keep their own copy of the report
)
REGISTRY = "registry"
DAY = 86400.0


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int = 3  # earlier versions kept besides the current one, newest first
    max_age_days: float | None = 30.0  # older non-current versions go; None keeps by count only

    def __post_init__(self) -> None:
        if self.keep_last < 0:
            raise ValueError("keep_last must be 0 or more (the current version is always kept)")
        if self.max_age_days is not None and self.max_age_days <= 0:
            raise ValueError("max_age_days must be positive, or None to keep by count only")


@dataclass
class RetentionReport:
    """What a sweep removed and kept, by asset, with the reason for each removal."""

    removed: dict[str, dict[str, str]] = field(default_factory=dict)  # asset -> name -> reason
    kept: dict[str, list[str]] = field(default_factory=dict)
    protected: list[str] = field(default_factory=list)  # kept because a manifest names them
    freed_bytes: int = 0
    dry_run: bool = False

    def to_json(self) -> dict:
        return {
            "removed": self.removed,
            "kept": self.kept,
            "protected": self.protected,
            "freed_bytes": self.freed_bytes,
            "dry_run": self.dry_run,
        }


def protected_paths(store_root: Path) -> set[Path]:
    """Every path a registry manifest lists under "sources" (any nesting of lists and dicts)."""
    found: set[Path] = set()
    registry = store_root / REGISTRY
    if not registry.is_dir():
        return found
    for manifest in registry.rglob("manifest.json"):
        try:
            # Regular files only, bounded: a FIFO or a link to /dev/zero must not hang the sweep.
            sources = json.loads(read_bounded(manifest.parent, manifest.name)).get("sources")
        except (OSError, ValueError, AttributeError, RecursionError):
            continue  # a half-written or foreign file protects nothing and breaks nothing
        found |= {Path(p).expanduser().resolve() for p in _strings(sources)}
    return found


def sweep(
    store_root: Path,
    policy: RetentionPolicy = RetentionPolicy(),
    assets: tuple[str, ...] = VERSIONED_ASSETS,
    now: float | None = None,
    dry_run: bool = False,
) -> RetentionReport:
    """Remove what the policy does not keep, asset by asset; `dry_run` only reports."""
    store = ArtifactStore(store_root)
    now = time.time() if now is None else now
    protected = protected_paths(store_root)
    report = RetentionReport(dry_run=dry_run)
    for asset in assets:
        folder = store.asset_dir(asset)
        if not folder.is_dir():
            continue
        current = store.current(asset)
        versions, scratch = _entries(folder)
        doomed: dict[str, str] = {}
        others = [v for v in versions if current is None or v.name != current.name]
        for rank, version in enumerate(others):  # newest first
            if _is_protected(version, protected):
                report.protected.append(str(version))
            elif rank >= policy.keep_last:
                doomed[version.name] = f"beyond the newest {policy.keep_last}"
            elif _age_days(version, now) > (policy.max_age_days or float("inf")):
                doomed[version.name] = f"older than {policy.max_age_days:g} days"
        for path in scratch:
            if _age_days(path, now) > (policy.max_age_days or 1.0):
                doomed[path.name] = "stale scratch of an interrupted run"
        for name in doomed:
            report.freed_bytes += _size(folder / name)
            if not dry_run:
                _remove(folder / name)
        report.removed[asset] = doomed
        report.kept[asset] = [v.name for v in versions if v.name not in doomed]
    return report


def _entries(folder: Path) -> tuple[list[Path], list[Path]]:
    """Complete versions (newest first) and scratch entries of one asset's folder."""
    versions, scratch = [], []
    for entry in folder.iterdir():
        if entry.name.startswith(".") or entry.name.endswith(".work"):
            scratch.append(entry)
        elif entry.is_dir():
            versions.append(entry)
    versions.sort(key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
    return versions, scratch


def _is_protected(version: Path, protected: set[Path]) -> bool:
    root = version.resolve()
    return any(p == root or root in p.parents for p in protected)


def _age_days(path: Path, now: float) -> float:
    return (now - path.lstat().st_mtime) / DAY


def _size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
