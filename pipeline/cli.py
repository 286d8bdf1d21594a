"""`nightshift`: what Dagster's own CLI does not cover. Thin: parse, call one core function."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from pipeline import instance
from pipeline.cli_models import models_app, rollback_command
from pipeline.cli_serve import serve_app
from pipeline.cli_service import service_app
from pipeline.paths import nightshift_home

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help=__doc__, pretty_exceptions_show_locals=False
)
base_app = typer.Typer(no_args_is_help=True, help="The embedded tiny base model.")
sample_app = typer.Typer(no_args_is_help=True, help="The bundled sample workspace.")
tool_app = typer.Typer(no_args_is_help=True, help="The llama.cpp toolchain.")
app.add_typer(base_app, name="base-model")
app.add_typer(sample_app, name="sample")
sessions_app = typer.Typer(no_args_is_help=True, help="Claude Code session logs.")
app.add_typer(tool_app, name="toolchain")
app.add_typer(sessions_app, name="sessions")
app.add_typer(models_app, name="models")
app.add_typer(service_app, name="service")
app.add_typer(serve_app, name="serve")


def _serve_champion(version: str, version_dir: Path) -> None:
    """After a rollback, the running model server (if any) swaps to the champion, which it
    resolves and verifies in its own registry: that must be the one the rollback moved."""
    from pipeline.serve import ServeConfig, request_swap, server_status

    port = int(os.environ.get("NIGHTSHIFT_SERVE_PORT", "8080"))
    cfg = ServeConfig(port=port, registry=version_dir.parent)
    try:
        status = server_status(cfg.endpoint)
    except OSError:
        default = ServeConfig().registry_root
        where = "" if cfg.registry_root == default else f" --registry {cfg.registry_root}"
        typer.echo(f"no model server answers at {cfg.endpoint}; serve {version} with:")
        typer.echo(f"  nightshift serve start {version} --port {port}{where}")
        return
    if status.get("registry") != str(cfg.registry_root):
        raise RuntimeError(
            f"the model server at {cfg.endpoint} serves the registry {status.get('registry')}, "
            f"not {cfg.registry_root}; stop it (`nightshift serve stop --port {port}`) and "
            f"run `nightshift serve start {version} --port {port} --registry {cfg.registry_root}`"
        )
    result = request_swap(cfg.endpoint, version)
    typer.echo(f"serving {version} at {cfg.endpoint} (healthy after {result.get('health_s')} s)")


app.command("rollback")(rollback_command(on_champion=_serve_champion))


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(1)


@base_app.command("build")
def base_model_build(
    out: Annotated[Path, typer.Option(help="Directory to write (replaced if it exists).")],
    corpus: Annotated[
        list[Path] | None,
        typer.Option(help="Folders whose logs, docs and databases train the tokenizer."),
    ] = None,
    seed: int = 0,
    hidden_size: int = 64,
    layers: int = 2,
    vocab_size: int = 1024,
) -> None:
    """Build the tiny llama (HF format, SentencePiece tokenizer, ChatML template)."""
    from pipeline.base_model import build_base_model, workspace_corpus
    from pipeline.config import BaseModelConfig
    from pipeline.sample import create_sample_workspace

    roots = list(corpus or [])
    if not roots:
        roots = [instance.sample_workspace()]
        if not roots[0].exists():
            create_sample_workspace(roots[0], seed=0)
    for root in roots:
        if not root.is_dir():
            _fail(f"corpus folder {root} does not exist")
    cfg = BaseModelConfig(
        seed=seed, hidden_size=hidden_size, num_hidden_layers=layers, vocab_size=vocab_size
    )
    info = build_base_model(out, workspace_corpus(*roots), cfg)
    typer.echo(
        f"{info.path}: {info.parameters:,} parameters, vocab {info.vocab_size}, "
        f"tokenizer trained on {info.corpus_lines:,} lines"
    )


@sample_app.command("create")
def sample_create(
    out: Annotated[Path, typer.Option(help="Directory to create; must not exist or be empty.")],
    seed: int = 0,
) -> None:
    """Write a realistic Claude Code projects tree, ratings database and skill docs."""
    from pipeline.sample import create_sample_workspace

    try:
        s = create_sample_workspace(out, seed=seed)
    except FileExistsError as exc:
        _fail(str(exc))
    typer.echo(
        f"{s.root}: {s.projects} projects, {s.sessions} sessions, {s.subagent_logs} subagent "
        f"logs, {s.damaged_lines} damaged lines; {s.conversations} rated conversations "
        f"({s.ratings} ratings) in {s.ratings_db}; skills in {s.skills_dir}"
    )


@tool_app.command("build")
def toolchain_build(jobs: int = 0) -> None:
    """Build llama.cpp's tools from the installed llama-cpp-python's sdist (cached by version)."""
    from pipeline.toolchain import ToolchainError, build_toolchain

    try:
        tc = build_toolchain(jobs=jobs or None, progress=typer.echo)
    except ToolchainError as exc:
        _fail(str(exc))
    for name, path in sorted(tc.bins.items()):
        typer.echo(f"  {name:<18} {path}")
    typer.echo(f"  {'converter':<18} {tc.convert_script}")


@tool_app.command("where")
def toolchain_where() -> None:
    """Show which llama.cpp tools would be used, and from where."""
    from pipeline.toolchain import ToolchainError, locate_toolchain

    try:
        tc = locate_toolchain()
    except ToolchainError as exc:
        _fail(str(exc))
    typer.echo(f"source: {tc.source} (llama-cpp-python {tc.version})")
    for name, path in sorted(tc.bins.items()):
        typer.echo(f"  {name:<18} {path}")
    typer.echo(f"  {'converter':<18} {tc.convert_script}")


@sessions_app.command("summarize")
def sessions_summarize(
    projects_dir: Annotated[Path, typer.Argument(help="A Claude Code projects directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Sessions, conversations, merged turns, subagents, compactions, rewinds, skipped records."""
    from pipeline.sessions import summarize

    if not projects_dir.is_dir():
        _fail(f"{projects_dir} is not a directory (Claude Code keeps logs in ~/.claude/projects)")
    summary = summarize(projects_dir)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            typer.echo(f"{key:<24} {value}")


