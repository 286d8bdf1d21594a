"""Run the main job over a range of days on the project's instance: `python -m schedules.demo`.

`dagster job execute` cannot take a partition range, so the demo runs the job in process here;
the run is recorded in DAGSTER_HOME like any other and shows in the UI.
"""

import sys

import dagster as dg

from definitions import defs
from pipeline.instance import MAIN_JOB
from pipeline.processes import machine_id
from resources.run_launcher import HOST_TAG


def run(first: str, last: str) -> bool:
    job = defs.resolve_job_def(MAIN_JOB)
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    tags[HOST_TAG] = machine_id()  # if this process dies, run monitoring fails the run
    config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance, tags=tags, run_config=config, raise_on_error=False
        )
    for check in result.get_asset_check_evaluations():
        verdict = "passed" if check.passed else "FAILED"
        print(f"check {check.asset_key.to_user_string()}.{check.check_name}: {verdict}")
    return result.success


if __name__ == "__main__":
    sys.exit(0 if run(sys.argv[1], sys.argv[2]) else 1)
