"""Claude augmentation: better answers, preference pairs, skill Q&A; skipped without a key.

Unpartitioned, like validated_splits: it reads every day's examples and conversations plus
the skill documents (which belong to no day), and one budget holds for the whole run. The
response cache makes the days already augmented free, so a nightly run pays for new work only.
"""

import hashlib
import json
from collections.abc import Iterator

import dagster as dg

from assets.data import DATA, curated_chatml, raw_sessions
from pipeline.artifacts import ArtifactStore
from pipeline.augment import AugmentConfig, AugmentResult, augment, write_augmented
from pipeline.ingest import read_jsonl
from pipeline.types import ChatExample, Conversation
from resources import ArtifactStoreResource, WorkspaceResource
from resources.claude import ClaudeResource

ASSET = "augmented_examples"
NO_KEY = "ANTHROPIC_API_KEY is not set"
EVERY_DAY = dg.AllPartitionMapping()


def _every_day(store: ArtifactStore, asset: str, name: str) -> Iterator[dict]:
    for path in sorted(store.asset_dir(asset).glob(f"*/{name}")):
        yield from read_jsonl(path)


def _version(result: AugmentResult) -> str:
    digest = hashlib.sha256()
    for row in [e.to_json() for e in result.examples] + result.preferences:
        digest.update(json.dumps(row, sort_keys=True).encode() + b"\n")
    return "augment-" + digest.hexdigest()[:12]


@dg.asset(
    group_name=DATA,
    deps=[
        dg.AssetDep(curated_chatml, partition_mapping=EVERY_DAY),
        dg.AssetDep(raw_sessions, partition_mapping=EVERY_DAY),
    ],
    code_version="1",
    kinds={"python", "anthropic"},
)
def augmented_examples(
    context: dg.AssetExecutionContext,
    claude: ClaudeResource,
    workspace: WorkspaceResource,
    artifacts: ArtifactStoreResource,
) -> dg.MaterializeResult:
    """Distilled tier-B answers, preference pairs, skill Q&A and scenarios from Claude."""
    store = artifacts.store()
    if not claude.enabled():
        context.log.info(f"augmentation skipped: {NO_KEY}")
        empty = AugmentResult()
        version = _version(empty)  # an empty version, so validated_splits reads nothing new
        with store.write_version(ASSET, version) as tmp:
            write_augmented(empty, {"skipped": True, "reason": NO_KEY}, tmp)
        store.set_current(ASSET, version, skipped=True)
        return dg.MaterializeResult(
            metadata={"skipped": True, "reason": NO_KEY, "examples": 0},
            data_version=dg.DataVersion(version),
        )
    rows = _every_day(store, "curated_chatml", "examples.jsonl")
    examples = [ChatExample.from_json(r) for r in rows]
    rows = _every_day(store, "raw_sessions", "conversations.jsonl")
    conversations = [Conversation.from_json(r) for r in rows]
    client = claude.client(store.asset_dir(ASSET) / "responses", context.log.info)
    client.resume_batches()  # a batch an interrupted run paid for lands in the cache first
    cfg = AugmentConfig(
        qa_per_skill=claude.qa_per_skill,
        scenarios_per_skill=claude.scenarios_per_skill,
        max_tokens=claude.max_tokens,
        model=claude.model,
    )
    result = augment(
        examples,
        conversations,
        workspace.skills_path(),
        lambda asks: client.run(asks, batch=claude.use_batches),
        cfg,
    )
    usage = {**client.usage.to_json(), "model": claude.model}
    version = _version(result)
    with store.write_version(ASSET, version) as tmp:
        write_augmented(result, usage, tmp)
    store.set_current(ASSET, version, spent_usd=usage["spent_usd"])
    return dg.MaterializeResult(
        metadata={
            "skipped": False,
            "path": dg.MetadataValue.path(str(store.version_dir(ASSET, version))),
            "examples": len(result.examples),
            "preference_pairs": len(result.preferences),
            "by_strategy": dg.MetadataValue.json(result.by_strategy()),
            "dropped": dg.MetadataValue.json(dict(result.dropped)),
            "requests": usage["requests"],
            "batches": usage["batches"],
            "input_tokens": usage["input_tokens"],
            "output_tokens": usage["output_tokens"],
            "prompt_cache_read_tokens": usage["prompt_cache_read_tokens"],
            "cache_hits": usage["cache_hits"],
            "spent_usd": usage["spent_usd"],
            "budget_usd": usage["budget_usd"],
            "usage": dg.MetadataValue.json(usage),
        },
        data_version=dg.DataVersion(version),
    )
