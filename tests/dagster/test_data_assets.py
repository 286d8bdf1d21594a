from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from assets.data import curated_chatml, qualified_scores, raw_sessions, validated_splits
from assets.data_checks import (
    validated_splits_chatml_schema,
    validated_splits_no_leakage,
    validated_splits_no_secrets,
)
from assets.models import base_model
from pipeline.ingest import session_days

ROOT = Path(__file__).resolve().parents[2]
PARTITIONED = [raw_sessions, qualified_scores, curated_chatml]
CHECKS = [validated_splits_chatml_schema, validated_splits_no_leakage, validated_splits_no_secrets]


def _range_tags(first: str, last: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def test_data_assets_run_for_all_sample_days_and_pass_the_checks(resources, sample, tmp_path):
    days = sorted(set(session_days(sample.projects_dir, ZoneInfo("UTC")).values()))
    instance = dg.DagsterInstance.ephemeral()
    ranged = dg.materialize(
        PARTITIONED, resources=resources, instance=instance, tags=_range_tags(days[0], days[-1])
    )
    assert ranged.success
    final = dg.materialize(
        [base_model, validated_splits, *CHECKS], resources=resources, instance=instance
    )
    assert final.success
    evaluations = {e.check_name: e.passed for e in final.get_asset_check_evaluations()}
    assert evaluations == {c.check_key.name: True for c in CHECKS}
    meta = final.asset_materializations_for_node("validated_splits")[0].metadata
    assert meta["train"].value > meta["valid"].value > 0 and meta["test"].value > 0
    store = tmp_path / "artifacts"
    current = json.loads((store / "validated_splits" / "current.json").read_text())
    report = json.loads((Path(current["path"]) / "report.json").read_text())
    strategies = {
        json.loads(x)["provenance"]["strategy"]
        for x in (Path(current["path"]) / "train.jsonl").read_text().splitlines()
    }
    assert {"A", "B", "C", "rated"} <= strategies
    assert report["stages"]["scrub"]["replaced"]  # the sample's planted secrets were found
    scores = ranged.asset_materializations_for_node("qualified_scores")[0].metadata
    assert "| tier | conversations |" in scores["distribution"].value


def test_cli_backfills_a_partition_range_in_one_run(sample, tmp_path):
    days = sorted(set(session_days(sample.projects_dir, ZoneInfo("UTC")).values()))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path),
        "NIGHTSHIFT_HOME": str(tmp_path),
        "NIGHTSHIFT_WORKSPACE": str(sample.root),
    }
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    cmd = [
        Path(sys.executable).parent / "dagster",
        "asset",
        "materialize",
        "-m",
        "definitions",
        "--select",
        "raw_sessions,qualified_scores,curated_chatml",
        "--partition-range",
        f"{days[1]}...{days[3]}",
    ]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    for day in days[1:4]:
        assert (tmp_path / "artifacts" / "curated_chatml" / day / "examples.jsonl").is_file()
    assert not (tmp_path / "artifacts" / "curated_chatml" / days[0]).exists()
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    runs = instance.get_runs()
    assert len(runs) == 1  # BackfillPolicy.single_run: three days, one run
