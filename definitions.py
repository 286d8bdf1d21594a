"""The one Dagster Definitions: assets, checks, resources and schedules joined here."""

import os
from pathlib import Path

import dagster as dg

from assets import data, data_checks, models, training
from pipeline.instance import artifacts_root
from resources import ArtifactStoreResource, LlamaCppResource, MLXResource, WorkspaceResource
from schedules import nightly_schedule, nightshift_job


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


defs = dg.Definitions(
    assets=dg.load_assets_from_modules([data, models, training]),
    asset_checks=dg.load_asset_checks_from_modules([data_checks, models, training]),
    jobs=[nightshift_job],
    schedules=[nightly_schedule],
    resources={
        "artifacts": ArtifactStoreResource(root=str(artifacts_root())),
        "llama_cpp": LlamaCppResource(),
        "mlx": MLXResource(base_model=os.environ.get("NIGHTSHIFT_BASE_MODEL", "tiny")),
        "workspace": workspace_resource(),
    },
)
