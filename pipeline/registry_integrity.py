"""What the registry checks before it trusts a file, and how it writes its two pointers.

Every registry file is read as possibly damaged: JSON that is truncated, of the wrong shape or
missing a field, and version files deleted, truncated or changed since registration, all raise
IntegrityError naming the file relative to the registry (never its contents). champion.json and
latest.json are written in full to temporary files, then renamed into place one after the
other; if the second rename fails or is interrupted (even by KeyboardInterrupt or a cancel) the
first is undone, so they never disagree. Files are opened through pipeline.registry_fs: no
symlink below the root is followed and only regular files are read.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any

from pipeline import registry_fs as fs

MANIFEST = "manifest.json"
POINTER = "champion.json"
LATEST = "latest.json"
VERSION = re.compile(r"^v[1-9][0-9]{0,8}$")  # ASCII digits, few enough to count
REPAIR = "rewrite it with `nightshift rollback --to VERSION` (see `nightshift models list`)"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Control characters (C0, DEL, C1) and backslashes: never in a name the registry wrote.
_ODD = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")
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


def usable_name(name: Any) -> bool:
    """A plain relative path: components that are not empty, `.` or `..`, valid UTF-8, no
    control character or backslash, and not the manifest itself."""
    if not isinstance(name, str) or not name or name == MANIFEST or _ODD.search(name):
        return False
    try:
        name.encode("utf-8")  # a lone surrogate cannot name a file
    except UnicodeEncodeError:
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def gate_result(result: Any) -> dict[str, Any]:
    """A gate's result as registered: pass/fail, or a dict with `passed` and details."""
    if isinstance(result, bool):
        return {"passed": result}
    if "passed" not in result:
        raise RegistryError(f"a gate result needs 'passed': {dict(result)}")
    return {**result, "passed": bool(result["passed"])}


def read_json(root: Path, name: str) -> Any:
    """The JSON in `root/name`; IntegrityError naming the file if it cannot be used.

    Only a regular file is read (no symlink below `root`, no FIFO or device), at most
    fs.MAX_JSON bytes; any text it holds must be valid Unicode (no lone surrogates), so
    printing or re-writing it later cannot fail.
    """
    try:
        text = fs.read_bounded(root, name).decode("utf-8")
        if not text.strip():
            raise IntegrityError(f"{name}: empty (truncated)")
        data = json.loads(text)
        json.dumps(data, ensure_ascii=False).encode("utf-8")
        return data
    except FileNotFoundError:
        raise IntegrityError(f"{name}: missing") from None
    except fs.RefusedPath as exc:
        raise IntegrityError(exc.about(name)) from None
    except OSError as exc:
        raise IntegrityError(f"{name}: cannot be read ({_why(exc)})") from None
    except json.JSONDecodeError as exc:
        raise IntegrityError(
            f"{name}: invalid JSON at line {exc.lineno} column {exc.colno} (truncated or damaged)"
        ) from None
    except UnicodeError:  # undecodable bytes, or a \\ud800-style escape of a lone surrogate
        raise IntegrityError(
            f"{name}: not UTF-8 text, or a lone surrogate in it (damaged)"
        ) from None
    except ValueError:  # past the JSON syntax: an integer of thousands of digits
        raise IntegrityError(
            f"{name}: unusable JSON, a number too long to read (damaged)"
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
    """Every file of the manifest is a regular file inside the version folder (no symlink on
    the way) with its size, and with its sha256 if `hashes`."""
    for name, info in manifest["files"].items():
        where = f"{version}/{name}"
        try:
            with fs.open_regular(root, where) as (fd, st):
                if st.st_size != info["bytes"]:
                    raise IntegrityError(
                        f"{where}: size differs from its manifest ({st.st_size:,} bytes, "
                        f"manifest says {info['bytes']:,}): truncated or replaced"
                    )
                if hashes and fs.sha256_regular(fd) != info["sha256"]:
                    raise IntegrityError(
                        f"{where}: sha256 differs from its manifest: damaged or changed since "
                        "it was registered"
                    )
        except FileNotFoundError:
            raise IntegrityError(f"{where}: missing (deleted since it was registered)") from None
        except fs.RefusedPath as exc:
            raise IntegrityError(exc.about(where)) from None
        except OSError as exc:
            raise IntegrityError(f"{where}: cannot be read ({_why(exc)})") from None


def publish(root: Path, texts: dict[str, str]) -> None:
    """Write each file of `texts` (in order) so that all change or none does.

    Every new content is on disk under a temporary name before the first rename; a rename that
    fails, or anything interrupting the renames (KeyboardInterrupt, a run's cancellation),
    undoes the ones before it. Callers hold the registry lock, so the fixed temporary names
    are theirs alone; a stale or planted one is removed, never written through.
    """
    staged: dict[str, Path] = {}
    try:
        for name, text in texts.items():
            staged[name] = _stage(root / name, text.encode())
    except OSError as exc:
        _discard(staged.values())
        raise RegistryError(f"{name}: cannot be written ({_why(exc)}); nothing changed") from None
    except BaseException:
        _discard(staged.values())
        raise
    done: list[tuple[Path, bytes | None, Path]] = []
    try:
        for name, tmp in staged.items():
            path = root / name
            # Recorded before the rename: an interrupt right after it must still undo it.
            done.append((path, _previous(root, name), tmp))
            os.replace(tmp, path)
    except OSError as exc:
        undone = _undo(done)
        _discard(staged.values())
        raise RegistryError(f"{name}: cannot be replaced ({_why(exc)}); {undone}") from None
    except BaseException:
        _undo(done)
        _discard(staged.values())
        raise


def _previous(root: Path, name: str) -> bytes | None:
    """What `root/name` holds now, if it is a readable regular file (else undo removes it)."""
    try:
        return fs.read_bounded(root, name)
    except OSError:
        return None


def _stage(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    fs.write_new(tmp, data)
    return tmp


def _undo(done: list[tuple[Path, bytes | None, Path]]) -> str:
    """Put back what `done` replaced (a file whose temporary is still there was not); says
    what happened."""
    put_back = []
    for path, before, tmp in reversed(done):
        if os.path.lexists(tmp):
            continue
        try:
            if before is None:
                path.unlink(missing_ok=True)
            else:
                os.replace(_stage(path, before), path)
        except OSError as exc:
            return f"putting {path.name} back failed too ({_why(exc)}); {REPAIR}"
        put_back.append(path.name)
    return f"{', '.join(put_back)} put back, nothing changed" if put_back else "nothing changed"


def _discard(paths) -> None:
    for tmp in paths:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