@app.command()
def scrub(
    file: Annotated[str, typer.Argument(help="A file to scrub, or - for standard input.")] = "-",
    as_json: Annotated[bool, typer.Option("--json", help="Findings by kind, no secrets.")] = False,
) -> None:
    """Print the text with secrets and personal data replaced by typed placeholders."""
    from pipeline.scrub import scrub_cli_output

    if file == "-":
        text = sys.stdin.read()
    elif not Path(file).is_file():
        _fail(f"{file} does not exist")
    else:
        text = Path(file).read_text(encoding="utf-8", errors="replace")
    typer.echo(scrub_cli_output(text, as_json), nl=False)


@app.command()
def doctor(
    base_model: Annotated[
        Path | None, typer.Option(help="Check this HF-format model instead of the tiny one.")
    ] = None,
    keep: Annotated[Path | None, typer.Option(help="Keep the files made here.")] = None,
) -> None:
    """Run and time each real part: LoRA, fuse, convert, quantize, load, chat."""
    import tempfile

    from pipeline.doctor import run_doctor

    with tempfile.TemporaryDirectory(prefix="nightshift-doctor-") as scratch:
        work = keep or Path(scratch)  # kept only when asked for
        checks = run_doctor(lambda c: typer.echo(c.line()), base_model=base_model, workdir=work)
    failed = [c for c in checks if c.status != "PASS"]
    typer.echo(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


def _dagster(*args: str) -> int:
    env = instance.dagster_env()
    return subprocess.call([str(Path(sys.executable).parent / "dagster"), *args], env=env)


@app.command()
def demo(seed: int = 0) -> None:
    """Run the main job end to end on the sample workspace and the tiny model."""
    root = instance.sample_workspace()
    if not root.exists():
        from pipeline.sample import create_sample_workspace

        s = create_sample_workspace(root, seed=seed)
        typer.echo(f"sample workspace: {s.sessions} sessions in {s.projects_dir}")
    os.environ.setdefault("NIGHTSHIFT_WORKSPACE", str(root))
    first, last = instance.workspace_days(root)
    typer.echo(f"running {instance.MAIN_JOB} for the sample's days {first} to {last}")
    cmd = [sys.executable, "-m", "schedules.demo", first, last]
    env = instance.dagster_env()
    # The demo never publishes the tiny model or spends money on the Claude API.
    for secret in ("HF_TOKEN", "ANTHROPIC_API_KEY"):
        if env.pop(secret, None):
            typer.echo(f"{secret} is set: the demo leaves it out (the nightly job uses it)")
    code = subprocess.call(cmd, env=env, cwd=instance.REPO_ROOT)
    if code != 0:
        _fail(f"the Dagster run failed (exit {code}); its log is above")
    where()
    port = os.environ.get("NIGHTSHIFT_SERVE_PORT", "8080")
    typer.echo(
        f"{'model endpoint':<18} http://127.0.0.1:{port}/v1 (`nightshift serve stop` ends it)"
    )
    typer.echo(f"{'evaluation':<18} `nightshift report` prints it")


@app.command()
def ui(port: int = 3000) -> None:
    """Serve the Dagster UI on 127.0.0.1 with this project's instance."""
    raise typer.Exit(_dagster("dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)))


@app.command()
def report(
    version: Annotated[
        str | None, typer.Argument(help="A registry version (v3) or an eval_report version.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The full report.json.")] = False,
) -> None:
    """Print an evaluation report: the latest, a registry version's, or an evaluation's."""
    import re

    from pipeline.artifacts import ArtifactStore
    from pipeline.registry import Registry

    store = ArtifactStore(instance.artifacts_root())
    if version is None:
        folder = store.current("eval_report")
        if folder is None:
            _fail("no evaluation yet: run the pipeline (`nightshift demo` or the nightly job)")
    elif re.fullmatch(r"v\d+", version):
        registry = Registry(store.root / "registry")
        versions = registry.list_versions()
        if version not in versions:
            _fail(f"no registry version {version}; versions: {', '.join(versions) or 'none'}")
        folder = registry.version_dir(version) / "eval"
    else:
        folder = store.version_dir("eval_report", version)
    name = "report.json" if as_json else "report.md"
    if not (folder / name).is_file():
        known = sorted(p.parent.name for p in store.asset_dir("eval_report").glob("*/report.json"))
        _fail(f"no {name} in {folder}; evaluations: {', '.join(known) or 'none'}")
    text = (folder / name).read_text()
    # The terminal cannot show the inline PNG: point at the file instead.
    plot = folder / "history.png"
    typer.echo(
        re.sub(r"!\[([^]]*)\]\(data:image/png;base64,[^)]*\)", lambda _: f"(plot: {plot})", text)
    )


@app.command()
def where() -> None:
    """Print where the outputs are."""
    for label, path in instance.output_locations():
        typer.echo(f"{label:<18} {path}")


def main() -> None:
    os.environ.setdefault("NIGHTSHIFT_HOME", str(nightshift_home()))
    app()
