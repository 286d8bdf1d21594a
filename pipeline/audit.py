"""Independent audits of written splits: what the blocking checks assert before training."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pipeline.dedup import DedupConfig, dedup
from pipeline.secret_audit import Hit, scan_texts, scrubber_hits
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


@dataclass(frozen=True)
class Leak:
    """A secret left in a split: the rule that found it and where, never the value."""

    rule: str  # "detect-secrets:<plugin>" or "scrubber:<rule id>"
    split: str
    line: int  # line of `<split>.jsonl`, 1-based
    example: str  # the example's conversation id
    message: int  # index of the message in the example; -1 for a line that does not parse
    message_line: int  # line within that message's text, 1-based

    def where(self) -> str:
        msg = f"message {self.message} line {self.message_line}" if self.message >= 0 else "raw"
        return f"{self.split}.jsonl:{self.line} (example {self.example or '?'}, {msg})"


def secrets_left(folder: Path, skip: frozenset[str] = frozenset()) -> list[Leak]:
    """What either scanner finds in the written splits: the scrubber's own rules (less those in
    `skip`, as the splits were scrubbed) and detect-secrets, which shares none of them."""
    texts: list[str] = []
    places: list[tuple[str, int, str, int]] = []
    for split in SPLITS:
        path = folder / f"{split}.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
        for number, line in enumerate(lines, 1):
            try:
                ex = ChatExample.from_json(json.loads(line))
                contents = [m["content"] for m in ex.messages]
                example, first = str(ex.provenance.get("conversation", "")), 0
            except (ValueError, KeyError, TypeError, AttributeError):
                contents, example, first = [line], "", -1  # unparseable: scanned as it is
            for i, content in enumerate(contents, first):
                texts.append(content if isinstance(content, str) else json.dumps(content))
                places.append((split, number, example, i))
    leaks: list[Leak] = []
    for text, place, found in zip(texts, places, scan_texts(texts), strict=True):
        hits: list[Hit] = scrubber_hits(text, skip) + found
        leaks += [Leak(h.rule, *place, h.line) for h in hits]
    return leaks
