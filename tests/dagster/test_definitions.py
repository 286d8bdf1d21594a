from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dagster_cli_validates_the_workspace(tmp_path):
    dagster = Path(sys.executable).parent / "dagster"
    out = subprocess.run(
        [dagster, "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DAGSTER_HOME": str(tmp_path), "HOME": str(tmp_path)},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "All code locations passed validation" in out.stdout + out.stderr


def test_definitions_hold_the_job_schedule_and_checks():
    from definitions import defs

    job = defs.resolve_job_def("nightshift_job")
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert {"base_model", "base_model_gguf"} <= keys
    assert defs.resolve_schedule_def("nightly").cron_schedule == "0 3 * * *"
    checks = {k.name for k in defs.resolve_asset_graph().asset_check_keys}
    assert "base_model_gguf_tokenizer_parity" in checks
