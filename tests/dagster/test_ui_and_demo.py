"""The two ways a person meets the project: the Dagster UI and the demo command."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dagster_dev_serves_the_ui_and_graphql_on_loopback(tmp_path):
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "NIGHTSHIFT_HOME": str(tmp_path)}
    cmd = [BIN / "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    log = (tmp_path / "dev.log").open("w")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline, page = time.monotonic() + 120, None
        while time.monotonic() < deadline and page is None:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
            except OSError:
                time.sleep(1)
        assert page is not None, (tmp_path / "dev.log").read_text()[-2000:]
        assert b"Dagster" in page
        query = json.dumps({"query": "{ assetNodes { assetKey { path } } }"}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/graphql", query, {"Content-Type": "application/json"}
        )
        deadline, keys = time.monotonic() + 60, set()
        while time.monotonic() < deadline and "base_model" not in keys:
            nodes = json.loads(urllib.request.urlopen(req, timeout=10).read())["data"]
            keys = {n["assetKey"]["path"][-1] for n in nodes.get("assetNodes") or []}
            time.sleep(0.5)
        assert {"base_model", "base_model_gguf"} <= keys
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_demo_runs_the_main_job_and_prints_where_outputs_are(tmp_path):
    port = _free_port()
    env = {**os.environ, "NIGHTSHIFT_HOME": str(tmp_path / "home")}
    env["NIGHTSHIFT_SERVE_PORT"] = str(port)
    try:
        out = subprocess.run(
            [BIN / "nightshift", "demo"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        # The whole pipeline ran: gates passed, v1 is the champion and it is being served.
        assert "eval_report.eval_report_exact_match: passed" in out.stdout
        status = json.loads(
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nightshift/status").read()
        )
        assert status["current"]["version"] == "v1", status
        assert f"http://127.0.0.1:{port}" in out.stdout
    finally:
        subprocess.run([BIN / "nightshift", "serve", "stop", "--port", str(port)], env=env)
    lines = dict(
        line.split(None, 1)
        for line in out.stdout.splitlines()
        if line.strip() and line.split(None, 1)[0] in {"base_model", "base_model_gguf", "artifacts"}
    )
    assert Path(lines["base_model_gguf"].strip(), "base-f16.gguf").is_file()
    assert (tmp_path / "home" / "dagster" / "dagster.yaml").is_file()
    runs = list((tmp_path / "home" / "dagster").rglob("runs.db")) + list(
        (tmp_path / "home" / "dagster").rglob("*.db")
    )
    assert runs, "run storage was not written under NIGHTSHIFT_HOME"
