"""The project home and the Dagster instance inside it (no Dagster import: files and env only)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from pipeline.paths import nightshift_home

MAIN_JOB = "nightshift_job"
REPO_ROOT = Path(__file__).resolve().parent.parent


def dagster_home() -> Path:
    return nightshift_home() / "dagster"


def artifacts_root() -> Path:
    return nightshift_home() / "artifacts"


def sample_workspace() -> Path:
    return nightshift_home() / "sample"


def prepare_dagster_home() -> Path:
    """Copy the project's dagster.yaml (or NIGHTSHIFT_DAGSTER_YAML, e.g. dagster.postgres.yaml)
    into DAGSTER_HOME, where Dagster looks for it."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    src = Path(os.environ.get("NIGHTSHIFT_DAGSTER_YAML") or REPO_ROOT / "dagster.yaml")
    dst = home / "dagster.yaml"
    if src.is_file() and (not dst.is_file() or dst.read_bytes() != src.read_bytes()):
        shutil.copyfile(src, dst)
    return home


def dagster_env() -> dict[str, str]:
    """Environment for a dagster command: this project's instance and home."""
    env = dict(os.environ)
    env.setdefault("NIGHTSHIFT_HOME", str(nightshift_home()))
    env["DAGSTER_HOME"] = str(prepare_dagster_home())
    return env


def workspace_days(root: Path) -> tuple[str, str]:
    """First and last day with sessions or rated conversations in a sample-layout workspace."""
    from zoneinfo import ZoneInfo

    from pipeline.ingest import local_day, session_days
    from pipeline.ratings import read_rated_conversations

    tz = ZoneInfo(os.environ.get("NIGHTSHIFT_TIMEZONE", "UTC"))
    days = set(session_days(root / "claude" / "projects", tz).values())
    db = root / "feedback.sqlite"
    if db.is_file():
        rated, _ = read_rated_conversations(f"sqlite:///{db}")
        days |= {d for c in rated if (d := local_day(c.started, tz))}
    if not days:
        raise ValueError(f"no sessions or rated conversations with dates in {root}")
    return min(days), max(days)


def output_locations() -> list[tuple[str, Path]]:
    """Each asset's current version, then the stores, for the demo's closing lines."""
    rows = []
    root = artifacts_root()
    if root.is_dir():
        for pointer in sorted(root.glob("*/current.json")):
            rows.append((pointer.parent.name, Path(json.loads(pointer.read_text())["path"])))
    rows += [
        ("artifacts", root),
        ("dagster runs", dagster_home()),
        ("sample workspace", sample_workspace()),
    ]
    return rows
