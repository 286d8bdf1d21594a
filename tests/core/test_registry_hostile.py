"""The registry against a hostile folder: links out of it, FIFOs and devices, hostile JSON.

Whoever can write into the registry must not make it read, hash, serve or upload a file outside
it, hang, crash, or write outside it. Each refusal is an IntegrityError naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.registry import IntegrityError, Registry, RegistryError
from pipeline.release import ReleaseRefused, release
from pipeline.retention import protected_paths
from tests.core.test_registry_integrity import SHIP, add, invoke, pointers

SECRET = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    """v1, v2, v3 promoted in turn: v3 is the champion."""
    registry = Registry(tmp_path / "registry")
    for tag in "abc":
        registry.set_champion(add(registry, tmp_path, tag))
    return registry


class Hung(Exception):
    """Not an OSError (TimeoutError is one): no `except OSError` under test swallows it."""


@pytest.fixture
def no_hang() -> Iterator[None]:
    """A pathology guard: the bug was reading a FIFO or /dev/zero forever (margin >100x). A
    read of /dev/zero never returns to let the alarm in, so memory is bounded too."""

    def hung(*_):
        raise Hung("hung reading a registry file")

    previous = signal.signal(signal.SIGALRM, hung)
    limits = resource.getrlimit(resource.RLIMIT_AS)
    in_use = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (in_use + (2 << 30), limits[1]))
    signal.alarm(30)
    try:
        yield
    finally:
        signal.alarm(0)
        resource.setrlimit(resource.RLIMIT_AS, limits)
        signal.signal(signal.SIGALRM, previous)


def list_file(registry: Registry, version: str, name: str, source: Path) -> None:
    """Add `name` to the version's manifest with `source`'s true size and sha256."""
    path = registry.root / version / "manifest.json"
    manifest = json.loads(path.read_text())
    data = source.read_bytes()
    manifest["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    path.write_text(json.dumps(manifest))


def edit_manifest(registry: Registry, version: str, text: str) -> None:
    (registry.root / version / "manifest.json").write_text(text)


# 1. Symlinks: nothing outside the registry is verified, served or released.


def test_a_version_file_linked_outside_is_refused(reg: Registry, tmp_path: Path) -> None:
    outside = tmp_path / "evil.gguf"
    outside.write_bytes(b"GGUF-evil")
    (reg.root / "v2" / SHIP).unlink()
    (reg.root / "v2" / SHIP).symlink_to(outside)
    list_file(reg, "v2", SHIP, outside)  # its manifest even has the right hash
    before = pointers(reg)
    for use in (reg.verify, reg.serving_file, reg.set_champion):
        with pytest.raises(IntegrityError, match=f"^v2/{SHIP}: a symbolic link"):
            use("v2")
    assert pointers(reg) == before
    assert "v2" in reg.survey()[1] and reg.survey()[1]["v2"].startswith(f"v2/{SHIP}: a symbolic")


def test_a_version_folder_linked_outside_is_damaged(reg: Registry, tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "v9"
    outside.parent.mkdir()
    os.rename(reg.root / "v1", outside)
    manifest = json.loads((outside / "manifest.json").read_text())
    (outside / "manifest.json").write_text(json.dumps({**manifest, "version": "v9"}))
    (reg.root / "v9").symlink_to(outside)
    assert reg.list_versions() == ["v2", "v3"]
    readable, damaged = reg.survey(hashes=True)
    assert [m["version"] for m in readable] == ["v2", "v3"]
    assert damaged == {"v9": "v9: a symbolic link (refused: it could point outside the registry)"}
    for use in (reg.verify, reg.serving_file, reg.manifest):
        with pytest.raises(IntegrityError, match="^v9: a symbolic link"):
            use("v9")
    with pytest.raises(IntegrityError, match="^v9: a symbolic link"):
        reg.rollback(to="v9")
    assert reg.champion() == "v3"


def test_a_manifest_path_through_a_linked_folder_is_refused(reg: Registry) -> None:
    (reg.root / "v3" / "sub").symlink_to("/etc")
    list_file(reg, "v3", "sub/hostname", Path("/etc/hostname"))
    with pytest.raises(IntegrityError, match="^v3/sub/hostname: v3/sub is a symbolic link"):
        reg.verify("v3")


def test_a_linked_manifest_is_refused(reg: Registry, tmp_path: Path) -> None:
    copy = tmp_path / "manifest.json"
    copy.write_bytes((reg.root / "v2" / "manifest.json").read_bytes())
    (reg.root / "v2" / "manifest.json").unlink()
    (reg.root / "v2" / "manifest.json").symlink_to(copy)
    with pytest.raises(IntegrityError, match="^v2/manifest.json: a symbolic link"):
        reg.verify("v2")


def test_release_never_uploads_through_a_linked_adapter(reg: Registry, tmp_path: Path) -> None:
    key = tmp_path / "home" / ".ssh" / "id_ed25519"
    key.parent.mkdir(parents=True)
    key.write_text(SECRET)
    (reg.root / "v3" / "adapter2").symlink_to(key.parent)
    list_file(reg, "v3", "adapter2/id_ed25519", key)
    # The refusal comes before the client exists: the endpoint is unreachable on purpose.
    with pytest.raises(ReleaseRefused) as refused:
        release(reg.root / "v3", "me/m", "hf_x", endpoint="http://127.0.0.1:9", log=print)
    message = str(refused.value)
    assert message.startswith("v3 is not released: v3/adapter2/id_ed25519: v3/adapter2 is a sym")
    assert "PRIVATE KEY" not in message


@pytest.mark.parametrize(
    "name",
    [
        "../outside.gguf",
        "/etc/passwd",
        "a\x00b",
        "adapter\\..\\..\\x",
        "a//b",
        "./a",
        "a/./b",
        "a/",
        "",
        "bad\ud800name",
        "bell\x07\x1b[2J",
        "manifest.json",
    ],
)
def test_a_file_name_that_is_not_a_plain_relative_path_is_refused(reg: Registry, name) -> None:
    path = reg.root / "v2" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"][name] = {"bytes": 1, "sha256": "0" * 64}
    path.write_text(json.dumps(manifest))
    usable = r"^v2/manifest.json: (.* is not a usable file name|not UTF-8 text, or a lone surr)"
    with pytest.raises(IntegrityError, match=usable):
        reg.verify("v2")
    readable, damaged = reg.survey()
    assert [m["version"] for m in readable] == ["v1", "v3"] and list(damaged) == ["v2"]
    with pytest.raises(RegistryError, match="is not a usable file name"):
        reg.register({name: path}, base_model="b", data_version="d", code_version="c")


# 2. FIFOs, devices and huge files: refused unread, never a hang.


@pytest.mark.parametrize("name", ["v2/manifest.json", "champion.json", "latest.json"])
def test_a_fifo_registry_file_is_refused_unread(reg: Registry, name: str, no_hang) -> None:
    (reg.root / name).unlink()
    os.mkfifo(reg.root / name)
    expected = f"{name}: not a regular file (a FIFO"
    read = {"v2/manifest.json": lambda: reg.verify("v2"), "champion.json": reg.rollback}
    with pytest.raises(IntegrityError) as refused:
        read.get(name, reg.latest)()
    assert str(refused.value).startswith(expected), str(refused.value)
    listed = invoke(reg, "models", "list")
    assert listed.exit_code == 1 and expected in listed.output
    assert all(f"{v} " in listed.output for v in ("v1", "v3"))


@pytest.mark.parametrize("name", ["champion.json", "latest.json", "v1/manifest.json"])
def test_a_registry_file_linked_to_a_device_is_refused(reg: Registry, name, no_hang) -> None:
    (reg.root / name).unlink()
    (reg.root / name).symlink_to("/dev/zero")
    read = {"champion.json": reg.champion, "latest.json": reg.latest}
    with pytest.raises(IntegrityError, match=f"^{name}: a symbolic link"):
        read.get(name, lambda: reg.manifest("v1"))()


def test_a_version_file_linked_to_a_device_is_refused(reg: Registry, no_hang) -> None:
    (reg.root / "v1" / SHIP).unlink()
    (reg.root / "v1" / SHIP).symlink_to("/dev/zero")
    with pytest.raises(IntegrityError, match=f"^v1/{SHIP}: a symbolic link"):
        reg.verify("v1")


def test_an_oversized_registry_file_is_refused(reg: Registry) -> None:
    with (reg.root / "latest.json").open("r+b") as fh:
        fh.truncate(17 << 20)  # sparse: no disk used
    with pytest.raises(IntegrityError, match="^latest.json: too large to be a registry file"):
        reg.latest()


def test_the_retention_sweep_skips_a_fifo_manifest(reg: Registry, tmp_path: Path, no_hang) -> None:
    """The nightly sweep reads every registry manifest's sources: a FIFO must not hang it."""
    (reg.root / "v2" / "manifest.json").unlink()
    os.mkfifo(reg.root / "v2" / "manifest.json")
    (reg.root / "v1" / "manifest.json").unlink()
    (reg.root / "v1" / "manifest.json").symlink_to("/dev/zero")
    found = protected_paths(reg.root.parent)
    assert (tmp_path / "src-c" / "model-Q4_K_M.gguf").resolve() in found
    assert (tmp_path / "src-b" / "model-Q4_K_M.gguf").resolve() not in found


