"""The PostgreSQL switch: dagster.postgres.yaml against a real server, the data assets run on it.

`postgres_url` (tests/postgres.py) starts the server; Dagster gets a database of its own there.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from assets.data import curated_chatml, qualified_scores, raw_sessions
from pipeline.ingest import session_days
from schedules import nightly_schedule

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DATA_ASSETS = [raw_sessions, qualified_scores, curated_chatml]
DATABASE = "nightshift_dagster"


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture
def dagster_db(postgres_url: str) -> sa.URL:
    """A fresh database for Dagster's tables, beside the ratings tests' one."""
    url = sa.make_url(postgres_url)
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as db:
        db.execute(sa.text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
        db.execute(sa.text(f"CREATE DATABASE {DATABASE}"))
    admin.dispose()
    return url.set(database=DATABASE)


@pytest.fixture
def pg_instance(dagster_db, tmp_path, monkeypatch):
    """A DagsterInstance on the project's switch file, credentials from the environment."""
    monkeypatch.setenv("DAGSTER_POSTGRES_HOST", dagster_db.host)
    monkeypatch.setenv("DAGSTER_POSTGRES_PORT", str(dagster_db.port))
    monkeypatch.setenv("DAGSTER_POSTGRES_USER", dagster_db.username)
    monkeypatch.setenv("DAGSTER_POSTGRES_PASSWORD", dagster_db.password or "")
    monkeypatch.setenv("DAGSTER_POSTGRES_DB", DATABASE)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.postgres.yaml").read_text())
    instance = dg.DagsterInstance.from_config(str(home))
    yield instance
    instance.dispose()


def test_the_switch_is_dagster_yaml_plus_postgres_storage():
    one_machine = _yaml(ROOT / "dagster.yaml")
    switched = _yaml(ROOT / "dagster.postgres.yaml")
    assert "storage" not in one_machine  # SQLite under DAGSTER_HOME
    assert {k: v for k, v in switched.items() if k != "storage"} == one_machine
    deployed = _yaml(ROOT / "docker" / "dagster.yaml")
    assert deployed["storage"] == switched["storage"]
    assert deployed["concurrency"] == one_machine["concurrency"]


def test_data_assets_run_with_runs_events_and_schedules_in_postgres(
    pg_instance, dagster_db, resources, sample
):
    assert isinstance(pg_instance.run_storage, PostgresRunStorage)
    assert isinstance(pg_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(pg_instance.schedule_storage, PostgresScheduleStorage)
    days = sorted(set(session_days(sample.projects_dir, ZoneInfo("UTC")).values()))[:2]
    for day in days:
        result = dg.materialize(
            DATA_ASSETS, resources=resources, instance=pg_instance, partition_key=day
        )
        assert result.success
    runs = pg_instance.get_runs()
    assert len(runs) == 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    for asset in DATA_ASSETS:
        assert pg_instance.get_materialized_partitions(asset.key) == set(days)
    # A schedule turned on with Dagster's CLI lands there too.
    env = {**os.environ, "DAGSTER_HOME": pg_instance.root_directory}
    cmd = [BIN / "dagster", "schedule", "start", nightly_schedule.name, "-w", "workspace.yaml"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]

    # The same facts straight from PostgreSQL's tables.
    engine = sa.create_engine(dagster_db)
    with engine.connect() as db:
        statuses = db.execute(sa.text("SELECT status FROM runs")).scalars().all()
        materialized = db.execute(
            sa.text(
                "SELECT asset_key, partition FROM event_logs"
                " WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
            )
        ).all()
        schedules = db.execute(sa.text("SELECT instigator_type, status FROM instigators")).all()
    engine.dispose()
    assert statuses == ["SUCCESS", "SUCCESS"]
    assert {(json.loads(key)[-1], part) for key, part in materialized} == {
        (asset.key.path[-1], day) for asset in DATA_ASSETS for day in days
    }
    assert schedules == [("SCHEDULE", "RUNNING")]
