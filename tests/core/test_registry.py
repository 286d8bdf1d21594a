"""The local registry: versions with manifests, champion moves, latest.json, retention, CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest
import typer
from typer.testing import CliRunner

from pipeline.cli_models import models_app, rollback_command
from pipeline.registry import Registry, RegistryError


def make_files(folder: Path, tag: str) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "model-Q4_K_M.gguf": b"GGUF" + tag.encode() * 50,
        "adapter/adapters.safetensors": b"weights " + tag.encode(),
    }
    for name, data in files.items():
        (folder / name.replace("/", "_")).write_bytes(data)
    return {name: folder / name.replace("/", "_") for name in files}


def register(registry: Registry, tmp: Path, tag: str, passed: bool = True) -> str:
    return registry.register(
        make_files(tmp / f"src-{tag}", tag),
        base_model="Qwen/Qwen2.5-0.5B-Instruct",
        data_version=f"splits-{tag}",
        code_version="1",
        config={"lora_rank": 8},
        metrics={"test_loss": 1.25},
        gates={"beats_champion": passed, "quants_valid": {"passed": True, "quants": 3}},
        rating_ids=[3, 1, 2, 1],
    )


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "registry")


def test_register_writes_a_complete_manifest(registry: Registry, tmp_path: Path) -> None:
    files = make_files(tmp_path / "src", "a")
    version = registry.register(
        files, base_model="tiny", data_version="d1", code_version="c1", gates={"g": True}
    )
    assert version == "v1" and registry.list_versions() == ["v1"]
    manifest = registry.manifest("v1")
    folder = registry.version_dir("v1")
    for name, src in files.items():
        data = src.read_bytes()
        assert (folder / name).read_bytes() == data
        assert manifest["files"][name] == {
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    assert manifest["base_model"] == "tiny" and manifest["data_version"] == "d1"
    assert manifest["gates"] == {"g": {"passed": True}} and manifest["gates_passed"]
    assert registry.champion() is None and registry.latest() is None
    # Nothing but the version itself (and the lock) appears: no temporary folders left over.
    assert sorted(p.name for p in registry.root.iterdir()) == [".lock", "v1"]


def test_bad_input_writes_nothing(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="not a file"):
        registry.register({"x.gguf": tmp_path / "missing"}, **_fields())
    with pytest.raises(RegistryError, match="usable file name"):
        registry.register(
            {"../x.gguf": make_files(tmp_path, "a")["model-Q4_K_M.gguf"]}, **_fields()
        )
    assert registry.list_versions() == []


def _fields() -> dict:
    return {"base_model": "tiny", "data_version": "d", "code_version": "c"}


def test_champion_and_latest_json(registry: Registry, tmp_path: Path) -> None:
    v1, v2 = register(registry, tmp_path, "a"), register(registry, tmp_path, "b")
    latest = registry.set_champion(v2)
    assert registry.champion() == v2 and registry.latest() == latest
    assert latest["version"] == v2 and latest["base_model"] == "Qwen/Qwen2.5-0.5B-Instruct"
    for entry in latest["files"]:
        path = Path(url2pathname(urlparse(entry["url"]).path))
        data = path.read_bytes()
        assert len(data) == entry["bytes"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    served = Registry(registry.root, base_url="http://models.lan:8080/registry/")
    served.set_champion(v1)
    urls = [f["url"] for f in served.latest()["files"]]
    assert "http://models.lan:8080/registry/v1/model-Q4_K_M.gguf" in urls


def test_failed_gates_need_force(registry: Registry, tmp_path: Path) -> None:
    bad = register(registry, tmp_path, "a", passed=False)
    with pytest.raises(RegistryError, match="failed its gates \\(beats_champion\\)"):
        registry.set_champion(bad)
    assert registry.champion() is None
    registry.set_champion(bad, force=True)
    assert registry.champion() == bad


def test_rollback_walks_back_the_champions(registry: Registry, tmp_path: Path) -> None:
    v1, v2, v3 = (register(registry, tmp_path, t) for t in "abc")
    for v in (v1, v2, v3):
        registry.set_champion(v)
    assert registry.rollback() == v2 and registry.champion() == v2
    assert registry.latest()["version"] == v2
    assert registry.rollback() == v1
    with pytest.raises(RegistryError, match="no earlier champion"):
        registry.rollback()
    assert registry.rollback(to=v3) == v3 and registry.champion_stack() == [v1, v3]
    with pytest.raises(RegistryError, match="already the champion"):
        registry.rollback(to=v3)
    with pytest.raises(RegistryError, match="no version v9"):
        registry.rollback(to="v9")
    log = json.loads((registry.root / "champion.json").read_text())["log"]
    assert [(c["from"], c["to"]) for c in log] == [
        (None, v1),
        (v1, v2),
        (v2, v3),
        (v3, v2),
        (v2, v1),
        (v1, v3),
    ]


def test_rollback_refuses_a_failed_version(registry: Registry, tmp_path: Path) -> None:
    good, bad = register(registry, tmp_path, "a"), register(registry, tmp_path, "b", False)
    registry.set_champion(good)
    with pytest.raises(RegistryError, match="failed its gates"):
        registry.rollback(to=bad)
    assert registry.champion() == good
    assert registry.rollback(to=bad, force=True) == bad


def test_retain_keeps_the_last_and_the_champion(registry: Registry, tmp_path: Path) -> None:
    versions = [register(registry, tmp_path, t) for t in "abcde"]
    registry.set_champion(versions[1])
    assert registry.retain(keep_last=2) == ["v1", "v3"]
    assert registry.list_versions() == ["v2", "v4", "v5"]
    # Numbers are never reused, and v10 sorts after v9.
    more = [register(registry, tmp_path, t) for t in "fghij"]
    assert more == ["v6", "v7", "v8", "v9", "v10"]
    assert registry.list_versions()[-2:] == ["v9", "v10"]
    # Retention kept the champion v2, so rollback from v10 can still reach it.
    registry.set_champion("v10")
    assert registry.rollback() == "v2"
    with pytest.raises(RegistryError):
        registry.retain(keep_last=0)


def test_cli_list_and_rollback(registry: Registry, tmp_path: Path) -> None:
    runner = CliRunner()
    v1, v2 = register(registry, tmp_path, "a"), register(registry, tmp_path, "b", False)
    registry.set_champion(v1)
    registry.set_champion(v2, force=True)
    root = ["--root", str(registry.root)]
    swapped: list[tuple[str, Path]] = []
    app = cli(on_champion=lambda v, p: swapped.append((v, p)))
    listed = runner.invoke(app, ["models", "list", *root])
    assert listed.exit_code == 0, listed.output
    rows = {line[2:].split()[0]: line for line in listed.output.splitlines()[1:-1]}
    assert "2/2 pass" in rows["v1"] and not rows["v1"].startswith("*")
    assert rows["v2"].startswith("* ") and "FAIL beats_champion" in rows["v2"]
    assert "champion: v2" in listed.output
    as_json = json.loads(runner.invoke(app, ["models", "list", *root, "--json"]).output)
    assert as_json["champion"] == v2 and len(as_json["versions"]) == 2

    done = runner.invoke(app, ["rollback", *root])
    assert done.exit_code == 0, done.output
    assert "champion: v2 -> v1" in done.output
    assert swapped == [(v1, registry.version_dir(v1))]
    refused = runner.invoke(app, ["rollback", *root, "--to", v2])
    assert refused.exit_code == 1 and "failed its gates" in refused.output
    assert registry.champion() == v1 and len(swapped) == 1

    def broken(version: str, path: Path) -> None:
        raise RuntimeError("llama-server did not come up")

    failed = runner.invoke(cli(broken), ["rollback", *root, "--to", v2, "--force"])
    assert failed.exit_code == 1 and "v2 is the champion, but switching" in failed.output


def cli(on_champion) -> typer.Typer:
    """The commands registered as pipeline/cli.py registers them."""
    app = typer.Typer()
    app.add_typer(models_app, name="models")
    app.command("rollback")(rollback_command(on_champion=on_champion))
    return app
