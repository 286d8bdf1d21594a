from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from assets.data import curated_chatml, qualified_scores, raw_sessions, validated_splits
from assets.models import base_model
from assets.training import fused_model, gguf_quants, gguf_quants_validated, lora_adapter
from pipeline.ingest import session_days
from resources import MLXResource

MODEL_STAGES = [lora_adapter, fused_model, gguf_quants, gguf_quants_validated]


def _prepare(resources, sample, instance) -> None:
    days = sorted(set(session_days(sample.projects_dir, ZoneInfo("UTC")).values()))
    tags = {
        "dagster/asset_partition_range_start": days[0],
        "dagster/asset_partition_range_end": days[-1],
    }
    assert dg.materialize(
        [raw_sessions, qualified_scores, curated_chatml],
        resources=resources,
        instance=instance,
        tags=tags,
    ).success
    assert dg.materialize(
        [base_model, validated_splits], resources=resources, instance=instance
    ).success


def test_adapter_fuse_and_quants_for_real_then_no_retraining(resources, sample, tmp_path):
    # Short: the mechanics here; the defaults' full training runs in test_eval_assets.py.
    resources["mlx"] = MLXResource(iters=60)
    instance = dg.DagsterInstance.ephemeral()
    _prepare(resources, sample, instance)
    first = dg.materialize(MODEL_STAGES, resources=resources, instance=instance)
    assert first.success
    [check] = first.get_asset_check_evaluations()
    assert check.passed, check.metadata
    adapter = first.asset_materializations_for_node("lora_adapter")[0].metadata
    assert adapter["reused"].value is False and adapter["steps"].value >= 60
    assert adapter["final_train_loss"].value < 4.5  # learned: ln(vocab) is 6.9
    assert adapter["loss_curve"].value.startswith("![loss](data:image/png;base64,")
    fused = first.asset_materializations_for_node("fused_model")[0].metadata
    assert fused["parity_max_logit_diff"].value < 1e-3
    assert fused["adapter_effect_max_logit_diff"].value > 1e-3  # the adapter changed the model
    store = tmp_path / "artifacts"
    quants = json.loads(
        (
            Path(json.loads((store / "gguf_quants" / "current.json").read_text())["path"])
            / "quants.json"
        ).read_text()
    )
    assert [q["qtype"] for q in quants["quants"]] == ["Q4_K_M", "Q5_K_M", "Q8_0"]
    assert quants["imatrix"] and all(q["metadata"]["chat_template"] for q in quants["quants"])
    again = dg.materialize([lora_adapter], resources=resources, instance=instance)
    assert again.asset_materializations_for_node("lora_adapter")[0].metadata["reused"].value


def test_preflight_refuses_a_model_the_converter_cannot_take(resources, sample, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    _prepare(resources, sample, instance)
    base = Path(
        json.loads((tmp_path / "artifacts" / "base_model" / "current.json").read_text())["path"]
    )
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(
        json.dumps({**config, "architectures": ["NoSuchForCausalLM"]})
    )
    result = dg.materialize(
        [lora_adapter], resources=resources, instance=instance, raise_on_error=False
    )
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert "NoSuchForCausalLM is not supported" in str(error.message) + str(error.cause)
    assert not list((tmp_path / "artifacts" / "lora_adapter").glob("*.work"))  # nothing trained
