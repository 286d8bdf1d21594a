"""`dagster job backfill` over three days, the runs launched by a real dagster-daemon."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from pipeline.ingest import session_days

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# The data stages as a job of their own, with the project's resources: a job backfill makes one
# run per day, and the model stages need not train three times to show it.
DATA_DEFS = """
import dagster as dg

import definitions
from assets.data import curated_chatml, qualified_scores, raw_sessions

DATA = [raw_sessions, qualified_scores, curated_chatml]
defs = dg.Definitions(
    assets=DATA,
    jobs=[dg.define_asset_job("nightshift_data", selection=DATA)],
    resources=definitions.defs.resources,
)
"""
# One run at a time: each day's raw_sessions updates the store's shared ingest index.
INSTANCE = """
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 1
"""
DONE = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def test_job_backfill_of_three_days_runs_through_the_daemon(sample, tmp_path):
    days = sorted(set(session_days(sample.projects_dir, ZoneInfo("UTC")).values()))[1:4]
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE)
    (tmp_path / "data_defs.py").write_text(DATA_DEFS)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "NIGHTSHIFT_HOME": str(tmp_path),
        "NIGHTSHIFT_WORKSPACE": str(sample.root),
    }
    target = ["-f", str(tmp_path / "data_defs.py"), "-d", str(ROOT)]
    backfill = [BIN / "dagster", "job", "backfill", *target, "-j", "nightshift_data"]
    out = subprocess.run(
        [*backfill, "--partitions", ",".join(days), "--noprompt"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    instance = dg.DagsterInstance.from_config(str(home))
    runs = instance.get_runs()
    # Queued, not run: without the daemon nothing would happen.
    assert sorted(r.tags["dagster/partition"] for r in runs) == days
    assert {r.status for r in runs} == {dg.DagsterRunStatus.QUEUED}
    assert len({r.tags["dagster/backfill"] for r in runs}) == 1

    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [BIN / "dagster-daemon", "run", *target],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 480
        while time.monotonic() < deadline:
            runs = instance.get_runs()
            if all(r.status in DONE for r in runs):
                break
            time.sleep(2)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
        log.close()
    daemon_log = (tmp_path / "daemon.log").read_text()[-3000:]
    assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}, daemon_log
    store = tmp_path / "artifacts"
    for day in days:
        assert (store / "curated_chatml" / day / "examples.jsonl").is_file()
    assert sorted(p.name for p in (store / "curated_chatml").iterdir()) == days
