from __future__ import annotations

import pytest

from pipeline.artifacts import ArtifactStore, file_manifest


def test_a_failed_write_leaves_the_current_version_untouched(tmp_path):
    store = ArtifactStore(tmp_path)
    with store.write_version("lora_adapter", "v1") as d:
        (d / "adapters.safetensors").write_bytes(b"one")
    store.set_current("lora_adapter", "v1")
    with pytest.raises(RuntimeError), store.write_version("lora_adapter", "v2") as d:
        (d / "adapters.safetensors").write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert store.current("lora_adapter") == tmp_path / "lora_adapter" / "v1"
    assert not (tmp_path / "lora_adapter" / "v2").exists()
    left = sorted(p.name for p in (tmp_path / "lora_adapter").iterdir())
    assert left == ["current.json", "v1"]  # no half-written or temporary directory remains


def test_rewriting_a_version_replaces_it_whole(tmp_path):
    store = ArtifactStore(tmp_path)
    for content in (b"a", b"b"):
        with store.write_version("x", "v1") as d:
            (d / f"{content.decode()}.bin").write_bytes(content)
    assert sorted(file_manifest(tmp_path / "x" / "v1")) == ["b.bin"]


def test_current_requires_an_existing_version(tmp_path):
    store = ArtifactStore(tmp_path)
    assert store.current("nothing") is None
    with pytest.raises(FileNotFoundError):
        store.set_current("nothing", "v9")
