from pathlib import Path

import dagster as dg
from pydantic import Field

from pipeline.serve import (
    ServeConfig,
    ensure_server,
    request_rollback,
    request_swap,
    server_status,
)


class ServingResource(dg.ConfigurableResource):
    """The stable local endpoint; swaps go to its long-running process, started if needed."""

    host: str = Field(default="127.0.0.1", description="Where the stable endpoint listens.")
    port: int = Field(default=8080, description="The stable port clients use.")
    threads: int = Field(default=2, description="Compute threads per model server.")
    ctx: int = Field(default=512, description="Context tokens per model server.")
    backend: str = Field(
        default="llama-server", description="llama-server (a GGUF) or mlx_lm.server (MLX dir)."
    )
    swap_timeout_s: float = Field(
        default=600.0, description="Seconds a swap may take: load, health, smoke, drain."
    )

    def config(self) -> ServeConfig:
        return ServeConfig(
            host=self.host, port=self.port, threads=self.threads, ctx=self.ctx, backend=self.backend
        )

    def swap(self, model_path: str | Path, version: str) -> dict:
        """Serve `model_path` as `version`; raises SwapError with the old model still serving."""
        cfg = self.config()
        ensure_server(cfg)
        return request_swap(cfg.endpoint, model_path, version, timeout=self.swap_timeout_s)

    def rollback(self) -> dict:
        cfg = self.config()
        ensure_server(cfg)
        return request_rollback(cfg.endpoint, timeout=self.swap_timeout_s)

    def status(self) -> dict | None:
        """What the endpoint serves, or None when no serving process answers."""
        try:
            return server_status(self.config().endpoint)
        except OSError:
            return None
