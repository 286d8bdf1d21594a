"""The data stages: raw sessions by day, their scores and examples, then validated splits."""

import json
import os
from collections import Counter
from zoneinfo import ZoneInfo

import dagster as dg

from pipeline.base_model import model_dir_of, token_counter
from pipeline.curate import CurateConfig, curate, skill_examples
from pipeline.ingest import IngestIndex, collect_days, copy_sources, read_jsonl, write_day
from pipeline.paths import atomic_write_text
from pipeline.qualify import DIMENSIONS, Score, score_all, tier_counts
from pipeline.ratings import RatingsError
from pipeline.types import ChatExample, Conversation
from pipeline.validate import ValidateConfig, validate, write_splits
from resources import ArtifactStoreResource, WorkspaceResource

DATA = "data"
TIMEZONE = os.environ.get("NIGHTSHIFT_TIMEZONE", "UTC")
# Days a session can start on; earlier history is reachable by moving the start back.
DAILY = dg.DailyPartitionsDefinition(
    start_date=os.environ.get("NIGHTSHIFT_PARTITION_START", "2026-01-01"),
    timezone=TIMEZONE,
)
SINGLE_RUN = dg.BackfillPolicy.single_run()


def _day_dir(artifacts: ArtifactStoreResource, asset: str, day: str):
    return artifacts.store().asset_dir(asset) / day


def _conversations(artifacts: ArtifactStoreResource, day: str) -> list[Conversation]:
    rows = read_jsonl(_day_dir(artifacts, "raw_sessions", day) / "conversations.jsonl")
    return [Conversation.from_json(r) for r in rows]


# Two backfill runs at once would both rewrite the shared ingest index: one at a time.
@dg.asset(
    group_name=DATA,
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    code_version="1",
    pool="nightshift_ingest",
)
def raw_sessions(
    context: dg.AssetExecutionContext,
    workspace: WorkspaceResource,
    artifacts: ArtifactStoreResource,
) -> dg.MaterializeResult:
    """Claude Code sessions and rated conversations that started on each day, parsed."""
    store = artifacts.store()
    source = store.asset_dir("raw_sessions") / "source"
    copied = copy_sources(workspace.projects_path(), source)
    context.log.info(f"source logs copied into the store: {copied}")
    days = context.partition_keys
    index_path = store.asset_dir("raw_sessions") / "index.json"
    index = IngestIndex.load(index_path)
    if index.damaged:
        context.log.warning(index.damaged)
    tz = ZoneInfo(TIMEZONE)
    try:
        batch = collect_days(source, days, tz, ratings_url=workspace.ratings_url, index=index)
    except RatingsError as exc:  # its message names the database and the fix: no traceback
        raise dg.Failure(str(exc)) from None
    for day, convs in batch.days.items():
        write_day(_day_dir(artifacts, "raw_sessions", day), convs, batch.report)
    index.save(index_path)  # after the days are written: a crash re-reads, never skips
    kinds = Counter(c.kind for convs in batch.days.values() for c in convs)
    skipped = batch.report.get("claude_code", {}).get("skipped", {})
    context.log.info(f"{sum(kinds.values())} conversations over {len(days)} day(s): {dict(kinds)}")
    return dg.MaterializeResult(
        metadata={
            "conversations": sum(kinds.values()),
            "by_kind": dict(kinds),
            "skipped_records": dg.MetadataValue.json(skipped),
            "copied_into_store": dg.MetadataValue.json(copied),
            "report": dg.MetadataValue.json(batch.report),
            **({"ingest_index_rebuilt": index.damaged} if index.damaged else {}),
        }
    )


def _scores_table(scores: list[Score]) -> str:
    counts = tier_counts(scores)
    lines = ["| tier | conversations |", "| --- | ---: |"]
    lines += [f"| {t} | {n} |" for t, n in counts.items()]
    if scores:
        lines += ["", "| dimension | mean |", "| --- | ---: |"]
        for d in DIMENSIONS:
            lines.append(f"| {d} | {sum(getattr(s, d) for s in scores) / len(scores):.3f} |")
        lines += ["", "| conversation | tier | score |", "| --- | --- | ---: |"]
        top = sorted(scores, key=lambda s: -s.score)[:25]
        lines += [f"| {s.conversation_id} | {s.tier} | {s.score:.3f} |" for s in top]
    return "\n".join(lines)


