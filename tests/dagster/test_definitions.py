from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dagster_cli_validates_the_workspace(tmp_path):
    dagster = Path(sys.executable).parent / "dagster"
    out = subprocess.run(
        [dagster, "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DAGSTER_HOME": str(tmp_path), "HOME": str(tmp_path)},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "All code locations passed validation" in out.stdout + out.stderr


def test_definitions_hold_the_job_schedule_and_checks():
    from definitions import defs

    job = defs.resolve_job_def("nightshift_job")
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert {"base_model", "base_model_gguf"} <= keys
    assert defs.resolve_schedule_def("nightly").cron_schedule == "0 3 * * *"
    checks = {k.name for k in defs.resolve_asset_graph().asset_check_keys}
    assert "base_model_gguf_tokenizer_parity" in checks


def test_the_whole_pipeline_is_in_the_job_with_a_blocking_check_per_gate():
    from definitions import defs

    job = defs.resolve_job_def("nightshift_job")
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    release = {"eval_report", "model_registry", "hf_release", "deployed_model"}
    assert release | {"augmented_examples", "lora_adapter", "gguf_quants"} <= keys
    checks = {k.name for k in defs.resolve_asset_graph().asset_check_keys}
    gates = {"perplexity", "exact_match", "quant_kl", "latency", "canary", "behaviour"}
    assert {f"eval_report_{g}" for g in gates} <= checks


def test_model_work_and_the_serving_swap_share_one_pool_of_one():
    """Training and a swap never run at the same time: one pool, limit 1 (dagster.yaml)."""
    import yaml

    from definitions import defs

    graph = defs.resolve_asset_graph()
    pools = {
        k.to_user_string(): graph.get(k).assets_def.op.pool for k in graph.get_all_asset_keys()
    }
    model_work = ("base_model_gguf", "lora_adapter", "fused_model", "gguf_quants")
    assert {pools[a] for a in (*model_work, "eval_report", "deployed_model")} == {
        "nightshift_model"
    }
    assert pools["raw_sessions"] == "nightshift_ingest"  # backfill runs never ingest together
    config = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    assert config["concurrency"]["pools"]["default_limit"] == 1
