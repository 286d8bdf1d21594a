"""The retention job and its daily schedule: old artifact versions and stale scratch go."""

import os

import dagster as dg

from assets.data import TIMEZONE
from pipeline.retention import RetentionPolicy, sweep
from resources import ArtifactStoreResource
from schedules.sensors import runs_in_progress

CLEANUP_JOB = "cleanup_job"


class RetentionConfig(dg.Config):
    keep_last: int = int(os.environ.get("NIGHTSHIFT_KEEP_VERSIONS", "3"))  # besides the current
    max_age_days: float | None = float(os.environ.get("NIGHTSHIFT_KEEP_DAYS", "30"))
    dry_run: bool = False  # report what would go, remove nothing


@dg.op
def remove_old_versions(
    context: dg.OpExecutionContext, config: RetentionConfig, artifacts: ArtifactStoreResource
) -> dg.Output:
    """Keep current, registry-referenced and recent versions; remove the rest."""
    policy = RetentionPolicy(keep_last=config.keep_last, max_age_days=config.max_age_days)
    report = sweep(artifacts.store().root, policy, dry_run=config.dry_run)
    for asset, removed in report.removed.items():
        for name, reason in removed.items():
            context.log.info(
                f"{'would remove' if config.dry_run else 'removed'} {asset}/{name}: {reason}"
            )
    return dg.Output(
        None,
        metadata={
            "removed": sum(len(r) for r in report.removed.values()),
            "freed_mb": round(report.freed_bytes / 1e6, 1),
            "report": dg.MetadataValue.json(report.to_json()),
        },
    )


@dg.job(name=CLEANUP_JOB, description="Remove artifact versions the retention policy drops.")
def cleanup_job() -> None:
    remove_old_versions()


# Midday, far from the 03:00 run; a version must not vanish while a run may be reusing it.
@dg.schedule(
    job=cleanup_job,
    cron_schedule="0 13 * * *",
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def cleanup_schedule(context: dg.ScheduleEvaluationContext):
    busy = runs_in_progress(context.instance)
    if busy:
        return dg.SkipReason(f"a run is in progress ({busy[0]}); cleaning up tomorrow")
    return dg.RunRequest()
