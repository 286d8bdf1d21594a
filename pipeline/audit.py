"""Independent audits of written splits: what the blocking checks assert before training."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from pipeline.dedup import DedupConfig, dedup
from pipeline.scrub import find_secrets
from pipeline.split import SPLITS, leaks
from pipeline.types import ChatExample
from pipeline.validate import chatml_text, format_problem


def load_splits(folder: Path) -> tuple[dict[str, list[ChatExample]], Counter[str]]:
    """The examples of each split; lines that do not parse are counted, not raised."""
    splits: dict[str, list[ChatExample]] = {}
    bad: Counter[str] = Counter()
    for split in SPLITS:
        rows = []
        path = folder / f"{split}.jsonl"
        for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else []:
            try:
                rows.append(ChatExample.from_json(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                bad[f"{split}:unparseable"] += 1
        splits[split] = rows
    return splits, bad


def schema_problems(folder: Path) -> Counter[str]:
    splits, problems = load_splits(folder)
    for split, rows in splits.items():
        for ex in rows:
            if (why := format_problem(ex)) is not None:
                problems[f"{split}:{why}"] += 1
    if not splits["train"]:
        problems["train:empty"] += 1
    return problems


def leakage(folder: Path, dedup_cfg: DedupConfig = DedupConfig()) -> dict[str, int]:
    """Components, identical texts and near-duplicate clusters found in more than one split."""
    splits, _ = load_splits(folder)
    names, comps, texts = [], [], []
    for split, rows in splits.items():
        for ex in rows:
            names.append(split)
            comps.append(ex.provenance.get("component") or ex.provenance.get("session", ""))
            texts.append(chatml_text(ex.messages))
    clusters = dedup(texts, dedup_cfg).cluster
    return {
        "components": len(leaks(names, comps)),
        "identical_texts": len(leaks(names, [" ".join(t.split()).lower() for t in texts])),
        "near_duplicate_clusters": len(leaks(names, [str(c) for c in clusters])),
    }


def secrets_left(folder: Path) -> Counter[str]:
    """Findings of the scrubber's own detectors in the written splits, by kind."""
    splits, _ = load_splits(folder)
    found: Counter[str] = Counter()
    for rows in splits.values():
        for ex in rows:
            for m in ex.messages:
                found.update(f.kind for f in find_secrets(m["content"]))
    return found
