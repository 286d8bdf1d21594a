import os
from pathlib import Path

import anthropic
import dagster as dg
from pydantic import Field

from pipeline.claude import ClaudeClient, ClaudeConfig, Prices, ResponseCache


class ClaudeResource(dg.ConfigurableResource):
    """Claude for data augmentation; optional: without an API key the work is skipped.

    Set `api_key=dg.EnvVar("ANTHROPIC_API_KEY")` so the key never lands in run config.
    """

    api_key: str | None = Field(default=None, description="ANTHROPIC_API_KEY; None skips.")
    base_url: str | None = Field(default=None, description="API root; None is Anthropic's.")
    model: str = "claude-sonnet-4-5"
    budget_usd: float = Field(default=1.0, description="USD per run, never overshot.")
    max_concurrency: int = Field(default=4, description="requests in flight at once")
    use_batches: bool = Field(default=True, description="Message Batches: half price, slower.")
    poll_interval_s: float = 30.0
    max_batch_wait_s: float = Field(default=24 * 3600.0, description="batches expire at 24 h")
    max_retries: int = Field(default=4, description="the SDK's retries (429, 5xx, timeouts)")
    timeout_s: float = Field(default=600.0, description="the SDK's per-request timeout")
    max_tokens: int = Field(default=1024, description="output cap per answer")
    qa_per_skill: int = Field(default=3, description="questions per skill document")
    scenarios_per_skill: int = Field(default=2, description="scenarios per skill document")
    input_usd_per_mtok: float | None = Field(default=None, description="for unlisted models")
    output_usd_per_mtok: float | None = Field(default=None, description="for unlisted models")

    @classmethod
    def from_env(cls, **settings: object) -> "ClaudeResource":
        """Keyed by ANTHROPIC_API_KEY when it is set; a missing EnvVar would fail every run."""
        if not os.environ.get("ANTHROPIC_API_KEY"):
            return cls(**settings)
        return cls(api_key=dg.EnvVar("ANTHROPIC_API_KEY"), **settings)

    def enabled(self) -> bool:
        return bool(self.api_key)

    def client(self, cache_dir: Path, log=lambda _msg: None) -> ClaudeClient:
        sdk = anthropic.Anthropic(
            api_key=self.api_key,
            base_url=self.base_url,
            max_retries=self.max_retries,
            timeout=self.timeout_s,
        )
        prices = None
        if self.input_usd_per_mtok is not None and self.output_usd_per_mtok is not None:
            prices = Prices(self.input_usd_per_mtok, self.output_usd_per_mtok)
        cfg = ClaudeConfig(
            model=self.model,
            budget_usd=self.budget_usd,
            max_concurrency=self.max_concurrency,
            poll_interval_s=self.poll_interval_s,
            max_batch_wait_s=self.max_batch_wait_s,
            prices=prices,
        )
        return ClaudeClient(sdk, ResponseCache(cache_dir), cfg, log)
