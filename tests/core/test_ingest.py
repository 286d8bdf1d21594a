from __future__ import annotations

from zoneinfo import ZoneInfo

from pipeline.ingest import collect_days, local_day, session_days

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
