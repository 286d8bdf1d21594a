from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from assets.models import base_model, base_model_gguf, base_model_gguf_tokenizer_parity


def _run(resources):
    return dg.materialize(
        [base_model, base_model_gguf, base_model_gguf_tokenizer_parity],
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
    )


def test_base_model_and_gguf_materialize_for_real_and_pass_parity(resources, tmp_path):
    result = _run(resources)
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["mismatched"].value == 0
    meta = result.asset_materializations_for_node("base_model")[0].metadata
    assert meta["parameters"].value < 1_000_000
    current = json.loads((tmp_path / "artifacts" / "base_model_gguf" / "current.json").read_text())
    gguf = Path(current["path"]) / "base-f16.gguf"
    assert gguf.read_bytes()[:4] == b"GGUF"


def test_unchanged_corpus_and_config_reuse_the_built_model(resources, tmp_path):
    assert _run(resources).success
    model_dir = next((tmp_path / "artifacts" / "base_model").glob("tiny-*"))
    built_at = (model_dir / "model.safetensors").stat().st_mtime_ns
    again = _run(resources)
    assert again.success
    assert (model_dir / "model.safetensors").stat().st_mtime_ns == built_at
    assert len(list((tmp_path / "artifacts" / "base_model").glob("tiny-*"))) == 1


def test_no_text_to_train_on_fails_with_the_fix(resources, tmp_path):
    from resources import WorkspaceResource

    resources["workspace"] = WorkspaceResource(
        projects_dir=str(tmp_path / "none"), skills_dir=str(tmp_path / "none")
    )
    result = dg.materialize(
        [base_model],
        resources=resources,
        raise_on_error=False,
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "nightshift sample create" in failure.message
