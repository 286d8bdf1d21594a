"""augmented_examples with the real resources, Claude served by a loopback server."""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from assets.augment import augmented_examples
from assets.data import curated_chatml, qualified_scores, raw_sessions, validated_splits
from assets.models import base_model
from pipeline.ingest import session_days
from resources.claude import ClaudeResource
from tests.anthropic_server import API_KEY, AnthropicServer, FakeAnthropic

PARTITIONED = [raw_sessions, qualified_scores, curated_chatml]


def _curate_every_day(resources, sample, instance) -> None:
    days = sorted(set(session_days(sample.projects_dir, ZoneInfo("UTC")).values()))
    tags = {
        "dagster/asset_partition_range_start": days[0],
        "dagster/asset_partition_range_end": days[-1],
    }
    assert dg.materialize(PARTITIONED, resources=resources, instance=instance, tags=tags).success


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_augmented_examples_go_through_validation_and_a_rerun_is_free(resources, sample):
    instance = dg.DagsterInstance.ephemeral()
    _curate_every_day(resources, sample, instance)
    fake = FakeAnthropic(batch_polls=2, rate_limit_first=1)
    with AnthropicServer(fake) as url:
        claude = ClaudeResource(
            api_key=API_KEY, base_url=url, poll_interval_s=0.01, budget_usd=5.0, max_retries=2
        )
        run = dg.materialize(
            [base_model, augmented_examples, validated_splits],
            resources={**resources, "claude": claude},
            instance=instance,
        )
        assert run.success
        meta = run.asset_materializations_for_node("augmented_examples")[0].metadata
        assert meta["skipped"].value is False
        assert meta["batches"].value == 1 and meta["requests"].value > 0
        assert 0 < meta["spent_usd"].value <= meta["budget_usd"].value == 5.0
        strategies = meta["by_strategy"].value
        assert strategies["augment-skill-qa"] > 0 and strategies["augment-scenario"] > 0
        assert strategies["augment-distill"] > 0 and strategies["augment-preference"] > 0

        store = Path(resources["artifacts"].root)
        version = json.loads((store / "augmented_examples" / "current.json").read_text())
        usage = json.loads((Path(version["path"]) / "usage.json").read_text())
        assert usage["spent_usd"] == meta["spent_usd"].value
        prefs = _rows(Path(version["path"]) / "preferences.jsonl")
        assert prefs and all({"prompt", "chosen", "rejected"} <= set(p) for p in prefs)

        splits = json.loads((store / "validated_splits" / "current.json").read_text())
        kept = [
            row
            for split in ("train", "valid", "test")
            for row in _rows(Path(splits["path"]) / f"{split}.jsonl")
        ]
        augmented = [r for r in kept if r["provenance"]["strategy"].startswith("augment-")]
        assert augmented and all(r["provenance"]["cost_usd"] >= 0 for r in augmented)

        posts = len(fake.bodies)
        again = dg.materialize(
            [augmented_examples], resources={**resources, "claude": claude}, instance=instance
        )
        meta = again.asset_materializations_for_node("augmented_examples")[0].metadata
        assert meta["spent_usd"].value == 0 and meta["requests"].value == 0
        assert meta["cache_hits"].value > 0
        assert len(fake.bodies) == posts  # nothing sent at all


def test_without_a_key_augmentation_is_skipped_and_validation_runs_on(resources, sample):
    instance = dg.DagsterInstance.ephemeral()
    _curate_every_day(resources, sample, instance)
    run = dg.materialize(
        [base_model, augmented_examples, validated_splits],
        resources={**resources, "claude": ClaudeResource()},
        instance=instance,
    )
    assert run.success
    meta = run.asset_materializations_for_node("augmented_examples")[0].metadata
    assert meta["skipped"].value is True
    assert meta["reason"].value == "ANTHROPIC_API_KEY is not set"
    store = Path(resources["artifacts"].root)
    version = json.loads((store / "augmented_examples" / "current.json").read_text())
    assert (Path(version["path"]) / "examples.jsonl").read_text() == ""
    assert run.asset_materializations_for_node("validated_splits")[0].metadata["train"].value > 0
