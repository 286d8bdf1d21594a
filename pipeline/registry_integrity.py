"""What the registry checks before it trusts a file, and how it writes its two pointers.

Every registry file is read as possibly damaged: JSON that is truncated, of the wrong shape or
missing a field, and version files deleted, truncated or changed since registration, all raise
IntegrityError naming the file relative to the registry (never its contents). champion.json and
latest.json are written in full to temporary files, then renamed into place one after the
other; if the second rename fails the first is undone, so they never disagree.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.artifacts import sha256_file

MANIFEST = "manifest.json"
POINTER = "champion.json"
LATEST = "latest.json"
VERSION = re.compile(r"^v(\d+)$")
REPAIR = "rewrite it with `nightshift rollback --to VERSION` (see `nightshift models list`)"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MAX_JSON = 16 << 20  # bytes; a registry JSON file larger than this is not one we wrote
# Every field Registry.register writes but "sources" (retention's hint, absent in early ones).
_FIELDS = {
    "version": str,
    "created": str,
    "base_model": str,
    "data_version": str,
    "code_version": str,
    "config": dict,
    "metrics": dict,
    "gates": dict,
    "gates_passed": bool,
    "rating_ids": list,
    "files": dict,
}


class RegistryError(RuntimeError):
    """A registry operation was refused; the message says why and what to do instead."""


class IntegrityError(RegistryError):
    """A registry file is missing or damaged; the message names it relative to the registry."""


def usable_name(name: str) -> bool:
    path = PurePosixPath(name)
    return not (path.is_absolute() or ".." in path.parts or not path.parts or name == MANIFEST)


def read_json(root: Path, name: str) -> Any:
    """The JSON in `root/name`; IntegrityError naming the file if it cannot be used."""
    path = root / name
    try:
        if path.stat().st_size > _MAX_JSON:
            raise IntegrityError(f"{name}: too large to be a registry file")
        text = path.read_bytes().decode("utf-8")
        if not text.strip():
            raise IntegrityError(f"{name}: empty (truncated)")
        return json.loads(text)
    except FileNotFoundError:
        raise IntegrityError(f"{name}: missing") from None
    except OSError as exc:
        raise IntegrityError(f"{name}: cannot be read ({_why(exc)})") from None
    except UnicodeDecodeError:
        raise IntegrityError(f"{name}: not UTF-8 text (damaged)") from None
    except json.JSONDecodeError as exc:
        raise IntegrityError(
            f"{name}: invalid JSON at line {exc.lineno} column {exc.colno} (truncated or damaged)"
        ) from None
    except RecursionError:
        raise IntegrityError(f"{name}: JSON nested too deeply (damaged)") from None


def checked_manifest(data: Any, version: str) -> dict[str, Any]:
    """`data` if it is a whole manifest of `version`, else IntegrityError naming what is wrong."""
    where = f"{version}/{MANIFEST}"
    if not isinstance(data, dict):
        raise IntegrityError(f"{where}: not a JSON object (damaged)")
    missing = [k for k in _FIELDS if k not in data]
    if missing:
        raise IntegrityError(f"{where}: missing field {', '.join(map(repr, missing))} (damaged)")
    wrong = [k for k, kind in _FIELDS.items() if not isinstance(data[k], kind)]
    if wrong:
        raise IntegrityError(f"{where}: field {', '.join(map(repr, wrong))} has the wrong type")
    if data["version"] != version:
        raise IntegrityError(f"{where}: names version {data['version']!r}, not {version}")
    for name, info in data["files"].items():
        if not usable_name(name):
            raise IntegrityError(f"{where}: {name!r} is not a usable file name inside a version")
        if not (
            isinstance(info, dict)
            and type(info.get("bytes")) is int
            and info["bytes"] >= 0
            and isinstance(info.get("sha256"), str)
            and _SHA256.match(info["sha256"])
        ):
            raise IntegrityError(f"{where}: files[{name!r}] needs 'bytes' and a hex 'sha256'")
    for gate, result in data["gates"].items():
        if not (isinstance(result, dict) and isinstance(result.get("passed"), bool)):
            raise IntegrityError(f"{where}: gates[{gate!r}] has no true/false 'passed'")
    if not all(type(i) is int for i in data["rating_ids"]):
        raise IntegrityError(f"{where}: 'rating_ids' holds something other than integers")
    if data["gates_passed"] != all(g["passed"] for g in data["gates"].values()):
        raise IntegrityError(f"{where}: 'gates_passed' disagrees with its gates")
    return data


def pointer_problem(data: Any) -> str | None:
    """What makes `data` unusable as champion.json, or None."""
    if not isinstance(data, dict):
        return "not a JSON object (damaged)"
    version, stack = data.get("version"), data.get("stack")
    if not (isinstance(version, str) and VERSION.match(version)):
        return "missing field 'version' (damaged)"
    if not (
        isinstance(stack, list) and all(isinstance(v, str) and VERSION.match(v) for v in stack)
    ):
        return "'stack' is not a list of versions (damaged)"
    if not stack or stack[-1] != version:
        return "'stack' does not end with the champion (damaged)"
    if not isinstance(data.get("log", []), list):
        return "'log' is not a list (damaged)"
    return None


def check_files(root: Path, version: str, manifest: dict, *, hashes: bool) -> None:
    """Every file of the manifest exists with its size, and with its sha256 if `hashes`."""
    for name, info in manifest["files"].items():
        where, path = f"{version}/{name}", root / version / name
        try:
            st = path.stat()
            if not stat.S_ISREG(st.st_mode):  # a FIFO or a device would hang the hash
                raise IntegrityError(f"{where}: not a regular file")
            if st.st_size != info["bytes"]:
                raise IntegrityError(
                    f"{where}: size differs from its manifest ({st.st_size:,} bytes, manifest "
                    f"says {info['bytes']:,}): truncated or replaced"
                )
            if hashes and sha256_file(path) != info["sha256"]:
                raise IntegrityError(
                    f"{where}: sha256 differs from its manifest: damaged or changed since it "
                    "was registered"
                )
        except FileNotFoundError:
            raise IntegrityError(f"{where}: missing (deleted since it was registered)") from None
        except OSError as exc:
            raise IntegrityError(f"{where}: cannot be read ({_why(exc)})") from None


def publish(root: Path, texts: dict[str, str]) -> None:
    """Write each file of `texts` (in order) so that all change or none does.

    Every new content is on disk under a temporary name before the first rename; a failed
    rename undoes the ones before it.
    """
    staged: dict[str, Path] = {}
    for name, text in texts.items():
        try:
            staged[name] = _stage(root / name, text.encode())
        except OSError as exc:
            _discard(staged.values())
            raise RegistryError(
                f"{name}: cannot be written ({_why(exc)}); nothing changed"
            ) from None
    done: list[tuple[Path, bytes | None]] = []
    for name, tmp in staged.items():
        path = root / name
        try:
            before = path.read_bytes() if path.is_file() else None
            os.replace(tmp, path)
        except OSError as exc:
            _discard(staged.values())
            raise RegistryError(
                f"{name}: cannot be replaced ({_why(exc)}); {_undo(done)}"
            ) from None
        done.append((path, before))


def _stage(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())  # on disk before a rename makes it the file
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _undo(done: list[tuple[Path, bytes | None]]) -> str:
    """Put back what `done` replaced; says what happened."""
    for path, before in reversed(done):
        try:
            if before is None:
                path.unlink(missing_ok=True)
            else:
                os.replace(_stage(path, before), path)
        except OSError as exc:
            return f"putting {path.name} back failed too ({_why(exc)}); {REPAIR}"
    names = ", ".join(path.name for path, _ in done)
    return f"{names} put back, nothing changed" if done else "nothing changed"


def _discard(paths: Iterable[Path]) -> None:
    for tmp in paths:
        tmp.unlink(missing_ok=True)


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
