"""The registry's writes against a hostile folder and interruptions: nothing written outside it,
champion.json and latest.json together or not at all, retention never following a link, and
`models list` printing no terminal escape sequence a manifest carries."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from pipeline import registry_integrity
from pipeline.registry import Registry, RegistryError
from tests.core.test_registry_integrity import add, invoke, pointers


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    """v1, v2, v3 promoted in turn: v3 is the champion."""
    registry = Registry(tmp_path / "registry")
    for tag in "abc":
        registry.set_champion(add(registry, tmp_path, tag))
    return registry


# 4. Planted links make nothing written outside the registry.


def test_a_lock_linked_outside_is_refused_and_its_target_kept(
    reg: Registry, tmp_path: Path
) -> None:
    victim = tmp_path / "bashrc"
    victim.write_text("export IMPORTANT=1\n")
    (reg.root / ".lock").unlink()
    (reg.root / ".lock").symlink_to(victim)
    before = pointers(reg)
    for change in (reg.rollback, lambda: reg.set_champion("v1"), lambda: reg.retain(1)):
        with pytest.raises(RegistryError, match=r"cannot take the registry lock \(.lock is a sym"):
            change()
    assert victim.read_text() == "export IMPORTANT=1\n" and pointers(reg) == before


def test_the_lock_is_never_truncated(reg: Registry) -> None:
    (reg.root / ".lock").write_text("kept")
    reg.rollback()
    assert (reg.root / ".lock").read_text() == "kept"


def test_a_fifo_lock_is_refused(reg: Registry) -> None:
    (reg.root / ".lock").unlink()
    os.mkfifo(reg.root / ".lock")
    with pytest.raises(RegistryError, match=r"registry lock \(.lock is not a regular file"):
        reg.rollback()


@pytest.mark.parametrize("name", [".champion.json.tmp", ".latest.json.tmp"])
def test_a_planted_temp_link_is_not_written_through(reg: Registry, tmp_path: Path, name) -> None:
    victim = tmp_path / "notes.txt"
    victim.write_text("my notes\n")
    (reg.root / name).symlink_to(victim)
    assert reg.rollback() == "v2"
    assert victim.read_text() == "my notes\n"
    for pointer in ("champion.json", "latest.json"):
        assert not (reg.root / pointer).is_symlink() and (reg.root / pointer).is_file()
    assert reg.champion() == reg.latest()["version"] == "v2"
    assert sorted(p.name for p in reg.root.glob(".*.tmp")) == []


# 5. champion.json and latest.json: together or not at all, and read together.


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_between_the_renames_puts_the_first_back(
    reg: Registry, monkeypatch: pytest.MonkeyPatch, interrupt
) -> None:
    """Ctrl-C or a run's cancellation right after champion.json was renamed into place."""
    before = pointers(reg)
    real, calls = os.replace, []

    def replace_then_interrupt(src, dst):
        calls.append(dst)
        real(src, dst)
        if len(calls) == 1:
            raise interrupt()

    monkeypatch.setattr(registry_integrity.os, "replace", replace_then_interrupt)
    with pytest.raises(interrupt):
        reg.rollback(to="v1")
    monkeypatch.undo()
    assert Path(calls[0]).name == "champion.json" and pointers(reg) == before
    assert reg.champion() == reg.latest()["version"] == "v3"
    assert sorted(p.name for p in reg.root.glob(".*.tmp")) == []


def test_models_list_reads_the_pointers_under_the_lock(reg: Registry) -> None:
    """Half-way through a promotion (the lock held, champion.json already moved), `models list`
    waits for it instead of reporting the two files disagreeing."""
    outcome: dict = {}
    with reg._locked():
        (reg.root / "champion.json").write_text(
            json.dumps({"version": "v1", "stack": ["v1"], "log": []})
        )
        lister = threading.Thread(target=lambda: outcome.update(r=invoke(reg, "models", "list")))
        lister.start()
        lister.join(1.0)
        assert lister.is_alive(), outcome["r"].output  # it waits for the promotion
        latest = json.loads((reg.root / "latest.json").read_text())
        (reg.root / "latest.json").write_text(json.dumps({**latest, "version": "v1"}))
    lister.join(30)
    assert outcome["r"].exit_code == 0, outcome["r"].output
    assert "champion: v1" in outcome["r"].output and "disagree" not in outcome["r"].output


def test_models_list_on_a_missing_registry_creates_nothing(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "nowhere")
    listed = invoke(registry, "models", "list")
    assert listed.exit_code == 0 and "no versions in" in listed.output
    assert not registry.root.exists()


# 7. Retention never follows a link.


def test_retain_skips_a_linked_version_folder(reg: Registry, tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "v1"
    outside.parent.mkdir()
    shutil.move(reg.root / "v1", outside)
    (reg.root / "v1").symlink_to(outside)
    reg.set_champion(add(reg, tmp_path, "d"))
    reg.set_champion(add(reg, tmp_path, "e"))  # v5: v1..v3 are old, v4 the rollback target
    assert reg.retain(1) == ["v2", "v3"]
    assert (outside / "manifest.json").is_file() and (reg.root / "v1").is_symlink()
    assert reg.list_versions() == ["v4", "v5"]
    assert reg.survey()[1] == {
        "v1": "v1: a symbolic link (refused: it could point outside the registry)"
    }


@pytest.mark.parametrize("stale", ["folder", "link"])
def test_retain_after_an_interrupted_one(reg: Registry, tmp_path: Path, stale: str) -> None:
    """A `.vN.deleting` left by a killed retain, or planted as a link, never stops the next
    one, and what a link points to is kept."""
    outside = tmp_path / "keep"
    outside.mkdir()
    (outside / "precious").write_text("x")
    if stale == "folder":
        (reg.root / ".v1.deleting").mkdir()
        (reg.root / ".v1.deleting" / "half").write_text("x")
    else:
        (reg.root / ".v1.deleting").symlink_to(outside)
    add(reg, tmp_path, "d")
    assert reg.retain(1) == ["v1"]
    assert (outside / "precious").read_text() == "x"
    assert not os.path.lexists(reg.root / ".v1.deleting")
    assert reg.list_versions() == ["v2", "v3", "v4"]


# 8. `models list` escapes what a manifest would send to the terminal.


def test_models_list_escapes_control_characters(reg: Registry) -> None:
    path = reg.root / "v2" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["created"] = "\x1b]0;owned\x07\x1b[2J2026"
    manifest["gates"] = {"\x1b[31mred\u202e": {"passed": False}}
    manifest["gates_passed"] = False
    path.write_text(json.dumps(manifest))
    listed = invoke(reg, "models", "list")
    assert listed.exit_code == 0, listed.output
    assert "\x1b" not in listed.output and "\x07" not in listed.output
    assert "\u202e" not in listed.output
    assert "\\x1b]0;owned\\x07\\x1b[2J2026" in listed.output
    assert "FAIL \\x1b[31mred\\u202e" in listed.output
    as_json = invoke(reg, "models", "list", "--json")
    assert "\x1b" not in as_json.output and as_json.exit_code == 0
