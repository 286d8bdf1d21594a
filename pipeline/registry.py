"""The local model registry: numbered versions v1, v2, ... with manifests, and a champion.

Layout under `root` (the artifact store's `registry/`):

    v3/                 the version's files and manifest.json (sha256 of every file)
    champion.json       the version in use, the stack of earlier champions, a change log
    latest.json         what a client polls: the champion's files with size, sha256 and URL

A version directory appears whole (atomic rename); pointer files are replaced atomically, and
every change is made under a file lock, so a CLI rollback cannot interleave with a promotion.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.artifacts import sha256_file
from pipeline.paths import atomic_dir, atomic_write_text

MANIFEST = "manifest.json"
_VERSION = re.compile(r"^v(\d+)$")


class RegistryError(RuntimeError):
    """A registry operation was refused; the message says why and what to do instead."""


@dataclass(frozen=True)
class Registry:
    root: Path
    # latest.json URLs: `<base_url>/<version>/<file>` when served over HTTP, else file:// URIs.
    base_url: str | None = None

    def version_dir(self, version: str) -> Path:
        if not _VERSION.match(version):
            raise RegistryError(f"{version!r} is not a registry version (v1, v2, ...)")
        return self.root / version

    def list_versions(self) -> list[str]:
        """Complete versions, oldest first (half-written ones have no manifest yet)."""
        if not self.root.is_dir():
            return []
        found = [
            p.name
            for p in self.root.iterdir()
            if _VERSION.match(p.name) and (p / MANIFEST).is_file()
        ]
        return sorted(found, key=_number)

    def manifest(self, version: str) -> dict[str, Any]:
        path = self.version_dir(version) / MANIFEST
        if not path.is_file():
            raise RegistryError(
                f"no version {version} in {self.root}; see `nightshift models list`"
            )
        return json.loads(path.read_text())

    def register(
        self,
        files: Mapping[str, Path],
        *,
        base_model: str,
        data_version: str,
        code_version: str,
        config: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        gates: Mapping[str, bool | Mapping[str, Any]] | None = None,
        rating_ids: Sequence[int] = (),
    ) -> str:
        """Copy `files` (name in the version -> source) into a new version; return its name.

        Files are hard-linked where the filesystem allows (artifact versions are never edited in
        place), else copied. `gates` maps a gate to pass/fail or to a dict with `passed`.
        """
        for name, src in files.items():
            _check_name(name)
            if not Path(src).is_file():
                raise RegistryError(f"{name}: {src} is not a file")
        with self._locked():
            existing = [p.name for p in self.root.iterdir() if _VERSION.match(p.name)]
            version = f"v{max(map(_number, existing), default=0) + 1}"
            with atomic_dir(self.root / version) as tmp:
                for name, src in files.items():
                    _place(Path(src), tmp / name)
                gate_results = {k: _gate(v) for k, v in (gates or {}).items()}
                manifest = {
                    "version": version,
                    "created": _now(),
                    "base_model": base_model,
                    "data_version": data_version,
                    "code_version": code_version,
                    "config": dict(config or {}),
                    "metrics": dict(metrics or {}),
                    "gates": gate_results,
                    "gates_passed": all(g["passed"] for g in gate_results.values()),
                    "rating_ids": sorted({int(i) for i in rating_ids}),
                    # Where each file came from; retention keeps those store versions too.
                    "sources": {name: str(Path(src).resolve()) for name, src in files.items()},
                    "files": {
                        name: {
                            "bytes": (tmp / name).stat().st_size,
                            "sha256": sha256_file(tmp / name),
                        }
                        for name in sorted(files)
                    },
                }
                (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        return version

    def champion(self) -> str | None:
        return self._pointer().get("version")

    def champion_stack(self) -> list[str]:
        """Champions in the order they took over; rollback walks back along it."""
        return list(self._pointer().get("stack", []))

    def set_champion(self, version: str, *, force: bool = False, reason: str = "promote") -> dict:
        """Make `version` the champion and publish it in latest.json; returns latest.json."""
        with self._locked():
            stack = self.champion_stack()
            if version in stack:  # promoting an earlier champion again: it moves to the top
                stack.remove(version)
            return self._move(version, [*stack, version], force, reason)

    def rollback(self, to: str | None = None, *, force: bool = False) -> str:
        """Go back to the previous champion still present, or to `to`; returns the new champion.

        A version whose gates failed is refused unless `force`: it was never fit to serve.
        """
        with self._locked():
            stack, current = self.champion_stack(), self.champion()
            if to is None:
                earlier = [v for v in stack[:-1] if (self.root / v / MANIFEST).is_file()]
                if not earlier:
                    raise RegistryError(
                        f"no earlier champion than {current} is left to roll back to; "
                        "name one with --to (see `nightshift models list`)"
                    )
                to = earlier[-1]
                stack = stack[: stack.index(to) + 1]
            elif to in stack:
                stack = stack[: stack.index(to) + 1]
            else:
                stack = [*stack, to]
            if to == current:
                raise RegistryError(f"{to} is already the champion")
            self._move(to, stack, force, f"rollback from {current}")
            return to

    def latest(self) -> dict | None:
        path = self.root / "latest.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def retain(self, keep_last: int) -> list[str]:
        """Delete all but the newest `keep_last` versions and the champion; returns the deleted."""
        if keep_last < 1:
            raise RegistryError("keep_last must be at least 1: the newest version is always kept")
        with self._locked():
            versions, champion = self.list_versions(), self.champion()
            doomed = [v for v in versions[:-keep_last] if v != champion]
            for version in doomed:
                # Rename first: a half-deleted version must never look complete.
                gone = self.root / f".{version}.deleting"
                (self.root / version).rename(gone)
                shutil.rmtree(gone)
            return doomed

    def _move(self, version: str, stack: list[str], force: bool, reason: str) -> dict:
        manifest = self.manifest(version)
        if not manifest["gates_passed"] and not force:
            failed = sorted(k for k, g in manifest["gates"].items() if not g["passed"])
            raise RegistryError(
                f"{version} failed its gates ({', '.join(failed)}); pass force to use it anyway"
            )
        pointer = self._pointer()
        change = {"from": pointer.get("version"), "to": version, "reason": reason, "at": _now()}
        record = {"version": version, "stack": stack, "log": [*pointer.get("log", []), change]}
        atomic_write_text(self.root / "champion.json", json.dumps(record, indent=2) + "\n")
        latest = {
            "version": version,
            "updated": change["at"],
            "base_model": manifest["base_model"],
            "manifest": self._url(version, MANIFEST),
            "files": [
                {"name": name, **info, "url": self._url(version, name)}
                for name, info in manifest["files"].items()
            ],
        }
        atomic_write_text(self.root / "latest.json", json.dumps(latest, indent=2) + "\n")
        return latest

    def _url(self, version: str, name: str) -> str:
        if self.base_url:
            return f"{self.base_url.rstrip('/')}/{version}/{name}"
        return (self.root.resolve() / version / name).as_uri()

    def _pointer(self) -> dict:
        path = self.root / "champion.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield


def _number(version: str) -> int:
    return int(version[1:])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _check_name(name: str) -> None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts or name == MANIFEST:
        raise RegistryError(f"{name!r} is not a usable file name inside a version")


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not allowed
        shutil.copy2(src, dst)


def _gate(result: bool | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(result, bool):
        return {"passed": result}
    if "passed" not in result:
        raise RegistryError(f"a gate result needs 'passed': {dict(result)}")
    return {**result, "passed": bool(result["passed"])}
