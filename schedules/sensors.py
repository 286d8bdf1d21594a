"""Sensors: an early run when enough new data has arrived, and a notice when a run fails."""

import base64
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import dagster as dg

from assets.data import DAILY
from pipeline.instance import MAIN_JOB
from pipeline.notify import notify
from pipeline.ratings import RatingsError, read_rated_conversations
from pipeline.service import UI_URL
from resources import ArtifactStoreResource, WorkspaceResource

# Either threshold starts a run: ten ratings are a day of deliberate feedback, and 20 MB of
# Claude Code logs is a few long sessions (a typical one is 1 to 5 MB).
EARLY_RATINGS = int(os.environ.get("NIGHTSHIFT_EARLY_RATINGS", "10"))
EARLY_SESSION_BYTES = int(os.environ.get("NIGHTSHIFT_EARLY_SESSION_MB", "20")) * 1_000_000
# Reading the ratings database is a full scan; every ten minutes is early enough.
INTERVAL_S = 600
# Text (UUID) ids already counted, kept as 6-byte hashes: ~8 cursor bytes per unexported rating
# (0.8 MB at 100k) and one new id in 2**48/n taken for a counted one; integer ids keep a high mark.
SEEN_HASH_BYTES = 6
NEW_DATA = "new_data"
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def runs_in_progress(instance: dg.DagsterInstance) -> list[str]:
    """Ids of runs queued or running on this instance, of any job."""
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=IN_PROGRESS))
    return [r.dagster_run.run_id for r in records]


def pending_session_bytes(projects_dir: Path, store_copy: Path) -> int:
    """Bytes of session logs not yet copied into the store, i.e. not seen by any run."""
    if not projects_dir.is_dir():
        return 0
    pending = 0
    for src in projects_dir.rglob("*.jsonl"):
        copy = store_copy / src.relative_to(projects_dir)
        pending += max(0, src.stat().st_size - (copy.stat().st_size if copy.is_file() else 0))
    return pending


@dataclass
class Baseline:
    """What the sensor counts as already handled; kept as the sensor's cursor."""

    rating_id: int = 0  # unexported integer ids up to this one were read by a run
    seen: str = ""  # unexported text ids read by a run: SEEN_HASH_BYTES hashes, base64
    session_bytes: int = 0  # pending bytes an early run was already started for
    run_id: str | None = None  # the newest run of the main job seen so far

    @classmethod
    def parse(cls, cursor: str | None) -> "Baseline":
        """The cursor's baseline; fields this version does not know are dropped."""
        try:
            stored = json.loads(cursor) if cursor else {}
        except ValueError:  # edited by hand: start afresh, as a new sensor would
            stored = {}
        stored = stored if isinstance(stored, dict) else {}
        return cls(**{f.name: stored[f.name] for f in fields(cls) if f.name in stored})

    def dump(self) -> str:
        return json.dumps(asdict(self))

    def seen_hashes(self) -> set[bytes]:
        try:
            packed = base64.b64decode(self.seen, validate=True)
        except (ValueError, TypeError):  # a cursor edited by hand: its text ids count as new
            return set()
        n = SEEN_HASH_BYTES
        return {packed[i : i + n] for i in range(0, len(packed) - len(packed) % n, n)}

    def keep(self, hashes: Iterable[bytes]) -> None:
        self.seen = base64.b64encode(b"".join(sorted(hashes))).decode("ascii")


def _split(ids: list[int | str]) -> tuple[list[int], set[bytes]]:
    """Integer ids as they are (they grow); text ids, in no useful order, as hashes."""
    integers = [i for i in ids if isinstance(i, int)]
    texts = {
        hashlib.blake2b(i.encode("utf-8", "surrogatepass"), digest_size=SEEN_HASH_BYTES).digest()
        for i in ids
        if isinstance(i, str)
    }
    return integers, texts


def _unexported_rating_ids(url: str | None) -> list[int | str]:
    if not url:
        return []
    _, report = read_rated_conversations(url)
    return report.rating_ids


