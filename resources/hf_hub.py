import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from pipeline.ratings import RatingsMapping
from pipeline.release import (
    DEFAULT_ENDPOINT,
    ReleaseConfig,
    ReleaseResult,
    release_and_mark_exported,
)


def hf_token() -> dg.EnvVar | None:
    """`dg.EnvVar("HF_TOKEN")` when it is set, else None (the release stays local).

    An EnvVar keeps the value out of run config and the UI; an unset one would fail every run
    at start, so it is only named when there is a token to resolve.
    """
    return dg.EnvVar("HF_TOKEN") if os.environ.get("HF_TOKEN") else None


class HFHubResource(dg.ConfigurableResource):
    """The Hugging Face Hub: a private test repo first, the public repo on promotion."""

    token: str | None = Field(default=None, description="Set with hf_token(): EnvVar HF_TOKEN.")
    endpoint: str = Field(default=DEFAULT_ENDPOINT, description="The Hub's URL.")
    repo_id: str = Field(default="", description="Public repo, owner/name: promoted versions.")
    test_repo_id: str = Field(default="", description="Test repo, owner/name: every release.")
    private: bool = Field(default=True, description="Create the test repo private.")
    license: str = Field(default="apache-2.0", description="Must be the base model's licence.")
    quants: list[str] = Field(default=["Q4_K_M"], description="GGUFs to upload; first: Ollama's.")

    def release_config(self) -> ReleaseConfig:
        return ReleaseConfig(
            repo_id=self.repo_id,
            test_repo_id=self.test_repo_id,
            test_private=self.private,
            endpoint=self.endpoint,
            license=self.license,
            quants=tuple(self.quants),
        )

    def release(
        self,
        version_dir: Path,
        ratings_url: str | None,
        tier: str = "test",
        mapping: RatingsMapping = RatingsMapping(),
        log=print,
    ) -> ReleaseResult:
        """Release a registry version to the tier's repo, then mark its ratings exported."""
        return release_and_mark_exported(
            version_dir,
            self.release_config(),
            self.token,
            ratings_url,
            tier=tier,
            mapping=mapping,
            log=log,
        )
