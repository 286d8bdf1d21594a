"""The one Dagster Definitions: assets, checks, resources and schedules joined here."""

import os
from pathlib import Path

import dagster as dg

from assets import augment, data, data_checks, evaluation, models, release, training
from pipeline.instance import artifacts_root
from pipeline.paths import nightshift_home
from resources import ArtifactStoreResource, LlamaCppResource, MLXResource, WorkspaceResource
from resources.claude import ClaudeResource
from resources.evaluation import EvaluationResource
from resources.hf_hub import HFHubResource, hf_token
from resources.serving import ServingResource
from schedules import (
    cleanup_job,
    cleanup_schedule,
    new_data_sensor,
    nightly_schedule,
    nightshift_data_job,
    nightshift_job,
    run_failure_notice,
)


def workspace_resource() -> WorkspaceResource:
    """`NIGHTSHIFT_WORKSPACE` names a sample-layout folder (the demo); else ~/.claude."""
    root = os.environ.get("NIGHTSHIFT_WORKSPACE")
    if not root:
        return WorkspaceResource()
    base = Path(root).expanduser()
    return WorkspaceResource(
        projects_dir=str(base / "claude" / "projects"),
        skills_dir=str(base / "skills"),
        ratings_url=f"sqlite:///{base / 'feedback.sqlite'}",
    )


def golden_file() -> str:
    """The user's golden cases: NIGHTSHIFT_GOLDEN, the demo workspace's, or the home's."""
    if os.environ.get("NIGHTSHIFT_GOLDEN"):
        return os.environ["NIGHTSHIFT_GOLDEN"]
    if os.environ.get("NIGHTSHIFT_WORKSPACE"):
        return str(Path(os.environ["NIGHTSHIFT_WORKSPACE"]).expanduser() / "golden.json")
    return str(nightshift_home() / "golden.json")


defs = dg.Definitions(
    assets=dg.load_assets_from_modules([data, augment, models, training, evaluation, release]),
    asset_checks=[
        *dg.load_asset_checks_from_modules([data_checks, models, training]),
        *evaluation.GATE_CHECKS,
    ],
    jobs=[nightshift_job, nightshift_data_job, cleanup_job],
    schedules=[nightly_schedule, cleanup_schedule],
    sensors=[new_data_sensor, run_failure_notice],
    resources={
        "artifacts": ArtifactStoreResource(root=str(artifacts_root())),
        "claude": ClaudeResource.from_env(),  # no ANTHROPIC_API_KEY: augmentation says skipped
        "evaluation": EvaluationResource(golden_file=golden_file()),
        # No HF_TOKEN: the release stays in the local registry and says so.
        "hf_hub": HFHubResource(
            token=hf_token(),
            repo_id=os.environ.get("NIGHTSHIFT_HF_REPO", ""),
            test_repo_id=os.environ.get("NIGHTSHIFT_HF_TEST_REPO", ""),
        ),
        "llama_cpp": LlamaCppResource(),
        "mlx": MLXResource(base_model=os.environ.get("NIGHTSHIFT_BASE_MODEL", "tiny")),
        "serving": ServingResource(port=int(os.environ.get("NIGHTSHIFT_SERVE_PORT", "8080"))),
        "workspace": workspace_resource(),
    },
)
