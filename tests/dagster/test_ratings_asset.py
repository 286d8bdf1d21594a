"""raw_sessions with a ratings URL that is not a database fails with the ratings error's
message as a dg.Failure: the fix, not a driver traceback."""

from __future__ import annotations

import dagster as dg

from assets.data import raw_sessions
from resources import WorkspaceResource


def test_raw_sessions_fails_with_the_ratings_message(resources, sample, tmp_path):
    notes = tmp_path / "notes.sqlite"
    notes.write_text("not a database\n" * 20)
    resources["workspace"] = WorkspaceResource(
        projects_dir=str(sample.projects_dir),
        skills_dir=str(sample.skills_dir),
        ratings_url=f"sqlite:///{notes}",
    )
    result = dg.materialize(
        [raw_sessions],
        resources=resources,
        partition_key="2026-11-05",
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    error = failure.step_failure_data.error
    assert f"{notes} is not a SQLite database" in error.message
    assert error.cls_name == "Failure"
    assert "sqlalchemy" not in error.to_string().lower()
