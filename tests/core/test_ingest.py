from __future__ import annotations

from zoneinfo import ZoneInfo

from pipeline.ingest import IngestIndex, collect_days, local_day, session_days

UTC = ZoneInfo("UTC")


def test_local_day_follows_the_time_zone():
    assert local_day("2026-11-03T23:30:00.000Z", UTC) == "2026-11-03"
    assert local_day("2026-11-03T23:30:00.000Z", ZoneInfo("Europe/Berlin")) == "2026-11-04"
    assert local_day("not a time", UTC) is None


def test_days_partition_the_sample_and_a_day_reads_only_its_sessions(sample):
    days = session_days(sample.projects_dir, UTC)
    assert len(days) == sample.sessions
    all_days = sorted(set(days.values()))
    assert 9 <= len(all_days) <= 11
    one = all_days[3]
    batch = collect_days(
        sample.projects_dir, [one], UTC, ratings_url=f"sqlite:///{sample.ratings_db}"
    )
    assert batch.report["sessions_read"] == sum(1 for d in days.values() if d == one)
    assert batch.report["unassigned"] == {}
    assert all(c.started[:10] <= one or c.kind != "main" for c in batch.days[one])
    every = collect_days(sample.projects_dir, all_days, UTC)
    mains = [c for convs in every.days.values() for c in convs if c.kind == "main"]
    assert len(mains) >= sample.sessions - 1  # the resumed session may fold into its origin


def _resume_pair(projects):
    """(origin, resumed) session ids: the resumed file replays the origin's uuids."""
    import json

    uuids = {}
    for path in projects.glob("*/*.jsonl"):
        ids = set()
        for line in path.read_text(errors="replace").splitlines():
            try:
                ids.add(json.loads(line).get("uuid"))
            except (ValueError, AttributeError):
                continue
        uuids[path.stem] = ids - {None}
    pairs = [(a, b) for a in uuids for b in uuids if a < b and uuids[a] & uuids[b]]
    assert len(pairs) == 1
    a, b = pairs[0]
    return (a, b) if len(uuids[a]) <= len(uuids[b]) else (b, a)


def test_incremental_days_dedupe_a_resume_against_history(sample):
    from pipeline.ingest import IngestIndex

    origin, resumed = _resume_pair(sample.projects_dir)
    full = collect_days(
        sample.projects_dir, sorted(set(session_days(sample.projects_dir, UTC).values())), UTC
    )
    by_id = {c.id: c for convs in full.days.values() for c in convs}
    assert by_id[resumed].component == by_id[origin].component

    index = IngestIndex()
    days = session_days(sample.projects_dir, UTC, index)
    later = days[resumed]
    assert days[origin] <= later
    history = sorted({d for d in days.values() if d < later} | {days[origin]} - {later})
    first = collect_days(sample.projects_dir, history, UTC, index=index)
    if days[origin] == later:  # same day: one run reads both, as the full read does
        first = collect_days(sample.projects_dir, [later], UTC, index=index)
    nightly = collect_days(sample.projects_dir, [later], UTC, index=index)
    got = {c.id: c for c in nightly.days[later]}
    origin_conv = {c.id: c for convs in first.days.values() for c in convs}.get(origin) or got[
        origin
    ]
    assert got[resumed].component == origin_conv.component
    replayed = {t.uuid for t in origin_conv.turns}
    assert not replayed & {t.uuid for t in got[resumed].turns}  # nothing read twice
    assert [t.uuid for t in got[resumed].turns] == [t.uuid for t in by_id[resumed].turns]


def _rec(kind, uuid, parent, session, ts, text):
    message = {"role": kind, "content": text}
    if kind == "assistant":
        message = {
            "id": f"msg-{uuid}",
            "role": "assistant",
            "content": [{"type": "text", "text": text}],
        }
    return {
        "type": kind,
        "uuid": uuid,
        "parentUuid": parent,
        "sessionId": session,
        "timestamp": ts,
        "isSidechain": False,
        "userType": "external",
        "cwd": "/p",
        "message": message,
    }


def test_a_session_resumed_days_later_joins_its_origin_without_rereading(tmp_path):
    import json

    from pipeline.ingest import IngestIndex

    project = tmp_path / "-p"
    project.mkdir()
    day1 = [
        _rec("user", "a1", None, "origin", "2026-11-01T10:00:00.000Z", "fix the bug in api.py"),
        _rec("assistant", "a2", "a1", "origin", "2026-11-01T10:00:05.000Z", "Fixed it."),
    ]
    (project / "origin.jsonl").write_text("".join(json.dumps(r) + "\n" for r in day1))
    index = IngestIndex()
    first = collect_days(tmp_path, ["2026-11-01"], UTC, index=index)
    [origin] = first.days["2026-11-01"]
    replay = [{**r, "sessionId": "resumed"} for r in day1]
    day3 = [
        _rec("user", "b1", "a2", "resumed", "2026-11-03T09:00:00.000Z", "now add a test"),
        _rec("assistant", "b2", "b1", "resumed", "2026-11-03T09:00:09.000Z", "Test added."),
    ]
    (project / "resumed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in replay + day3))
    assert session_days(tmp_path, UTC, index)["resumed"] == "2026-11-03"  # not the replay's day
    nightly = collect_days(tmp_path, ["2026-11-03"], UTC, index=index)
    [resumed] = nightly.days["2026-11-03"]
    assert [t.uuid for t in resumed.turns] == ["b1", "b2"]
    assert resumed.component == origin.component
    assert nightly.report["claude_code"]["skipped"]["duplicate_uuid"] == 2
    assert nightly.report["sessions_read"] == 1  # the origin's file was not parsed again


def test_damaged_index_is_set_aside_and_rebuilt(tmp_path):
    """A truncated index.json (a crash, a full disk) costs a re-read, never the run."""
    path = tmp_path / "index.json"
    path.write_text('{"files": {"a.jsonl": {"size": 1')
    index = IngestIndex.load(path)
    assert index.files == {} and index.uuids == {}
    assert "kept as index.json.damaged-" in index.damaged
    kept = list(tmp_path.glob("index.json.damaged-*"))
    assert len(kept) == 1 and kept[0].read_text().startswith('{"files"')
    assert not path.exists()
    index.save(path)
    assert IngestIndex.load(path).damaged is None
