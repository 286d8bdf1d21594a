"""`nightshift models list` and `nightshift rollback`: the local registry from the command line.

Rollback takes its serving swap as a hook (`rollback_command(on_champion=...)`), so this module
knows nothing of how the model is served.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from pipeline import instance
from pipeline.registry import Registry, RegistryError

# Called with the new champion and its version directory once the pointer has moved.
ChampionHook = Callable[[str, Path], None]

models_app = typer.Typer(no_args_is_help=True, help="The local model registry.")

RootOption = Annotated[
    Path | None, typer.Option("--root", help="Registry folder (default: the artifact store's).")
]


def _registry(root: Path | None) -> Registry:
    return Registry(root or instance.artifacts_root() / "registry")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(1)


def _gates(manifest: dict) -> str:
    gates = manifest["gates"]
    failed = sorted(k for k, g in gates.items() if not g["passed"])
    if failed:
        return "FAIL " + ",".join(failed)
    return f"{len(gates)}/{len(gates)} pass" if gates else "none"


@models_app.command("list")
def models_list(
    root: RootOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifests as JSON.")] = False,
) -> None:
    """Every version, oldest first: created, champion (*), gate results, files."""
    registry = _registry(root)
    manifests = [registry.manifest(v) for v in registry.list_versions()]
    champion = registry.champion()
    if as_json:
        typer.echo(json.dumps({"champion": champion, "versions": manifests}, indent=2))
        return
    if not manifests:
        typer.echo(f"no versions in {registry.root}")
        return
    typer.echo(f"{'':2}{'version':<9}{'created':<27}{'gates':<22}files")
    for m in manifests:
        mark = "*" if m["version"] == champion else ""
        size = sum(f["bytes"] for f in m["files"].values()) / 1e6
        files = f"{len(m['files'])} ({size:.1f} MB): {', '.join(m['files'])}"
        typer.echo(f"{mark:<2}{m['version']:<9}{m['created']:<27}{_gates(m):<22}{files}")
    typer.echo(f"champion: {champion or 'none'}")


def rollback_command(on_champion: ChampionHook | None = None) -> Callable[..., None]:
    """The `rollback` command, calling `on_champion` (e.g. a serving swap) after the move."""

    def rollback(
        to: Annotated[
            str | None, typer.Option("--to", help="Version to serve (default: the previous).")
        ] = None,
        force: Annotated[bool, typer.Option(help="Allow a version whose gates failed.")] = False,
        root: RootOption = None,
    ) -> None:
        """Make the previous champion (or --to VERSION) the champion again, and serve it."""
        registry = _registry(root)
        before = registry.champion()
        try:
            after = registry.rollback(to, force=force)
        except RegistryError as exc:
            _fail(str(exc))
        typer.echo(f"champion: {before} -> {after}")
        typer.echo(f"latest.json: {registry.root / 'latest.json'}")
        if on_champion is not None:
            try:
                on_champion(after, registry.version_dir(after))
            except Exception as exc:  # the pointer moved; say plainly that serving did not
                _fail(f"{after} is the champion, but switching the served model failed: {exc}")

    return rollback
