"""`nightshift serve`: the stable local endpoint, and swaps and rollbacks on a running one.

Swaps and rollbacks send the serving token from `$NIGHTSHIFT_HOME/serve.token` (made on first
need, readable by you only); by hand: `curl -H "Authorization: Bearer $(cat FILE)" ...`.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from pipeline.serve import (
    BACKENDS,
    ServeConfig,
    SwapError,
    request_rollback,
    request_swap,
    server_status,
    stop_server,
)
from pipeline.serve_token import TokenError, ensure_token

serve_app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Serve the deployed model on one endpoint."
)

Port = Annotated[int, typer.Option(help="The stable port clients use.")]
Host = Annotated[str, typer.Option(help="Where the stable endpoint listens.")]


def _endpoint(host: str, port: int) -> str:
    return ServeConfig(host=host, port=port).endpoint


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(1)


@serve_app.command("start")
def start(
    version: Annotated[
        str | None,
        typer.Argument(help="Registry version to serve first (v3); default: what served last."),
    ] = None,
    host: Host = "127.0.0.1",
    port: Port = 8080,
    threads: Annotated[int, typer.Option(help="Compute threads per model server.")] = 2,
    ctx: Annotated[int, typer.Option(help="Context tokens per model server.")] = 512,
    backend: Annotated[str, typer.Option(help=f"One of {', '.join(BACKENDS)}.")] = BACKENDS[0],
    registry: Annotated[
        Path | None,
        typer.Option(help="Registry to serve from; default: $NIGHTSHIFT_HOME/artifacts/registry."),
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--cors-origin",
            help="A web origin (http://localhost:3000) whose pages may call the endpoint from a "
            "browser; repeatable. None by default: other web pages are refused.",
        ),
    ] = None,
) -> None:
    """Run the stable endpoint in the foreground until Ctrl-C or SIGTERM."""
    try:
        cfg = ServeConfig(
            host=host,
            port=port,
            threads=threads,
            ctx=ctx,
            backend=backend,
            registry=registry,
            cors_origins=tuple(cors_origin or ()),
        )
        serve_forever(cfg, version, progress=lambda line: typer.echo(line, err=True))
    except (SwapError, TokenError, OSError, ValueError) as exc:
        _fail(str(exc))


@serve_app.command("status")
def status(host: Host = "127.0.0.1", port: Port = 8080) -> None:
    """What the running endpoint serves, since when, and what it would roll back to."""
    try:
        typer.echo(json.dumps(server_status(_endpoint(host, port)), indent=2))
    except OSError as exc:
        _fail(f"no serving process answers on port {port} ({exc})")
    except (SwapError, TokenError) as exc:  # something else answers there
        _fail(str(exc))


@serve_app.command("swap")
def swap(
    version: Annotated[str, typer.Argument(help="The registry version to serve (v3).")],
    host: Host = "127.0.0.1",
    port: Port = 8080,
) -> None:
    """Swap the running endpoint to registry VERSION; on failure the old model keeps serving."""
    try:
        typer.echo(json.dumps(request_swap(_endpoint(host, port), version), indent=2))
    except (SwapError, TokenError, OSError) as exc:
        _fail(str(exc))


@serve_app.command("rollback")
def rollback(host: Host = "127.0.0.1", port: Port = 8080) -> None:
    """Swap back to the previous deployment, by the same path as a swap."""
    try:
        typer.echo(json.dumps(request_rollback(_endpoint(host, port)), indent=2))
    except (SwapError, TokenError, OSError) as exc:
        _fail(str(exc))


@serve_app.command("stop")
def stop(host: Host = "127.0.0.1", port: Port = 8080) -> None:
    """Stop the serving process and its model server (once it proves it is nightshift's)."""
    try:
        stopped = stop_server(_endpoint(host, port))
    except (SwapError, TokenError, OSError) as exc:
        _fail(str(exc))
    if not stopped:
        _fail(f"no serving process answers on port {port}")


def serve_forever(
    cfg: ServeConfig, version: str | None = None, progress: Callable[[str], None] = print
) -> None:
    """Run the stable endpoint until SIGTERM or SIGINT; serve registry `version`, or what
    served last."""
    from pipeline.serve_backend import Deployment
    from pipeline.serve_proxy import StableServer

    ensure_token()  # an unsafe token file stops the start, with the fix, before anything loads
    deployment = Deployment(cfg)
    server = StableServer(cfg, deployment)  # bound first: a taken port fails before any load
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    try:
        if version is not None:
            deployment.swap(version)
        else:
            try:
                deployment.resume()
            except SwapError as exc:  # still worth running: the next swap deploys something
                progress(f"could not resume the last deployment: {exc}")
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        thread.start()
        current = deployment.status()["current"]
        serving = f"{current['version']} ({current['model']})" if current else "nothing yet"
        registry = deployment.registry.root
        progress(f"serving {serving} on {cfg.endpoint} from the registry {registry}")
        while not stop.wait(0.5):
            pass
    finally:
        deployment.close()  # before the listener goes: status answers until backends are gone
        if thread.is_alive():
            server.shutdown()
        server.server_close()


if __name__ == "__main__":  # `ensure_server` starts `python -m pipeline.cli_serve start`
    serve_app()
