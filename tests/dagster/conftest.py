from __future__ import annotations

import dagster as dg
import pytest

from resources import ArtifactStoreResource, LlamaCppResource, MLXResource, WorkspaceResource


@pytest.fixture
def resources(tmp_path, sample) -> dict[str, dg.ConfigurableResource]:
    """The real resources, pointed at the sample workspace and a fresh artifact store."""
    return {
        "artifacts": ArtifactStoreResource(root=str(tmp_path / "artifacts")),
        "llama_cpp": LlamaCppResource(),
        "mlx": MLXResource(),
        "workspace": WorkspaceResource(
            projects_dir=str(sample.projects_dir),
            skills_dir=str(sample.skills_dir),
            ratings_url=f"sqlite:///{sample.ratings_db}",
        ),
    }
