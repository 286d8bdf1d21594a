"""Data-stage benchmarks: validate throughput, and a nightly day against a 30-day backfill."""

from __future__ import annotations

import random
import re
import shutil
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from pipeline.base_model import build_base_model, token_counter, workspace_corpus
from pipeline.curate import curate
from pipeline.ingest import IngestIndex, collect_days, write_day
from pipeline.qualify import score_all
from pipeline.sample import create_sample_workspace
from pipeline.types import ChatExample
from pipeline.validate import validate

WORDS = (
    "the",
    "test",
    "fails",
    "because",
    "the",
    "handler",
    "returns",
    "none",
    "when",
    "the",
    "user",
    "is",
    "missing",
    "so",
    "we",
    "add",
    "a",
    "guard",
    "and",
    "a",
    "regression",
    "test",
    "then",
    "run",
    "pytest",
    "again",
    "and",
    "it",
    "passes",
    "with",
    "the",
    "fix",
    "in",
    "place",
    "docker",
    "compose",
    "up",
    "builds",
    "the",
    "image",
    "and",
    "the",
    "api",
    "container",
    "listens",
    "on",
    "port",
    "8000",
)


def synthetic_examples(n: int, seed: int = 0) -> list[ChatExample]:
    """Chat examples of ~1 KB: 10% exact and 10% near duplicates, a few secrets, 5 per session."""
    rng = random.Random(seed)
    out: list[ChatExample] = []
    for i in range(n):
        roll = rng.random()
        if out and roll < 0.1:
            src = out[rng.randrange(len(out))]
            messages = [dict(m) for m in src.messages]
        elif out and roll < 0.2:
            src = out[rng.randrange(len(out))]
            messages = [dict(m) for m in src.messages]
            messages[-1]["content"] += " " + rng.choice(WORDS)
        else:
            q = " ".join(rng.choices(WORDS, k=40))
            a = " ".join(rng.choices(WORDS, k=120))
            if rng.random() < 0.01:
                a += f" export OPENAI_API_KEY=sk-proj-{uuid.UUID(int=rng.getrandbits(128)).hex}"
            messages = [
                {"role": "user", "content": f"{q} (ticket {i})"},
                {"role": "assistant", "content": a},
            ]
        tier, strategy = rng.choice("AB"), rng.choice("ABD")
        prov = {"component": f"c{i // 5}", "session": f"s{i // 5}", "tier": tier}
        out.append(ChatExample(messages, prov | {"strategy": strategy}))
    return out


def bench_validate(tmp: Path, n: int = 200_000) -> dict:
    sample = create_sample_workspace(tmp / "ws", seed=0)
    model = build_base_model(tmp / "tiny", workspace_corpus(sample.root))
    examples = synthetic_examples(n)
    count = token_counter(model.path)
    started = time.perf_counter()
    result = validate(examples, count)
    seconds = time.perf_counter() - started
    return {
        "n": n,
        "seconds": round(seconds, 2),
        "examples_per_s": round(n / seconds, 1),
        "kept": result.report["examples_out"],
        "dropped_by_reason": result.report["dropped_by_reason"],
    }


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DAY = re.compile(r"2026-11-(\d\d)T")


def _copy_shifted(src: Path, dst: Path, shift: int, tag: str) -> None:
    """A copy of a projects tree, `shift` days later, with fresh ids (no resume links)."""
    for path in sorted(src.rglob("*")):
        if not path.is_file():
            continue
        rel = UUID.sub(
            lambda m: str(uuid.uuid5(uuid.NAMESPACE_OID, m.group() + tag)),
            str(path.relative_to(src)),
        )
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        text = UUID.sub(lambda m: str(uuid.uuid5(uuid.NAMESPACE_OID, m.group() + tag)), text)
        text = DAY.sub(
            lambda m: (
                (date(2026, 11, 1) + timedelta(int(m.group(1)) - 1 + shift)).isoformat() + "T"
            ),
            text,
        )
        target.write_text(text, encoding="utf-8", errors="surrogateescape")


def _stages(projects: Path, days: list[str], out: Path, index: IngestIndex) -> float:
    """The three partitioned stages (raw, scores, curated) for some days; seconds taken."""
    started = time.perf_counter()
    batch = collect_days(projects, days, ZoneInfo("UTC"), index=index)
    for day, convs in batch.days.items():
        write_day(out / day, convs, batch.report)
        scores = {s.conversation_id: s for s in score_all(convs)}
        curate(convs, scores)
    return time.perf_counter() - started


def bench_nightly(tmp: Path) -> dict:
    sample = create_sample_workspace(tmp / "ws", seed=0)
    projects = tmp / "projects"
    for k in range(3):  # the sample's 10 days, three times over: 30 days
        _copy_shifted(sample.projects_dir, projects, 10 * k, f"copy{k}")
    first = date(2026, 11, 1)
    days = [(first + timedelta(d)).isoformat() for d in range(30)]
    index = IngestIndex()  # as the raw_sessions asset keeps it between runs
    backfill = _stages(projects, days, tmp / "out", index)
    # Day 31 arrives (with later days of that copy, which the nightly run must not read).
    _copy_shifted(sample.projects_dir, projects, 30, "day31")
    new_day = (first + timedelta(30)).isoformat()
    nightly = _stages(projects, [new_day], tmp / "out", index)
    size = sum(p.stat().st_size for p in projects.rglob("*") if p.is_file())
    shutil.rmtree(projects, ignore_errors=True)
    return {
        "days": 30,
        "mb": round(size / 1e6, 2),
        "backfill_seconds": round(backfill, 3),
        "nightly_seconds": round(nightly, 3),
        "ratio": round(nightly / backfill, 4),
    }
