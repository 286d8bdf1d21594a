"""`nightshift service`: the daemon and the UI as login services (launchd or systemd --user)."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline import service

service_app = typer.Typer(
    no_args_is_help=True, help="dagster-daemon and dagster-webserver as per-user services."
)


def _plan(port: int = service.UI_PORT) -> tuple[service.ServiceSpec, service.ServicePlan]:
    spec = service.service_spec(port=port)
    try:
        return spec, service.plan_for_this_machine(spec)
    except service.ServiceError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None


@service_app.command("install")
def install(
    port: Annotated[int, typer.Option(help="UI port on 127.0.0.1.")] = service.UI_PORT,
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the files instead of installing them.")
    ] = False,
) -> None:
    """Write and load the services; the daemon keeps a Mac awake (caffeinate -i -s)."""
    spec, plan = _plan(port)
    if print_only:
        for path, data in plan.files.items():
            typer.echo(f"# {path}\n{data.decode()}")
        return
    try:
        lines = service.install(spec, plan, service.subprocess_runner)
    except service.ServiceError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo("\n".join(lines))


@service_app.command("uninstall")
def uninstall() -> None:
    """Stop the services and remove their files (runs, artifacts and logs stay)."""
    _, plan = _plan()
    typer.echo("\n".join(service.uninstall(plan, service.subprocess_runner)))


@service_app.command("status")
def status() -> None:
    """Whether each service is installed and running, and where its log is."""
    spec, plan = _plan()
    typer.echo("\n".join(service.status(plan, service.subprocess_runner)))
    typer.echo(f"logs: {spec.logs}")
