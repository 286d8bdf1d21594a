from pathlib import Path

import dagster as dg

from pipeline.artifacts import ArtifactStore


class ArtifactStoreResource(dg.ConfigurableResource):
    """Versioned files under one root (default `$NIGHTSHIFT_HOME/artifacts`)."""

    root: str

    def store(self) -> ArtifactStore:
        return ArtifactStore(Path(self.root).expanduser())
