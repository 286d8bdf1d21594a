"""A run that fills the disk fails cleanly: FAILURE, a "disk full" message with the path and the
free space, and no half-written files left where the artifacts go.

The artifact store sits on a real 2 MB tmpfs, filled up before the run (skipped with the reason
where mounting is not permitted; tests/core/test_disk.py covers ENOSPC through /dev/full).
"""

from __future__ import annotations

import json

import dagster as dg
import pytest

from assets.training import lora_adapter
from pipeline.artifacts import ArtifactStore
from pipeline.doctor import command_fix_split
from resources import ArtifactStoreResource, LlamaCppResource, MLXResource
from tests.small_fs import fill, small_tmpfs


@pytest.fixture
def full_store(tmp_path, tiny_model):
    """What lora_adapter reads, on a 2 MB tmpfs left with 8 KB free."""
    with small_tmpfs(tmp_path / "small", "2m") as mnt:
        store = ArtifactStore(mnt / "artifacts")
        with store.write_version("validated_splits", "splits-test") as tmp:
            command_fix_split(tmp, seed=0, n=32)
        store.set_current("validated_splits", "splits-test")
        with store.write_version("base_model", "base-test") as tmp:
            (tmp / "source.json").write_text(json.dumps({"path": str(tiny_model.path)}))
        store.set_current("base_model", "base-test")
        fill(mnt, leave=8 * 1024)
        yield store


def test_training_on_a_full_disk_fails_the_run_with_disk_full(full_store, toolchain):
    result = dg.materialize(
        [lora_adapter],
        resources={
            "artifacts": ArtifactStoreResource(root=str(full_store.root)),
            "llama_cpp": LlamaCppResource(),
            "mlx": MLXResource(iters=10),
        },
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    assert result.dagster_run.status == dg.DagsterRunStatus.FAILURE
    [failure] = result.get_step_failure_events()
    error = failure.step_failure_data.error.cause  # Dagster wraps what the asset raised
    assert error.cls_name == "DiskFullError", failure.step_failure_data.error.message
    assert "disk full: no space left writing" in error.message
    assert str(full_store.root / "lora_adapter") in error.message
    assert "free now)" in error.message
    work = full_store.root / "lora_adapter"
    leftovers = [p for p in work.rglob(".*") if p.name != ".train.lock"]
    assert leftovers == [], leftovers  # temporaries and half-written checkpoints are gone
