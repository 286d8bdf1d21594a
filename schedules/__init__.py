"""Jobs and the nightly schedule."""

import os

import dagster as dg

from pipeline.instance import MAIN_JOB

# The whole pipeline, as far as its assets exist.
nightshift_job = dg.define_asset_job(MAIN_JOB, selection=dg.AssetSelection.all())

# 03:00 in the user's time zone: the machine is idle and the day's sessions are written.
nightly_schedule = dg.ScheduleDefinition(
    name="nightly",
    job=nightshift_job,
    cron_schedule="0 3 * * *",
    execution_timezone=os.environ.get("NIGHTSHIFT_TIMEZONE", "UTC"),
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
