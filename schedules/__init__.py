"""Jobs and the nightly schedule."""

import dagster as dg

from pipeline.instance import MAIN_JOB

# The whole pipeline, as far as its assets exist; a run covers one day or a range of days.
# Daily partitions come with the data assets (DAILY); Dagster infers them for the job.
nightshift_job = dg.define_asset_job(MAIN_JOB, selection=dg.AssetSelection.all())

# 03:00 in the user's time zone (the partitions' own), for the day that just ended.
nightly_schedule = dg.build_schedule_from_partitioned_job(
    nightshift_job,
    name="nightly",
    hour_of_day=3,
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
