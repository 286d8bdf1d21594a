"""Jobs, the nightly schedule, the sensors and the cleanup schedule."""

import dagster as dg

from pipeline.instance import MAIN_JOB
from schedules.cleanup import cleanup_job, cleanup_schedule
from schedules.sensors import new_data_sensor, run_failure_notice

__all__ = [
    "cleanup_job",
    "cleanup_schedule",
    "new_data_sensor",
    "nightly_schedule",
    "nightshift_data_job",
    "nightshift_job",
    "run_failure_notice",
]

# The whole pipeline, as far as its assets exist; a run covers one day or a range of days.
# Daily partitions come with the data assets (DAILY); Dagster infers them for the job.
nightshift_job = dg.define_asset_job(MAIN_JOB, selection=dg.AssetSelection.all())

# The daily data stages alone: what `dagster job backfill -j nightshift_data` replays per day.
nightshift_data_job = dg.define_asset_job(
    "nightshift_data",
    selection=dg.AssetSelection.assets("raw_sessions", "qualified_scores", "curated_chatml"),
)

# 03:00 in the user's time zone (the partitions' own), for the day that just ended.
nightly_schedule = dg.build_schedule_from_partitioned_job(
    nightshift_job,
    name="nightly",
    hour_of_day=3,
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
