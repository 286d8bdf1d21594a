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
    """The stable local endpoint; swaps go to its long-running process, started if needed.

    Swaps name registry versions only; the serving process resolves and verifies each file in
    its registry, and swaps carry the user's serving token (`pipeline.serve_token`)."""

    host: str = Field(default="127.0.0.1", description="Where the stable endpoint listens.")
    port: int = Field(default=8080, description="The stable port clients use.")
    threads: int = Field(default=2, description="Compute threads per model server.")
    ctx: int = Field(default=512, description="Context tokens per model server.")
    backend: str = Field(
        default="llama-server", description="llama-server (a GGUF) or mlx_lm.server (MLX dir)."
    )
    registry: str = Field(
        default="", description="Registry served from; empty: $NIGHTSHIFT_HOME/artifacts/registry."
    )
    cors_origins: list[str] = Field(
        default=[],
        description="Web origins (scheme://host[:port]) whose pages may call the endpoint; "
        "none by default, and every other web page is refused.",
    )
    swap_timeout_s: float = Field(
        default=600.0, description="Seconds a swap may take: load, health, smoke, drain."
    )

    def config(self, registry: str | Path | None = None) -> ServeConfig:
        return ServeConfig(
            host=self.host,
            port=self.port,
            threads=self.threads,
            ctx=self.ctx,
            backend=self.backend,
            registry=Path(registry or self.registry) if (registry or self.registry) else None,
            cors_origins=tuple(self.cors_origins),
        )

    def swap(self, version: str, registry: str | Path | None = None) -> dict:
        """Serve registry `version` (from `registry`, default the configured one); raises
        SwapError with the old model still serving."""
        cfg = self.config(registry)
        ensure_server(cfg)
        return request_swap(cfg.endpoint, version, timeout=self.swap_timeout_s)

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