@dg.asset(
    group_name=DATA,
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    deps=[raw_sessions],
    code_version="1",
)
def qualified_scores(
    context: dg.AssetExecutionContext, artifacts: ArtifactStoreResource
) -> dg.MaterializeResult:
    """Six quality dimensions per conversation, a weighted score, tiers A/B/C."""
    every: list[Score] = []
    for day in context.partition_keys:
        scores = score_all(_conversations(artifacts, day))
        text = "".join(json.dumps(s.to_json()) + "\n" for s in scores)
        atomic_write_text(_day_dir(artifacts, "qualified_scores", day) / "scores.jsonl", text)
        every += scores
    return dg.MaterializeResult(
        metadata={
            "conversations": len(every),
            "tiers": dg.MetadataValue.json(tier_counts(every)),
            "distribution": dg.MetadataValue.md(_scores_table(every)),
        }
    )


@dg.asset(
    group_name=DATA,
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    deps=[raw_sessions, qualified_scores],
    code_version="1",
)
def curated_chatml(
    context: dg.AssetExecutionContext,
    workspace: WorkspaceResource,
    artifacts: ArtifactStoreResource,
) -> dg.MaterializeResult:
    """Training examples in ChatML by strategy (A, B, D, rated), with provenance."""
    made: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    for day in context.partition_keys:
        folder = _day_dir(artifacts, "qualified_scores", day)
        scores = {r["conversation_id"]: Score(**r) for r in read_jsonl(folder / "scores.jsonl")}
        cfg = CurateConfig(scrub_skip_rules=tuple(workspace.scrub_skip_rules))
        examples, why = curate(_conversations(artifacts, day), scores, cfg)
        text = "".join(json.dumps(e.to_json(), ensure_ascii=False) + "\n" for e in examples)
        atomic_write_text(_day_dir(artifacts, "curated_chatml", day) / "examples.jsonl", text)
        made.update(e.provenance["strategy"] for e in examples)
        dropped.update(why)
    return dg.MaterializeResult(
        metadata={
            "examples": sum(made.values()),
            "by_strategy": dg.MetadataValue.json(dict(made)),
            "conversations_without_example": dg.MetadataValue.json(dict(dropped)),
        }
    )


@dg.asset(
    group_name=DATA,
    deps=[
        dg.AssetDep(curated_chatml, partition_mapping=dg.AllPartitionMapping()),
        "base_model",
        "augmented_examples",  # optional: an empty or missing version adds nothing
    ],
    code_version="1",
)
def validated_splits(
    context: dg.AssetExecutionContext,
    workspace: WorkspaceResource,
    artifacts: ArtifactStoreResource,
) -> dg.MaterializeResult:
    """Scrubbed, deduplicated, leak-free train/valid/test.jsonl for mlx-lm, and a data report."""
    store = artifacts.store()
    examples: list[ChatExample] = []
    days = sorted(p.parent.name for p in store.asset_dir("curated_chatml").glob("*/examples.jsonl"))
    for day in days:
        path = store.asset_dir("curated_chatml") / day / "examples.jsonl"
        examples += [ChatExample.from_json(r) for r in read_jsonl(path)]
    skills, _ = skill_examples(workspace.skills_path())
    examples += skills
    augmented = store.current("augmented_examples")
    if augmented is not None:
        examples += [ChatExample.from_json(r) for r in read_jsonl(augmented / "examples.jsonl")]
    context.log.info(f"validating {len(examples)} examples from {len(days)} day(s) + skills")
    base = store.current("base_model")
    if base is None:
        raise dg.Failure("base_model has no current version; its tokenizer measures lengths")
    cfg = ValidateConfig(scrub_skip_rules=tuple(workspace.scrub_skip_rules))
    result = validate(examples, token_counter(model_dir_of(base)), cfg)
    version = result.version()
    with store.write_version("validated_splits", version) as tmp:
        write_splits(result, tmp)
    store.set_current("validated_splits", version, days=len(days))
    report = result.report
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(store.version_dir("validated_splits", version))),
            "train": len(result.splits["train"]),
            "valid": len(result.splits["valid"]),
            "test": len(result.splits["test"]),
            "dropped_by_reason": dg.MetadataValue.json(report["dropped_by_reason"]),
            "report": dg.MetadataValue.md(
                (store.version_dir("validated_splits", version) / "report.md").read_text()
            ),
        },
        data_version=dg.DataVersion(version),
    )
