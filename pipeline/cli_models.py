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
    message = "\n".join(shown(line) for line in message.split("\n"))
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
    verify: Annotated[
        bool, typer.Option("--verify", help="Also check every file's sha256 (reads them all).")
    ] = False,
) -> None:
    """Every version, oldest first: created, champion (*), gate results, files; damaged (!)
    versions with the reason. Exits 1 if anything is damaged."""
    registry = _registry(root)
    try:
        manifests, damaged = registry.survey(hashes=verify)
    except RegistryError as exc:
        _fail(str(exc))
    champion, problems = _pointers(registry)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "champion": champion,
                    "versions": manifests,
                    "damaged": damaged,
                    "problems": problems,
                },
                indent=2,
            )
        )
    elif not manifests and not damaged:
        typer.echo(f"no versions in {registry.root}")
    else:
        _print_table(manifests, damaged, champion)
        typer.echo(f"champion: {shown(champion or ('unknown' if problems else 'none'))}")
    if damaged:
        problems.append(
            f"damaged: {', '.join(damaged)}; use the versions listed without damage "
            "(`nightshift rollback --to VERSION`)"
        )
    if problems:
        _fail("\n".join(problems))


def _pointers(registry: Registry) -> tuple[str | None, list[str]]:
    """The champion (None if unknown) and what is wrong with champion.json or latest.json,
    read under the registry lock so a promotion in progress is never reported as damage."""
    champion, _latest, problems = registry.pointers()
    return champion, problems


def shown(text: object) -> str:
    """`text` with every non-printable character escaped (\\x1b, \\u200b, ...): a manifest's
    fields reach the terminal, and must not carry escape sequences to it."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _print_table(manifests: list[dict], damaged: dict[str, str], champion: str | None) -> None:
    rows = {m["version"]: m for m in manifests} | damaged
    typer.echo(f"{'':2}{'version':<9}{'created':<27}{'gates':<22}files")
    for version in sorted(rows, key=lambda v: int(v[1:])):
        row = rows[version]
        if isinstance(row, str):
            mark = "*" if version == champion else "!"
            typer.echo(f"{mark:<2}{version:<9}DAMAGED {shown(row)}")
            continue
        mark = "*" if version == champion else ""
        size = sum(f["bytes"] for f in row["files"].values()) / 1e6
        files = f"{len(row['files'])} ({size:.1f} MB): {', '.join(row['files'])}"
        created, gates = shown(row["created"]), shown(_gates(row))
        typer.echo(f"{mark:<2}{version:<9}{created:<27}{gates:<22}{shown(files)}")


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
        try:
            before, damaged = registry.champion(), None
        except RegistryError as exc:  # rollback --to rewrites it; rollback alone says how
            before, damaged = "unknown", str(exc)
        try:
            after = registry.rollback(to, force=force)
        except RegistryError as exc:
            _fail(str(exc))
        if damaged:
            typer.echo(
                f"champion.json was damaged; rewrote it with {after} as the champion "
                "(the earlier champions' history is lost)"
            )
        elif before == after:
            typer.echo(f"latest.json did not name the champion {after}; rewrote it")
        typer.echo(f"champion: {before} -> {after}")
        typer.echo(f"latest.json: {registry.root / 'latest.json'}")
        if on_champion is not None:
            try:
                on_champion(after, registry.version_dir(after))
            except Exception as exc:  # the pointer moved; say plainly that serving did not
                _fail(f"{after} is the champion, but switching the served model failed: {exc}")

    return rollback
