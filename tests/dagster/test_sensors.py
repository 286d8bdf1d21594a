"""The nightly schedule, the new-data and failure sensors, and the cleanup job, in Dagster's
test contexts against a real (temporary) instance."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from assets.data import DAILY
from pipeline.instance import MAIN_JOB
from pipeline.ratings import read_rated_conversations
from resources import ArtifactStoreResource, WorkspaceResource
from schedules import sensors
from schedules.cleanup import cleanup_job, cleanup_schedule
from schedules.sensors import new_data_sensor, run_failure_notice

ROOT = Path(__file__).resolve().parents[2]


@dg.op
def step() -> None:
    pass


@dg.job(name=MAIN_JOB)
def stand_in_job() -> None:
    """A run of the main job's name, so the instance holds real run records of it."""
    step()


@pytest.fixture
def ws(tmp_path, sample) -> dict:
    """A writable copy of the sample workspace and an empty artifact store."""
    projects = shutil.copytree(sample.projects_dir, tmp_path / "projects")
    db = shutil.copy(sample.ratings_db, tmp_path / "feedback.sqlite")
    resources = {
        "workspace": WorkspaceResource(projects_dir=str(projects), ratings_url=f"sqlite:///{db}"),
        "artifacts": ArtifactStoreResource(root=str(tmp_path / "artifacts")),
    }
    return {"projects": Path(projects), "db": Path(db), "resources": resources, "tmp": tmp_path}


def _store_copy(ws) -> Path:
    return ws["tmp"] / "artifacts" / "raw_sessions" / "source"


def _nightly_ran(ws, instance) -> None:
    """What a successful nightly run leaves: the logs copied into the store, a run record."""
    shutil.rmtree(_store_copy(ws), ignore_errors=True)
    shutil.copytree(ws["projects"], _store_copy(ws))
    assert stand_in_job.execute_in_process(instance=instance).success


def _rate(db: Path, n: int) -> None:
    """n new thumbs-up on assistant answers of usable conversations, unexported."""
    conversations, _ = read_rated_conversations(f"sqlite:///{db}")
    answers = [t.message_id for c in conversations for t in c.turns if t.role == "assistant"]
    with sqlite3.connect(db) as con:
        con.executemany(
            "INSERT INTO ratings(message_id, rating, rated_at, exported) VALUES (?, 1, ?, 0)",
            [(answers[i % len(answers)], "2026-12-01T12:00:00+00:00") for i in range(n)],
        )


def _tick(ws, instance, cursor=None) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=ws["resources"])
    return new_data_sensor(context)


def _skip(result: dg.SensorResult) -> str:
    assert not result.run_requests, result.run_requests
    return result.skip_reason.skip_message


def test_ten_new_ratings_start_one_early_run_for_the_last_closed_day(ws):
    with dg.instance_for_test() as instance:
        _nightly_ran(ws, instance)
        first = _tick(ws, instance)
        assert _skip(first).startswith("0 new unexported rating(s), 0 new bytes")
        _rate(ws["db"], 9)
        second = _tick(ws, instance, first.cursor)
        assert _skip(second).startswith("9 new unexported rating(s)")
        _rate(ws["db"], 1)
        third = _tick(ws, instance, second.cursor)
        [request] = third.run_requests
        assert request.partition_key == DAILY.get_last_partition_key()
        assert request.tags["nightshift/new_ratings"] == "10"
        assert _skip(_tick(ws, instance, third.cursor)).startswith("0 new unexported")


def test_no_run_starts_while_one_is_in_progress(ws):
    with dg.instance_for_test() as instance:
        _rate(ws["db"], 12)
        run = instance.create_run_for_job(stand_in_job, status=dg.DagsterRunStatus.STARTED)
        assert "a run is in progress" in _skip(_tick(ws, instance))
        instance.report_run_canceled(run)
        # The cancelled run read nothing: the ratings are still new.
        [request] = _tick(ws, instance).run_requests
        assert int(request.tags["nightshift/new_ratings"]) >= 12