# 3. Hostile contents: IntegrityError naming the file, the other versions still listed.


@pytest.mark.parametrize(
    "edit, reason",
    [
        (lambda t: t[:-2] + ', "x": ' + "1" * 5000 + "}", "unusable JSON"),
        (lambda t: t.replace('"created": "', '"created": "\\ud800'), "lone surrogate"),
        (lambda t: t.replace('"gates": {', '"gates": {"\\udfff": {"passed": true}, '), "surrogate"),
        (lambda t: t.replace(SHIP, "a\\u0000b"), "is not a usable file name"),
        (lambda t: t.replace('"metrics": {}', '"metrics": ' + "[" * 9000 + "]" * 9000), "nested"),
    ],
)
def test_hostile_manifest_contents_are_integrity_errors(reg: Registry, edit, reason) -> None:
    path = reg.root / "v2" / "manifest.json"
    path.write_text(edit(path.read_text()))
    with pytest.raises(IntegrityError) as refused:
        reg.verify("v2")
    assert str(refused.value).startswith("v2/manifest.json: ") and reason in str(refused.value)
    readable, damaged = reg.survey()
    assert [m["version"] for m in readable] == ["v1", "v3"] and list(damaged) == ["v2"]
    listed = invoke(reg, "models", "list")
    assert listed.exit_code == 1 and "DAMAGED v2/manifest.json: " in listed.output
    assert "v1 " in listed.output and "* v3" in listed.output


def test_a_lone_surrogate_in_champion_json_is_named(reg: Registry) -> None:
    path = reg.root / "champion.json"
    path.write_text(path.read_text().replace('"reason": "', '"reason": "\\ud800', 1))
    with pytest.raises(IntegrityError, match="^champion.json: not UTF-8 text, or a lone surr"):
        reg.champion()
    listed = invoke(reg, "models", "list")
    assert listed.exit_code == 1 and "champion: unknown" in listed.output
    assert reg.rollback(to="v2") == "v2" and reg.champion() == "v2"
