"""The local model registry: numbered versions v1, v2, ... with manifests, and a champion.

Layout under `root` (the artifact store's `registry/`):

    v3/                 the version's files and manifest.json (sha256 of every file)
    champion.json       the version in use, the stack of earlier champions, a change log
    latest.json         what a client polls: the champion's files with size, sha256 and URL

A version directory appears whole (atomic rename); every change is made under a file lock, so a
CLI rollback cannot interleave with a promotion. Nothing is trusted on disk: a version is verified
(every file's size and sha256 against its manifest) before it becomes the champion or is served,
and champion.json and latest.json are replaced together or not at all. Below the root no symlink
is followed and only regular files are read (pipeline.registry_fs): a version folder, or any
folder or file in one, that is a link is damaged, never a way out of the registry.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline import registry_fs as fs
from pipeline import registry_integrity as integrity
from pipeline.artifacts import sha256_file
from pipeline.config import EvalConfig
from pipeline.paths import atomic_dir
from pipeline.registry_integrity import (
    LATEST,
    MANIFEST,
    POINTER,
    REPAIR,
    IntegrityError,
    RegistryError,
)

_VERSION = integrity.VERSION


@dataclass(frozen=True)
class Registry:
    root: Path
    # latest.json URLs: `<base_url>/<version>/<file>` when served over HTTP, else file:// URIs.
    base_url: str | None = None

    def version_dir(self, version: str) -> Path:
        if not isinstance(version, str) or not _VERSION.match(version):
            raise RegistryError(f"{version!r} is not a registry version (v1, v2, ...)")
        return self.root / version

    def list_versions(self) -> list[str]:
        """Versions with a manifest, oldest first (half-written ones have none yet); a version
        entry that is a symlink or not a folder is not one."""
        return [
            v
            for v, problem in self._version_dirs()
            if problem is None and fs.is_file(self.root / v / MANIFEST)
        ]

    def manifest(self, version: str) -> dict[str, Any]:
        """The version's manifest, checked for every field; IntegrityError if it is damaged."""
        try:
            problem = fs.entry_kind(self.root, self.version_dir(version).name)
        except FileNotFoundError:
            raise RegistryError(
                f"no version {version} in {self.root}; see `nightshift models list`"
            ) from None
        except OSError as exc:
            raise IntegrityError(f"{version}: cannot be read ({exc.strerror or exc})") from None
        if problem is not None:
            raise IntegrityError(f"{version}: {problem}")
        name = f"{version}/{MANIFEST}"
        if not os.path.lexists(self.root / name):
            raise IntegrityError(f"{name}: missing; the version folder is incomplete or damaged")
        data = integrity.read_json(self.root, name)
        try:
            return integrity.checked_manifest(data, version)
        except (ValueError, TypeError, UnicodeError, RecursionError) as exc:  # a shape unforeseen
            raise IntegrityError(f"{name}: damaged ({type(exc).__name__})") from None

    def verify(self, version: str) -> dict[str, Any]:
        """The manifest, after checking every file's existence, size and sha256 against it."""
        manifest = self.manifest(version)
        integrity.check_files(self.root, version, manifest, hashes=True)
        return manifest

    def serving_file(self, version: str) -> Path:
        """The verified quant file `version` was evaluated with (its config.eval.ship_quant)."""
        manifest = self.verify(version)
        evaluated = manifest["config"].get("eval")
        quant = evaluated.get("ship_quant") if isinstance(evaluated, dict) else None
        name = f"model-{quant if isinstance(quant, str) else EvalConfig.ship_quant}.gguf"
        if name not in manifest["files"]:
            have = sorted(f for f in manifest["files"] if f.endswith(".gguf"))
            raise RegistryError(
                f"{version} has no {name}, the quant it was evaluated with; it has {have}"
            )
        return self.version_dir(version) / name

    def survey(self, *, hashes: bool = False) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Readable versions' manifests (oldest first), and each damaged version with why.

        Files are checked for existence and size; `hashes` adds every sha256 (slow for GGUFs).
        """
        readable: list[dict[str, Any]] = []
        damaged: dict[str, str] = {}
        for version, problem in self._version_dirs():
            if problem is not None:
                damaged[version] = f"{version}: {problem}"
                continue
            try:
                manifest = self.manifest(version)
                integrity.check_files(self.root, version, manifest, hashes=hashes)
            except IntegrityError as exc:
                damaged[version] = str(exc)
            else:
                readable.append(manifest)
        return readable, damaged

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
            if not integrity.usable_name(name):
                raise RegistryError(f"{name!r} is not a usable file name inside a version")
            if not Path(src).is_file():
                raise RegistryError(f"{name}: {src} is not a file")
        with self._locked():
            existing = [p.name for p in self.root.iterdir() if _VERSION.match(p.name)]
            version = f"v{max(map(_number, existing), default=0) + 1}"
            if not _VERSION.match(version):  # a planted v999999999
                raise RegistryError(f"{self.root}: no version number is left after the highest")
            with atomic_dir(self.root / version) as tmp:
                for name, src in files.items():
                    fs.place(Path(src), tmp / name)
                gate_results = {k: integrity.gate_result(v) for k, v in (gates or {}).items()}
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
            pointer = self._pointer()
            stack = [v for v in pointer.get("stack", []) if v != version]  # an earlier one: on top
            return self._move(version, [*stack, version], force, reason, pointer)

    def rollback(self, to: str | None = None, *, force: bool = False) -> str:
        """Go back to the previous champion still present, or to `to`; returns the new champion.

        A version whose gates failed is refused unless `force`: it was never fit to serve. A
        damaged champion.json, or a latest.json not naming the champion, is rewritten when `to`
        names the version to serve.
        """
        with self._locked():
            try:
                pointer = self._pointer()
            except IntegrityError:
                if to is None:
                    raise
                pointer, reason = {}, f"rollback to {to}: rewrote a damaged {POINTER}"
            else:
                reason = f"rollback from {pointer.get('version')}"
            stack, current = list(pointer.get("stack", [])), pointer.get("version")
            if to is None:
                to = self._rollback_target(stack)
                if to is None:
                    raise RegistryError(
                        f"no earlier champion than {current} is left to roll back to; "
                        "name one with --to (see `nightshift models list`)"
                    )
                stack = stack[: stack.index(to) + 1]
            elif to in stack:
                stack = stack[: stack.index(to) + 1]
            else:
                stack = [*stack, to]
            if to == current:
                if self._published(current):
                    raise RegistryError(f"{to} is already the champion")
                reason = f"rewrote {LATEST}, which did not name the champion {current}"
            self._move(to, stack, force, reason, pointer)
            return to

    def latest(self) -> dict | None:
        if not os.path.lexists(self.root / LATEST):
            return None
        data = integrity.read_json(self.root, LATEST)
        if not isinstance(data, dict) or not isinstance(data.get("version"), str):
            raise IntegrityError(f"{LATEST}: has no version; {REPAIR}")
        return data

    def retain(self, keep_last: int) -> list[str]:
        """Delete all but the newest `keep_last` versions, the champion and the version a
        rollback would return to; returns the deleted."""
        if keep_last < 1:
            raise RegistryError("keep_last must be at least 1: the newest version is always kept")
        with self._locked():
            pointer = self._pointer()  # damaged: refuse, the champion could be among the doomed
            keep = {pointer.get("version"), self._rollback_target(pointer.get("stack", []))}
            # Only real version folders: a link in the registry is damage, never followed (a
            # rmtree through it would delete what it points to); `models list` names it.
            doomed = [v for v in self.list_versions()[:-keep_last] if v not in keep]
            for version in doomed:
                # Rename first: a half-deleted version must never look complete.
                gone = self.root / f".{version}.deleting"
                fs.remove(gone)  # left by an interrupted retain
                (self.root / version).rename(gone)
                fs.remove(gone)
            return doomed

    def _move(
        self, version: str, stack: list[str], force: bool, reason: str, pointer: dict
    ) -> dict:
        """Verify `version`, then publish champion.json and latest.json for it together."""
        try:
            manifest = self.verify(version)
        except IntegrityError as exc:
            raise IntegrityError(
                f"{exc}; {version} is refused and the champion stays "
                f"{pointer.get('version') or 'unset'}"
            ) from None
        if not manifest["gates_passed"] and not force:
            failed = sorted(k for k, g in manifest["gates"].items() if not g["passed"])
            raise RegistryError(
                f"{version} failed its gates ({', '.join(failed)}); pass force to use it anyway"
            )
        change = {"from": pointer.get("version"), "to": version, "reason": reason, "at": _now()}
        record = {"version": version, "stack": stack, "log": [*pointer.get("log", []), change]}
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
        # Both contents are whole before either file is touched.
        texts = {
            POINTER: json.dumps(record, indent=2) + "\n",
            LATEST: json.dumps(latest, indent=2) + "\n",
        }
        integrity.publish(self.root, texts)
        return latest

    def _published(self, version: str) -> bool:
        """Whether latest.json is readable and names `version`."""
        try:
            latest = self.latest()
        except IntegrityError:
            return False
        return latest is not None and latest["version"] == version

    def _rollback_target(self, stack: Sequence[str]) -> str | None:
        """The champion before the current one whose folder is still there."""
        earlier = [v for v in stack[:-1] if fs.is_dir(self.root / v)]
        return earlier[-1] if earlier else None

    def _version_dirs(self) -> list[tuple[str, str | None]]:
        """Entries named like a version, oldest first, each with None if it is a real folder,
        else what it is (a symlink, a file): those are damaged, never followed."""
        found = []
        try:
            with os.scandir(self.root) as entries:
                for entry in entries:
                    if not _VERSION.match(entry.name):
                        continue
                    try:
                        problem = fs.entry_kind(self.root, entry.name)
                    except FileNotFoundError:  # deleted since the listing
                        continue
                    found.append((entry.name, problem))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise RegistryError(f"{self.root}: cannot be listed ({exc.strerror or exc})") from None
        return sorted(found, key=lambda item: _number(item[0]))

    def _url(self, version: str, name: str) -> str:
        if self.base_url:
            return f"{self.base_url.rstrip('/')}/{version}/{name}"
        return (self.root.resolve() / version / name).as_uri()

    def _pointer(self) -> dict:
        if not os.path.lexists(self.root / POINTER):
            return {}
        try:
            data = integrity.read_json(self.root, POINTER)
        except IntegrityError as exc:
            raise IntegrityError(f"{exc}; {REPAIR}") from None
        problem = integrity.pointer_problem(data)
        if problem:
            raise IntegrityError(f"{POINTER}: {problem}; {REPAIR}")
        return data

    def pointers(self) -> tuple[str | None, dict | None, list[str]]:
        """The champion, latest.json and what is wrong with either, read together: under the
        lock shared (a promotion never shows half done), or, where the lock cannot be
        opened (a read-only registry), read twice if they disagree."""
        if self.root.is_dir():
            try:
                with self._locked(shared=True):
                    return self._read_pointers()
            except RegistryError:  # the lock cannot be opened: read without it
                pass
        found = self._read_pointers()
        return found if not found[2] else self._read_pointers()

    def _read_pointers(self) -> tuple[str | None, dict | None, list[str]]:
        problems: list[str] = []
        champion = latest = None
        try:
            champion = self.champion()
        except RegistryError as exc:
            problems.append(str(exc))
        try:
            latest = self.latest()
        except RegistryError as exc:
            problems.append(str(exc))
        else:
            if champion and latest and latest["version"] != champion:
                problems.append(
                    f"{LATEST} names {latest['version']} but {POINTER} names {champion}; "
                    f"rewrite both with `nightshift rollback --to {champion}`"
                )
        return champion, latest, problems

    @contextmanager
    def _locked(self, *, shared: bool = False) -> Iterator[None]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = fs.open_lock(self.root)
        except OSError as exc:
            why = exc if isinstance(exc, fs.RefusedPath) else exc.strerror or exc
            raise RegistryError(f"{self.root}: cannot take the registry lock ({why})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _number(version: str) -> int:
    return int(version[1:])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
