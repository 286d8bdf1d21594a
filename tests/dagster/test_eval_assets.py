"""eval_report and its gates on the real tiny model: training must beat the base model on the
sample's command-fix task, and a sabotaged run must be stopped before anything ships."""

from __future__ import annotations

import json
import random
from zoneinfo import ZoneInfo

import dagster as dg
from typer.testing import CliRunner

from assets.data import curated_chatml, qualified_scores, raw_sessions, validated_splits
from assets.evaluation import GATE_CHECKS, eval_report
from assets.models import base_model, base_model_gguf
from assets.release import hf_release, model_registry
from assets.training import fused_model, gguf_quants, lora_adapter
from pipeline.artifacts import ArtifactStore
from pipeline.cli import app
from pipeline.ingest import read_jsonl, session_days
from pipeline.registry import Registry
from resources.evaluation import EvaluationResource
from resources.hf_hub import HFHubResource

STAGES = [base_model_gguf, lora_adapter, fused_model, gguf_quants, eval_report, *GATE_CHECKS]
RELEASE = [model_registry, hf_release]


def _prepare(resources, sample, instance) -> None:
    days = sorted(set(session_days(sample.projects_dir, ZoneInfo("UTC")).values()))
    tags = {
        "dagster/asset_partition_range_start": days[0],
        "dagster/asset_partition_range_end": days[-1],
    }
    data = [raw_sessions, qualified_scores, curated_chatml]
    assert dg.materialize(data, resources=resources, instance=instance, tags=tags).success
    assert dg.materialize([base_model, validated_splits], resources=resources, instance=instance)


def sabotage(store: ArtifactStore) -> str:
    """A new current split whose training targets are shuffled across examples."""
    splits = store.current("validated_splits")
    rows = read_jsonl(splits / "train.jsonl")
    answers = [r["messages"][-1]["content"] for r in rows]
    random.Random(0).shuffle(answers)
    version = f"{splits.name}-shuffled"
    with store.write_version("validated_splits", version) as tmp:
        for name in ("valid.jsonl", "test.jsonl"):
            (tmp / name).write_bytes((splits / name).read_bytes())
        with (tmp / "train.jsonl").open("w") as fh:
            for row, answer in zip(rows, answers, strict=True):
                row["messages"][-1]["content"] = answer
                fh.write(json.dumps(row) + "\n")
    store.set_current("validated_splits", version)
    return version


def report_of(store: ArtifactStore) -> dict:
    return json.loads((store.current("eval_report") / "report.json").read_text())


def test_training_beats_the_base_model_and_a_sabotaged_run_is_blocked(
    resources, sample, tmp_path, monkeypatch
):
    monkeypatch.setenv("NIGHTSHIFT_HOME", str(tmp_path))  # `nightshift report` reads this store
    resources |= {
        "evaluation": EvaluationResource(golden_file=str(sample.golden)),
        "hf_hub": HFHubResource(),  # no token: the release stays local and says so
    }
    instance = dg.DagsterInstance.ephemeral()
    _prepare(resources, sample, instance)
    store = ArtifactStore(tmp_path / "artifacts")

    first = dg.materialize(STAGES + RELEASE, resources=resources, instance=instance)
    assert first.success
    report = report_of(store)
    assert report["reference"] == "base" and report["passed"], report["gates"]
    trained = report["models"]["candidate"]["tasks"]["command-fix"]["exact_match"]
    base = report["models"]["base"]["tasks"]["command-fix"]["exact_match"]
    assert trained >= base + 0.25, (trained, base)  # learned, not noise: 40 held-out typos
    markdown = (store.current("eval_report") / "report.md").read_text()
    assert "| command-fix | 40 |" in markdown and "Δ vs base" in markdown
    assert "![metrics across versions](data:image/png;base64," in markdown
    registry = Registry(store.root / "registry")
    assert registry.champion() == "v1"
    released = first.asset_materializations_for_node("hf_release")[0].metadata
    assert released["skipped"].value and "HF_TOKEN is not set" in released["reason"].value
    printed = CliRunner().invoke(app, ["report"])
    assert printed.exit_code == 0 and "PASSED: may ship" in printed.output
    assert "| command-fix | 40 |" in printed.output and "(plot: " in printed.output
    assert CliRunner().invoke(app, ["report", "v1"]).output == printed.output.replace(
        str(store.current("eval_report")), str(registry.version_dir("v1") / "eval")
    )

    sabotage(store)
    second = dg.materialize(
        STAGES + RELEASE, resources=resources, instance=instance, raise_on_error=False
    )
    checks = {e.check_name: e for e in second.get_asset_check_evaluations()}
    failed = {name for name, e in checks.items() if not e.passed}
    assert "eval_report_exact_match" in failed, {n: e.metadata for n, e in checks.items()}
    message = checks["eval_report_exact_match"].metadata["message"].value
    assert "against the champion's" in message and "short" in message
    assert not second.asset_materializations_for_node("model_registry")
    assert not second.asset_materializations_for_node("hf_release")
    assert registry.champion() == "v1" and registry.list_versions() == ["v1"]
    assert report_of(store)["reference"] == "champion" and not report_of(store)["passed"]