@dg.sensor(
    name=NEW_DATA,
    job_name=MAIN_JOB,
    minimum_interval_seconds=INTERVAL_S,
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def new_data_sensor(
    context: dg.SensorEvaluationContext,
    workspace: WorkspaceResource,
    artifacts: ArtifactStoreResource,
) -> dg.SensorResult:
    """Run the pipeline before 03:00 once enough new ratings or session logs have arrived."""
    busy = runs_in_progress(context.instance)
    if busy:
        return dg.SensorResult(
            skip_reason=f"a run is in progress ({busy[0]}); not starting another"
        )
    base = Baseline.parse(context.cursor)
    try:
        integers, texts = _split(_unexported_rating_ids(workspace.ratings_url))
    except RatingsError as exc:  # the message names the database and the fix
        context.log.warning(f"ratings database not read: {exc}")
        return dg.SensorResult(
            skip_reason=f"cannot read the ratings database, so no early run: {exc}",
            cursor=context.cursor,
        )
    seen = base.seen_hashes() & texts  # ids exported since are forgotten: the cursor stays small
    latest = context.instance.get_runs(filters=dg.RunsFilter(job_name=MAIN_JOB), limit=1)
    if latest and latest[0].run_id != base.run_id:
        run = latest[0]
        # A run we did not start (the nightly, a backfill, the UI) that succeeded read what was
        # there by now; one that failed read nothing, so its ratings still count as new.
        if run.tags.get("dagster/sensor_name") != NEW_DATA and run.is_success:
            base.rating_id, seen = max(integers, default=0), texts
        base.run_id = run.run_id
    store_copy = artifacts.store().asset_dir("raw_sessions") / "source"
    pending = pending_session_bytes(workspace.projects_path(), store_copy)
    # Pending bytes shrink when a run copies the logs; an early run that failed before copying
    # leaves them, and must not restart until as much again has arrived.
    base.session_bytes = min(base.session_bytes, pending)
    new_ratings = sum(1 for i in integers if i > base.rating_id) + len(texts - seen)
    new_bytes = pending - base.session_bytes
    found = f"{new_ratings} new unexported rating(s), {new_bytes:,} new bytes of session logs"
    base.keep(seen)
    if new_ratings < EARLY_RATINGS and new_bytes < EARLY_SESSION_BYTES:
        limits = f"{EARLY_RATINGS} ratings or {EARLY_SESSION_BYTES:,} bytes"
        return dg.SensorResult(skip_reason=f"{found}; waiting for {limits}", cursor=base.dump())
    # The newest day that has ended, as the nightly would run it: today is not a partition
    # until midnight, but validated_splits and the model stages read every day there is.
    day = DAILY.get_last_partition_key()
    if day is None:
        return dg.SensorResult(skip_reason=f"{found}; no day has ended yet", cursor=base.dump())
    base.rating_id, base.session_bytes = max(integers, default=0), pending
    base.keep(texts)
    context.log.info(f"{found}: starting {MAIN_JOB} for {day}")
    request = dg.RunRequest(
        partition_key=day,
        tags={"nightshift/trigger": "new_data", "nightshift/new_ratings": str(new_ratings)},
    )
    return dg.SensorResult(run_requests=[request], cursor=base.dump())


def _root_cause(error) -> str:
    """The user's exception, not Dagster's wrapper around it."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip().splitlines()[0]


def failure_text(context: dg.RunFailureSensorContext) -> str:
    """Which run, which steps and why, and where the full log is."""
    run = context.dagster_run
    steps = [
        f"{e.step_key}: {_root_cause(e.step_failure_data.error)}"
        for e in context.get_step_failure_events()
        if e.step_failure_data.error
    ]
    reason = "; ".join(steps) or context.failure_event.message or "no message"
    return f"{run.job_name} run {run.run_id[:8]} failed: {reason} (log: {UI_URL}/runs/{run.run_id})"


@dg.run_failure_sensor(name="run_failure_notice", default_status=dg.DefaultSensorStatus.RUNNING)
def run_failure_notice(context: dg.RunFailureSensorContext) -> None:
    """Tell the user a run failed: in the sensor's log, and as a desktop notification."""
    text = failure_text(context)
    context.log.error(text)
    how = notify("nightshift: a run failed", text)
    context.log.info(f"notification: {how}")
