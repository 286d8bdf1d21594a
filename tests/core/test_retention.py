from __future__ import annotations

import json
import os
import time

import pytest

from pipeline.artifacts import ArtifactStore
from pipeline.retention import RetentionPolicy, sweep

DAY = 86400


def _version(store: ArtifactStore, asset: str, name: str, age_days: float, now: float):
    folder = store.version_dir(asset, name)
    folder.mkdir(parents=True)
    (folder / "adapters.safetensors").write_bytes(b"x" * 1000)
    stamp = now - age_days * DAY
    os.utime(folder, (stamp, stamp))  # after writing inside it, which moves the folder's mtime
    return folder


@pytest.fixture
def store(tmp_path):
    """lora_adapter: current (40 days old), 3 recent, one 4.5 days old, one 5, one in the
    registry (20), plus scratch from a killed run (10 days) and from a run in progress (now)."""
    now = time.time()
    store = ArtifactStore(tmp_path / "artifacts")
    ages = {"cur": 40, "n1": 1, "n2": 2, "n3": 4.5, "o5": 5, "reg": 20}
    for name, age in ages.items():
        _version(store, "lora_adapter", name, age, now)
    store.set_current("lora_adapter", "cur")
    for name, age in {".n9.tmpab12": 10, "lora-old.work": 10, ".n10.tmpcd34": 0.01}.items():
        _version(store, "lora_adapter", name, age, now)
    manifest = store.root / "registry" / "v1" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    sources = {"adapter": str(store.version_dir("lora_adapter", "reg") / "adapters.safetensors")}
    manifest.write_text(json.dumps({"version": "v1", "sources": sources}))
    (store.root / "registry" / "v2").mkdir()
    (store.root / "registry" / "v2" / "manifest.json").write_text("{half written")
    return store


def test_sweep_keeps_current_registry_and_recent_versions_and_drops_the_rest(store):
    report = sweep(store.root, RetentionPolicy(keep_last=3, max_age_days=4))
    removed = report.removed["lora_adapter"]
    assert removed == {
        "n3": "older than 4 days",
        "o5": "beyond the newest 3",
        ".n9.tmpab12": "stale scratch of an interrupted run",
        "lora-old.work": "stale scratch of an interrupted run",
    }
    left = {p.name for p in store.asset_dir("lora_adapter").iterdir()}
    assert left == {"cur", "n1", "n2", "reg", ".n10.tmpcd34", "current.json"}
    assert store.current("lora_adapter").name == "cur"
    assert report.protected == [str(store.version_dir("lora_adapter", "reg"))]
    assert report.freed_bytes == 4 * 1000


def test_dry_run_reports_the_same_and_removes_nothing(store):
    before = sorted(p.name for p in store.asset_dir("lora_adapter").iterdir())
    report = sweep(store.root, RetentionPolicy(keep_last=3, max_age_days=4), dry_run=True)
    assert set(report.removed["lora_adapter"]) == {"n3", "o5", ".n9.tmpab12", "lora-old.work"}
    assert sorted(p.name for p in store.asset_dir("lora_adapter").iterdir()) == before


def test_count_only_policy_and_absent_assets(store):
    report = sweep(store.root, RetentionPolicy(keep_last=1, max_age_days=None))
    assert set(report.removed["lora_adapter"]) == {"n2", "n3", "o5", ".n9.tmpab12", "lora-old.work"}
    assert "fused_model" not in report.removed  # no folder, nothing to do
    assert sweep(store.root / "nowhere").removed == {}


def test_policy_refuses_nonsense():
    with pytest.raises(ValueError, match="keep_last"):
        RetentionPolicy(keep_last=-1)
    with pytest.raises(ValueError, match="max_age_days"):
        RetentionPolicy(max_age_days=0)
