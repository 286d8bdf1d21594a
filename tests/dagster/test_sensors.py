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
import uuid
from pathlib import Path

import dagster as dg
import pytest

from assets.data import DAILY
from pipeline.instance import MAIN_JOB
from pipeline.ratings import read_rated_conversations
from resources import ArtifactStoreResource, WorkspaceResource
from schedules import sensors
from schedules.cleanup import cleanup_job, cleanup_schedule
from schedules.sensors import Baseline, new_data_sensor, run_failure_notice
from tests.core.ratings_dbs import Chat, build

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


def _uuid_db(ws, chats: int = 3, **types: str) -> str:
    """A ratings database whose conversation, message and rating ids are all UUID text."""
    made = [Chat(str(uuid.uuid4()), [str(uuid.uuid4()) for _ in range(5)]) for _ in range(chats)]
    url = build(f"sqlite:///{ws['tmp'] / 'uuid.sqlite'}", made, **({"rid": "TEXT"} | types))
    ws["resources"]["workspace"] = WorkspaceResource(
        projects_dir=str(ws["projects"]), ratings_url=url
    )
    return url


def _rate_ids(url: str, ids: list) -> None:
    """A thumbs-up, unexported, on an assistant answer for each id, spread over the chats."""
    with sqlite3.connect(url.removeprefix("sqlite:///")) as con:
        answers = [m for (m,) in con.execute("SELECT id FROM messages WHERE role='assistant'")]
        con.executemany(
            "INSERT INTO ratings(id, message_id, rating, rated_at, exported) VALUES (?,?,1,?,0)",
            [
                (rid, answers[n % len(answers)], "2026-12-01T12:00:00+00:00")
                for n, rid in enumerate(ids)
            ],
        )


def _uuids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def test_uuid_rating_ids_start_one_early_run_and_are_counted_once(ws):
    url = _uuid_db(ws)
    with dg.instance_for_test() as instance:
        _rate_ids(url, _uuids(4))  # rated before the nightly read them: not new
        _nightly_ran(ws, instance)
        first = _tick(ws, instance)
        assert _skip(first).startswith("0 new unexported rating(s), 0 new bytes")
        _rate_ids(url, _uuids(9))
        second = _tick(ws, instance, first.cursor)
        assert _skip(second).startswith("9 new unexported rating(s)")
        _rate_ids(url, _uuids(1))
        third = _tick(ws, instance, second.cursor)
        [request] = third.run_requests
        assert request.tags["nightshift/new_ratings"] == "10"
        assert _skip(_tick(ws, instance, third.cursor)).startswith("0 new unexported")


def test_uuid_ratings_exported_while_others_arrive_count_only_the_new_ones(ws):
    url = _uuid_db(ws)
    with dg.instance_for_test() as instance:
        _rate_ids(url, _uuids(12))
        started = _tick(ws, instance)  # no run yet: all twelve are new
        [request] = started.run_requests
        assert request.tags["nightshift/new_ratings"] == "12"
        # In one interval a release marks eleven exported and three new ratings arrive: the
        # count of unexported ids stays about the same, but exactly three are new.
        with sqlite3.connect(url.removeprefix("sqlite:///")) as con:
            con.execute("UPDATE ratings SET exported = 1 WHERE rowid <= 11")
        _rate_ids(url, _uuids(3))
        after = _tick(ws, instance, started.cursor)
        assert _skip(after).startswith("3 new unexported rating(s)")
        # Exported ids leave the cursor: it remembers the one still unexported.
        assert len(Baseline.parse(after.cursor).seen_hashes()) == 1
        assert _skip(_tick(ws, instance, after.cursor)).startswith("3 new unexported")


def test_integer_and_text_rating_ids_in_one_column_are_each_counted(ws):
    url = _uuid_db(ws, rid="")  # no type: SQLite keeps integers and text as given
    with dg.instance_for_test() as instance:
        _rate_ids(url, [7, 8, *_uuids(2)])
        first = _tick(ws, instance)
        assert _skip(first).startswith("4 new unexported rating(s)")
        _rate_ids(url, [9, "9", *_uuids(1)])  # '9' is text, another id than 9
        second = _tick(ws, instance, first.cursor)
        assert _skip(second).startswith("7 new unexported rating(s)")


def test_the_cursor_stays_small_with_100k_uuid_ratings(ws):
    url = _uuid_db(ws, chats=1)
    _rate_ids(url, _uuids(100_000))
    with dg.instance_for_test() as instance:
        _nightly_ran(ws, instance)
        first = _tick(ws, instance)
        assert _skip(first).startswith("0 new unexported rating(s)")
        assert len(first.cursor) < 850_000  # 8 bytes a rating, vs 36 for the UUID text
        _rate_ids(url, _uuids(1))
        assert _skip(_tick(ws, instance, first.cursor)).startswith("1 new unexported")


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda db: db.write_bytes(b"not a database at all" * 100), "is not a SQLite database"),
        (lambda db: db.unlink(), "no SQLite database at"),
        (
            lambda db: sqlite3.connect(db).execute("DROP TABLE ratings").connection.commit(),
            "no table 'ratings'",
        ),
    ],
    ids=["not_sqlite", "missing", "no_ratings_table"],
)
def test_a_ratings_database_error_skips_the_tick_with_the_error(ws, monkeypatch, damage, said):
    monkeypatch.setattr(sensors, "EARLY_SESSION_BYTES", 1)  # new logs alone would start a run
    with dg.instance_for_test() as instance:
        first = _tick(ws, instance)
        [_] = first.run_requests
        damage(ws["db"])
        with ws["projects"].joinpath("new.jsonl").open("w") as fh:
            fh.write("{}\n")
        broken = _tick(ws, instance, first.cursor)
        reason = _skip(broken)
        assert reason.startswith("cannot read the ratings database") and said in reason
        assert broken.cursor == first.cursor  # nothing counted as handled


def test_older_and_damaged_cursors_are_read():
    old = Baseline.parse('{"rating_id": 41, "session_bytes": 7, "run_id": "abc"}')
    assert (old.rating_id, old.session_bytes, old.run_id, old.seen_hashes()) == (
        41,
        7,
        "abc",
        set(),
    )
    assert Baseline.parse("not json") == Baseline()
    assert Baseline.parse('{"seen": "%%%", "future_field": 1}').seen_hashes() == set()


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
