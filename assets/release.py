"""After the gates: the registry version and champion, the Hub release, the served model.

All three sit downstream of eval_report's blocking gate checks, so a model that failed a gate
is never registered as champion, released or served.
"""

import json
from importlib.metadata import version as package_version

import dagster as dg

from assets.evaluation import eval_report, registry_of
from pipeline.ratings import RatingsError, read_rated_conversations
from pipeline.registry import RegistryError
from resources import ArtifactStoreResource, WorkspaceResource
from resources.evaluation import EvaluationResource
from resources.hf_hub import HFHubResource
from resources.serving import ServingResource

RELEASE = "release"
KEEP_VERSIONS = 5  # registry retention: the newest N and the champion


def _current(artifacts: ArtifactStoreResource, asset: str):
    path = artifacts.store().current(asset)
    if path is None:
        raise dg.Failure(f"{asset} has no current version; materialize it first")
    return path


def _champion(registry) -> str:
    try:
        version = registry.champion()
    except RegistryError as exc:  # a damaged champion.json: the message names the repair
        raise dg.Failure(str(exc)) from None
    if version is None:
        raise dg.Failure("no champion yet: materialize model_registry (it needs passed gates)")
    return version


def used_rating_ids(artifacts: ArtifactStoreResource, ratings_url: str | None) -> list[int | str]:
    """The ratings the ingested days read that are still unexported in the database: what a
    successful release marks exported (one deleted since must not block every release)."""
    ids: set[int | str] = set()
    for report in artifacts.store().asset_dir("raw_sessions").glob("*/report.json"):
        ratings = json.loads(report.read_text()).get("ratings_db") or {}
        ids.update(ratings.get("rating_ids") or [])
    if ids and ratings_url:
        try:
            ids &= set(read_rated_conversations(ratings_url)[1].rating_ids)
        except RatingsError as exc:  # its message names the database and the fix
            raise dg.Failure(str(exc)) from None
    return sorted(ids, key=str)  # ids may be integers or text (UUIDs)


@dg.asset(group_name=RELEASE, deps=[eval_report], code_version="1")
def model_registry(
    context: dg.AssetExecutionContext,
    artifacts: ArtifactStoreResource,
    evaluation: EvaluationResource,
    workspace: WorkspaceResource,
) -> dg.MaterializeResult:
    """The evaluated quants and adapter as registry version vN, made the champion."""
    report_dir = _current(artifacts, "eval_report")
    report = json.loads((report_dir / "report.json").read_text())
    # Exactly the files the report measured, even if a newer quant was built since.
    store = artifacts.store()
    quants = store.version_dir("gguf_quants", report["quants_version"])
    adapter = store.version_dir("lora_adapter", report["quants_version"])
    if not (quants.is_dir() and adapter.is_dir()):
        raise dg.Failure(f"the evaluated version {report['quants_version']} is gone from the store")
    files = {p.name: p for p in quants.glob("model-*.gguf")}
    files |= {f"adapter/{p.name}": p for p in adapter.iterdir() if p.is_file()}
    files |= {f"eval/{p.name}": p for p in report_dir.iterdir() if p.is_file()}
    cand = report["models"]["candidate"]
    registry = registry_of(artifacts)
    version = registry.register(
        files,
        base_model=_current(artifacts, "base_model").name,
        data_version=_current(artifacts, "validated_splits").name,
        code_version=f"nightshift {package_version('nightshift')}",
        config={**report["config"], "adapter": adapter.name},
        metrics={
            "answer_perplexity": cand["answer_perplexity"]["ppl"],
            "text_perplexity": cand["perplexity"]["ppl"],
            "exact_match": cand["tasks"]["overall"]["exact_match"],
            "keyword_recall": cand["tasks"]["overall"]["keyword_recall"],
            "canary": cand["canary"]["score"],
            "ttft_ms_p95": cand["latency"]["ttft_ms_p95"],
        },
        gates={g["name"]: g for g in report["gates"]},
        rating_ids=used_rating_ids(artifacts, workspace.ratings_url),
    )
    try:
        previous = registry.champion()
        latest = registry.set_champion(version)  # verifies every file against the manifest first
    except RegistryError as exc:
        raise dg.Failure(f"{version} is registered but is not the champion: {exc}") from None
    removed = registry.retain(KEEP_VERSIONS)
    context.log.info(f"registered {version}; champion {previous} -> {version}; removed {removed}")
    return dg.MaterializeResult(
        metadata={
            "version": version,
            "previous_champion": previous or "none",
            "path": dg.MetadataValue.path(str(registry.version_dir(version))),
            "latest_json": dg.MetadataValue.path(str(registry.root / "latest.json")),
            "files": len(latest["files"]),
            "removed_by_retention": removed,
            "ship_quant": evaluation.ship_quant,
        },
        data_version=dg.DataVersion(version),
    )


@dg.asset(group_name=RELEASE, deps=[model_registry], code_version="1")
def hf_release(
    context: dg.AssetExecutionContext,
    artifacts: ArtifactStoreResource,
    hf_hub: HFHubResource,
    workspace: WorkspaceResource,
) -> dg.MaterializeResult:
    """The champion's quants, adapter, model card and Modelfile in one Hub commit; then, and
    only then, its ratings are marked exported. With no HF_TOKEN it stays local and says so."""
    registry = registry_of(artifacts)
    version = _champion(registry)
    result = hf_hub.release(
        registry.version_dir(version), workspace.ratings_url, tier="test", log=context.log.info
    )
    if result.local_only:
        context.log.warning(result.local_only)
    return dg.MaterializeResult(
        metadata={
            "version": version,
            "released": result.released,
            "skipped": bool(result.local_only),
            "reason": result.local_only or "",
            "repo": result.repo_id or "",
            "commit_url": result.commit_url or "",
            "files": result.files,
            "ratings_marked_exported": result.ratings_marked,
        }
    )


@dg.asset(group_name=RELEASE, deps=[model_registry], pool="nightshift_model", code_version="2")
def deployed_model(
    context: dg.AssetExecutionContext,
    artifacts: ArtifactStoreResource,
    serving: ServingResource,
) -> dg.MaterializeResult:
    """The champion behind the stable local endpoint, swapped in with zero downtime: the
    serving process verifies the version's files in the registry, and the new server must pass
    health and a smoke prompt before it takes traffic."""
    registry = registry_of(artifacts)
    version = _champion(registry)
    result = serving.swap(version, registry.root)
    endpoint = serving.config(registry.root).endpoint
    context.log.info(f"serving {version} at {endpoint}: {result}")
    return dg.MaterializeResult(
        metadata={
            "version": version,
            "endpoint": endpoint,
            "model": dg.MetadataValue.path(result["model"]),
            "swap": dg.MetadataValue.json(result),
        },
        data_version=dg.DataVersion(version),
    )