def test_new_session_logs_start_a_run_and_a_failed_one_does_not_loop(ws, monkeypatch):
    monkeypatch.setattr(sensors, "EARLY_SESSION_BYTES", 4000)
    log = next(ws["projects"].glob("*/*.jsonl"))
    line = json.dumps({"type": "user", "timestamp": "2026-12-01T10:00:00Z", "pad": "x" * 5000})
    with dg.instance_for_test() as instance:
        _nightly_ran(ws, instance)
        first = _tick(ws, instance)
        with log.open("a") as fh:
            fh.write(line + "\n")
        started = _tick(ws, instance, first.cursor)
        assert len(started.run_requests) == 1
        # That run failed before copying the logs: the same bytes do not start another.
        assert "0 new bytes" in _skip(_tick(ws, instance, started.cursor))
        shutil.copy2(log, _store_copy(ws) / log.relative_to(ws["projects"]))  # a later run did
        settled = _tick(ws, instance, started.cursor)
        assert "0 new bytes" in _skip(settled)
        with log.open("a") as fh:
            fh.write(line + "\n")
        assert len(_tick(ws, instance, settled.cursor).run_requests) == 1


def test_a_failed_run_is_logged_and_notified(tmp_path, monkeypatch, capfd):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("osascript", "notify-send"):  # whichever this platform uses records its text
        tool = bin_dir / name
        tool.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path}/notice.txt"\n')
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    @dg.op
    def lora_step() -> None:
        raise RuntimeError("loss is NaN")

    @dg.job(name=MAIN_JOB)
    def failing() -> None:
        lora_step()

    with dg.instance_for_test() as instance:
        result = failing.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_notice",
            dagster_event=result.get_run_failure_event(),
            dagster_instance=instance,
            dagster_run=result.dagster_run,
        ).for_run_failure()
        run_failure_notice(context)
    run_id = result.dagster_run.run_id
    notice = (tmp_path / "notice.txt").read_text().splitlines()
    assert notice[-2] == "nightshift: a run failed"
    assert f"{MAIN_JOB} run {run_id[:8]} failed: lora_step: RuntimeError: loss is NaN" in notice[-1]
    logged = capfd.readouterr().err
    assert f"/runs/{run_id}" in logged and "notification: " in logged


def test_nightly_schedule_runs_the_day_that_ended_in_the_configured_time_zone():
    # TIMEZONE is read at import, so a fresh interpreter sees NIGHTSHIFT_TIMEZONE.
    code = """
import datetime, json, warnings, zoneinfo
warnings.simplefilter("ignore")
import dagster as dg
from definitions import defs
schedule = defs.resolve_schedule_def("nightly")
at = datetime.datetime(2026, 11, 5, 3, 0, tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo"))
context = dg.build_schedule_context(scheduled_execution_time=at)
[request] = schedule.evaluate_tick(context).run_requests
print(json.dumps([schedule.execution_timezone, schedule.cron_schedule, request.partition_key]))
"""
    env = {**os.environ, "NIGHTSHIFT_TIMEZONE": "Asia/Tokyo"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    # 03:00 on the 5th in Tokyo is 18:00 on the 4th in UTC: only Tokyo's 4th has ended.
    assert json.loads(out.stdout.splitlines()[-1]) == ["Asia/Tokyo", "0 3 * * *", "2026-11-04"]


def test_cleanup_job_removes_old_versions_and_its_schedule_waits_for_runs(tmp_path):
    store = ArtifactStoreResource(root=str(tmp_path / "artifacts")).store()
    old = time.time() - 90 * 86400
    for name in ("a", "b", "c"):
        store.version_dir("fused_model", name).mkdir(parents=True)
        os.utime(store.version_dir("fused_model", name), (old, old))
    store.set_current("fused_model", "c")
    with dg.instance_for_test() as instance:
        result = cleanup_job.execute_in_process(
            instance=instance, resources={"artifacts": ArtifactStoreResource(root=str(store.root))}
        )
        assert result.success
        left = sorted(p.name for p in store.asset_dir("fused_model").iterdir())
        assert left == ["c", "current.json"]  # keep_last=3 by count, but 90 days is too old
        idle = cleanup_schedule(dg.build_schedule_context(instance=instance))
        assert isinstance(idle, dg.RunRequest)
        instance.create_run_for_job(stand_in_job, status=dg.DagsterRunStatus.STARTING)
        busy = cleanup_schedule(dg.build_schedule_context(instance=instance))
        assert isinstance(busy, dg.SkipReason) and "in progress" in busy.skip_message
