"""The registry trusts no file: damaged versions are refused by name, pointers move together.

Each refusal is checked by its message (the file, relative to the registry, and what is wrong)
and by what did not change: champion.json and latest.json stay byte-identical.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.registry import IntegrityError, Registry, RegistryError
from tests.core.test_registry import cli

SHIP = "model-Q4_K_M.gguf"
CONTENT = b"GGUF-very-private-weights-" * 40  # must never show up in a message
runner = CliRunner()


def add(registry: Registry, tmp: Path, tag: str, ship_quant: str | None = None) -> str:
    """A version with two quants and an adapter file; evaluated with `ship_quant` if given."""
    src = tmp / f"src-{tag}"
    src.mkdir(parents=True, exist_ok=True)
    files = {SHIP: CONTENT + tag.encode(), "model-Q8_0.gguf": b"Q8" + tag.encode() * 9}
    files["adapter/adapters.safetensors"] = b"weights " + tag.encode()
    for name, data in files.items():
        (src / name.replace("/", "_")).write_bytes(data)
    config = {"eval": {"ship_quant": ship_quant}} if ship_quant else {}
    return registry.register(
        {name: src / name.replace("/", "_") for name in files},
        base_model="tiny",
        data_version=f"d-{tag}",
        code_version="c",
        config=config,
        gates={"perplexity": True},
        rating_ids=[1, 2],
    )


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    """v1, v2, v3 promoted in turn: v3 is the champion, a rollback returns to v2."""
    reg = Registry(tmp_path / "registry")
    for tag in "abc":
        reg.set_champion(add(reg, tmp_path, tag))
    return reg


def pointers(registry: Registry) -> tuple[bytes, bytes]:
    return (registry.root / "champion.json").read_bytes(), (
        registry.root / "latest.json"
    ).read_bytes()


# Ways a version's files get damaged, each with what the message must say.
def flip_bytes(folder: Path) -> str:
    path = folder / SHIP
    size = path.stat().st_size
    with path.open("r+b") as fh:  # same size, different bytes
        fh.seek(size // 2)
        byte = fh.read(1)
        fh.seek(size // 2)
        fh.write(bytes([byte[0] ^ 0xFF]))
    assert path.stat().st_size == size
    return f"{folder.name}/{SHIP}: sha256 differs from its manifest"


def truncate(folder: Path) -> str:
    with (folder / SHIP).open("r+b") as fh:
        fh.truncate(100)
    return f"{folder.name}/{SHIP}: size differs from its manifest (100 bytes"


def delete(folder: Path) -> str:
    (folder / SHIP).unlink()
    return f"{folder.name}/{SHIP}: missing"


def drop_field(folder: Path) -> str:
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["files"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return f"{folder.name}/manifest.json: missing field 'files'"


def truncate_manifest(folder: Path) -> str:
    text = (folder / "manifest.json").read_text()
    (folder / "manifest.json").write_text(text[: len(text) // 2])
    return f"{folder.name}/manifest.json: invalid JSON"


def remove_manifest(folder: Path) -> str:
    (folder / "manifest.json").unlink()
    return f"{folder.name}/manifest.json: missing"


def bad_sha_entry(folder: Path) -> str:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][SHIP]["sha256"] = "not-a-hash"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return f"{folder.name}/manifest.json: files['{SHIP}'] needs 'bytes' and a hex 'sha256'"


def replace_with_fifo(folder: Path) -> str:
    (folder / SHIP).unlink()
    os.mkfifo(folder / SHIP)  # reading it would hang: it must be refused unread
    return f"{folder.name}/{SHIP}: not a regular file"


DAMAGES: list[Callable[[Path], str]] = [
    flip_bytes,
    truncate,
    delete,
    drop_field,
    truncate_manifest,
    remove_manifest,
    bad_sha_entry,
    replace_with_fifo,
]


@pytest.mark.parametrize("damage", DAMAGES)
def test_verify_names_the_damaged_file(registry: Registry, damage) -> None:
    assert registry.verify("v1")["version"] == "v1"
    expected = damage(registry.version_dir("v1"))
    with pytest.raises(IntegrityError) as refused:
        registry.verify("v1")
    assert str(refused.value).startswith(expected), str(refused.value)
    assert "GGUF-very-private" not in str(refused.value)
    assert isinstance(refused.value, RegistryError)
    assert registry.verify("v2")["version"] == "v2"  # the others are untouched


@pytest.mark.parametrize("damage", DAMAGES)
def test_rollback_to_a_damaged_version_changes_nothing(registry: Registry, damage) -> None:
    before = pointers(registry)
    expected = damage(registry.version_dir("v2"))
    with pytest.raises(IntegrityError) as refused:
        registry.rollback()  # the previous champion, v2
    assert expected in str(refused.value) and "the champion stays v3" in str(refused.value)
    with pytest.raises(IntegrityError, match=re.escape(expected)):
        registry.rollback(to="v2")
    with pytest.raises(IntegrityError, match=re.escape(expected)):
        registry.set_champion("v2", force=True)  # force skips the gates, never the files
    assert pointers(registry) == before
    assert sorted(p.name for p in registry.root.glob(".*.tmp")) == []
    # Another version still works, and both pointers then agree on it.
    assert registry.rollback(to="v1") == "v1"
    assert registry.champion() == registry.latest()["version"] == "v1"


def test_serving_file_is_the_evaluated_quant_after_verify(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    default, q8 = add(registry, tmp_path, "a"), add(registry, tmp_path, "b", ship_quant="Q8_0")
    assert registry.serving_file(default) == registry.version_dir(default) / SHIP
    assert registry.serving_file(q8) == registry.version_dir(q8) / "model-Q8_0.gguf"
    other = add(registry, tmp_path, "c", ship_quant="Q2_K")
    with pytest.raises(RegistryError, match=r"v3 has no model-Q2_K.gguf.*'model-Q8_0.gguf'"):
        registry.serving_file(other)
    # A damaged file is never handed to a server, even one it would not serve itself.
    flip_bytes(registry.version_dir(q8))
    with pytest.raises(IntegrityError, match="v2/model-Q4_K_M.gguf: sha256 differs"):
        registry.serving_file(q8)
    with pytest.raises(RegistryError, match="no version v9"):
        registry.serving_file("v9")


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty (truncated)"),
        (b'{"version": "v3", "sta', "invalid JSON at line 1"),
        (b"\xff\xfe garbage", "not UTF-8 text"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"stack": ["v1"]}', "missing field 'version'"),
        (b'{"version": "v3", "stack": "v3"}', "'stack' is not a list of versions"),
        (b'{"version": "v3", "stack": ["v1", "v2"]}', "'stack' does not end with the champion"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply"),
    ],
)
def test_damaged_champion_json_is_named_and_repaired_by_rollback_to(
    registry: Registry, content: bytes, reason: str
) -> None:
    (registry.root / "champion.json").write_bytes(content)
    for read in (registry.champion, registry.champion_stack, registry.rollback):
        with pytest.raises(IntegrityError) as refused:
            read()
        assert str(refused.value).startswith(f"champion.json: {reason}"), str(refused.value)
        assert "rollback --to VERSION" in str(refused.value)
    with pytest.raises(IntegrityError, match="champion.json"):  # unknown champion: keep all
        registry.retain(keep_last=1)
    with pytest.raises(IntegrityError, match="champion.json"):
        registry.set_champion("v1")
    assert (registry.root / "champion.json").read_bytes() == content
    assert registry.list_versions() == ["v1", "v2", "v3"]
    assert registry.rollback(to="v2") == "v2"
    assert registry.champion() == registry.latest()["version"] == "v2"
    assert registry.champion_stack() == ["v2"]


def test_damaged_latest_json_is_named_and_rewritten(registry: Registry) -> None:
    (registry.root / "latest.json").write_text('{"version": "v3", "fi')
    with pytest.raises(IntegrityError, match="^latest.json: invalid JSON"):
        registry.latest()
    assert registry.rollback() == "v2" and registry.latest()["version"] == "v2"


def test_a_manifest_missing_a_field_writes_nothing(registry: Registry, tmp_path: Path) -> None:
    new = add(registry, tmp_path, "d")
    manifest = json.loads((registry.version_dir(new) / "manifest.json").read_text())
    for field in ("base_model", "gates_passed", "gates", "version"):
        broken = {k: v for k, v in manifest.items() if k != field}
        (registry.version_dir(new) / "manifest.json").write_text(json.dumps(broken))
        before = pointers(registry)
        with pytest.raises(RegistryError, match=f"v4/manifest.json: missing field '{field}'"):
            registry.set_champion(new)
        assert pointers(registry) == before


def test_second_replace_failing_puts_the_first_back(registry: Registry) -> None:
    """latest.json cannot be replaced (a directory took its name): champion.json stays."""
    champion = (registry.root / "champion.json").read_bytes()
    (registry.root / "latest.json").unlink()
    (registry.root / "latest.json").mkdir()
    with pytest.raises(RegistryError, match=r"latest.json: cannot be replaced.*put back"):
        registry.rollback()
    assert (registry.root / "champion.json").read_bytes() == champion
    assert registry.champion() == "v3"
    assert sorted(p.name for p in registry.root.glob(".*.tmp")) == []
    (registry.root / "latest.json").rmdir()
    assert registry.rollback() == "v2" and registry.latest()["version"] == "v2"


def test_survey_lists_the_readable_and_names_the_damaged(registry: Registry) -> None:
    truncate_manifest(registry.version_dir("v1"))
    (registry.root / "v4").mkdir()  # a version folder with no manifest
    flip_bytes(registry.version_dir("v2"))  # found only when hashing
    readable, damaged = registry.survey()
    assert [m["version"] for m in readable] == ["v2", "v3"]
    assert damaged["v1"].startswith("v1/manifest.json: invalid JSON")
    assert damaged["v4"].startswith("v4/manifest.json: missing")
    readable, damaged = registry.survey(hashes=True)
    assert [m["version"] for m in readable] == ["v3"] and "v2/model-Q4_K_M.gguf" in damaged["v2"]


def test_retain_keeps_the_champion_and_the_rollback_target(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    versions = [add(registry, tmp_path, t) for t in "abcdef"]
    registry.set_champion(versions[0])
    registry.set_champion(versions[-1])  # v6 took over from v1: rollback goes back to v1
    assert registry.retain(keep_last=2) == ["v2", "v3", "v4"]
    assert registry.list_versions() == ["v1", "v5", "v6"]
    assert registry.rollback() == "v1"
    add(registry, tmp_path, "g")
    registry.set_champion("v5")  # stack v1, v5: v1 is the rollback target again
    assert registry.retain(keep_last=1) == ["v6"]
    assert registry.list_versions() == ["v1", "v5", "v7"] and registry.rollback() == "v1"


# The command line: every refusal exits 1 with the message, never a traceback.


def invoke(registry: Registry, *args: str):
    result = runner.invoke(cli(on_champion=None), [*args, "--root", str(registry.root)])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_cli_list_shows_the_good_and_names_the_damaged(registry: Registry) -> None:
    (registry.version_dir("v1") / "manifest.json").write_text("{not json")
    listed = invoke(registry, "models", "list")
    assert listed.exit_code == 1
    rows = {line[2:].split()[0]: line for line in listed.output.splitlines()[1:4]}
    assert rows["v1"].startswith("! v1") and "DAMAGED v1/manifest.json: invalid JSON" in rows["v1"]
    assert rows["v3"].startswith("* v3") and "1/1 pass" in rows["v3"] and "1/1 pass" in rows["v2"]
    assert "champion: v3" in listed.output and "error: damaged: v1" in listed.output
    as_json = invoke(registry, "models", "list", "--json")
    payload = json.loads(as_json.output[: as_json.output.rindex("}") + 1])
    assert [m["version"] for m in payload["versions"]] == ["v2", "v3"]
    assert list(payload["damaged"]) == ["v1"] and as_json.exit_code == 1
    flip_bytes(registry.version_dir("v2"))
    assert (
        "v2" in rows and "DAMAGED" not in invoke(registry, "models", "list").output.split("\n")[2]
    )
    verified = invoke(registry, "models", "list", "--verify")
    assert "DAMAGED v2/model-Q4_K_M.gguf: sha256 differs" in verified.output
    # A good version is still reachable past the damaged ones.
    done = invoke(registry, "rollback", "--to", "v3")
    assert done.exit_code == 1 and "already the champion" in done.output


def test_cli_rollback_refuses_a_damaged_version(registry: Registry) -> None:
    before = pointers(registry)
    delete(registry.version_dir("v2"))
    refused = invoke(registry, "rollback")
    assert refused.exit_code == 1
    assert "error: v2/model-Q4_K_M.gguf: missing" in refused.output
    assert "the champion stays v3" in refused.output and pointers(registry) == before
    done = invoke(registry, "rollback", "--to", "v1")
    assert done.exit_code == 0 and "champion: v3 -> v1" in done.output


def test_cli_with_a_truncated_champion_json(registry: Registry) -> None:
    text = (registry.root / "champion.json").read_text()
    (registry.root / "champion.json").write_text(text[:20])
    listed = invoke(registry, "models", "list")
    assert listed.exit_code == 1 and "champion: unknown" in listed.output
    assert "error: champion.json: invalid JSON" in listed.output
    assert all(f"{v} " in listed.output for v in ("v1", "v2", "v3"))
    refused = invoke(registry, "rollback")
    assert refused.exit_code == 1 and "error: champion.json: invalid JSON" in refused.output
    assert "nightshift rollback --to VERSION" in refused.output
    repaired = invoke(registry, "rollback", "--to", "v2")
    assert repaired.exit_code == 0, repaired.output
    assert "champion.json was damaged; rewrote it with v2 as the champion" in repaired.output
    assert invoke(registry, "models", "list").exit_code == 0
    assert registry.champion() == registry.latest()["version"] == "v2"


def test_cli_latest_json_disagreeing_with_the_champion(registry: Registry) -> None:
    """As a crash between the two renames would leave them: list says so, rollback repairs."""
    (registry.root / "latest.json").write_text(json.dumps({"version": "v2", "files": []}))
    listed = invoke(registry, "models", "list")
    assert listed.exit_code == 1
    assert "latest.json names v2 but champion.json names v3" in listed.output
    assert "nightshift rollback --to v3" in listed.output
    repaired = invoke(registry, "rollback", "--to", "v3")
    assert repaired.exit_code == 0, repaired.output
    assert "latest.json did not name the champion v3; rewrote it" in repaired.output
    assert registry.latest()["version"] == "v3" and registry.champion_stack() == ["v1", "v2", "v3"]
    again = invoke(registry, "rollback", "--to", "v3")
    assert again.exit_code == 1 and "v3 is already the champion" in again.output


@pytest.mark.parametrize(
    "edit, reason",
    [
        (lambda m: m.update(version="v2"), "names version 'v2', not v1"),
        (lambda m: m.update(files=[SHIP]), "field 'files' has the wrong type"),
        (lambda m: m["files"].update({"../../x.gguf": m["files"][SHIP]}), "not a usable file"),
        (lambda m: m["files"][SHIP].update(bytes="12"), "needs 'bytes' and a hex 'sha256'"),
        (lambda m: m["gates"].update(perplexity={"ok": 1}), "has no true/false 'passed'"),
        (lambda m: m.update(gates_passed=False), "'gates_passed' disagrees with its gates"),
        (lambda m: m.update(rating_ids=["1"]), "'rating_ids' holds something other"),
    ],
)
def test_a_manifest_of_the_wrong_shape_is_refused(registry: Registry, edit, reason) -> None:
    path = registry.version_dir("v1") / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    before = pointers(registry)
    with pytest.raises(IntegrityError) as refused:
        registry.rollback(to="v1")
    assert str(refused.value).startswith("v1/manifest.json: ") and reason in str(refused.value)
    assert pointers(registry) == before
