"""Session-log reading speed: read_projects over >= 50 MB of realistic Claude Code JSONL.

The sample workspace is replicated with fresh ids (uuids, session ids, message, request and
tool ids), so every copy is a distinct set of sessions with the same quirks.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from pathlib import Path

from pipeline.sample import create_sample_workspace
from pipeline.sessions import read_projects

TARGET_BYTES = 50_000_000
IDS = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|(?:msg_01|req_011C|toolu_01)[A-Za-z0-9]+"
)


def _fresh(copy: int, text: str) -> str:
    def swap(match: re.Match[str]) -> str:
        old = match.group(0)
        if old[0].isdigit() or old[0] in "abcdef":
            return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{copy}/{old}"))
        return f"{old}c{copy}"

    return IDS.sub(swap, text)


def synthesize(tmp: Path, target_bytes: int = TARGET_BYTES) -> Path:
    """A projects tree of at least `target_bytes` of JSONL; returns its path."""
    sample = create_sample_workspace(tmp / "sample", seed=0)
    files = {
        p.relative_to(sample.projects_dir).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(sample.projects_dir.rglob("*"))
        if p.is_file()
    }
    jsonl = sum(len(t.encode()) for rel, t in files.items() if rel.endswith(".jsonl"))
    out = tmp / "projects"
    for copy in range(math.ceil(target_bytes / jsonl)):
        for rel, text in files.items():
            path = out / _fresh(copy, rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_fresh(copy, text), encoding="utf-8")
    return out


def bench_read(tmp: Path) -> dict:
    projects = synthesize(tmp)
    start = time.perf_counter()
    conversations, report = read_projects(projects)
    seconds = time.perf_counter() - start
    mb = report.bytes / 1e6
    return {
        "mb": round(mb, 1),
        "seconds": round(seconds, 2),
        "mb_per_s": round(mb / seconds, 1),
        "records": report.records,
        "conversations": len(conversations),
    }
