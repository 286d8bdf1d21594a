"""The core stays free of Dagster: not imported, not even lazily."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_module_in_pipeline_mentions_a_dagster_import():
    pattern = re.compile(r"^\s*(import dagster|from dagster)", re.M)
    offenders = [p.name for p in (ROOT / "pipeline").rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_importing_the_whole_core_loads_no_dagster():
    modules = sorted(p.stem for p in (ROOT / "pipeline").glob("*.py") if p.stem != "__init__")
    code = "import sys\n" + "".join(f"import pipeline.{m}\n" for m in modules)
    code += "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dagster'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
