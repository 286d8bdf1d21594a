"""The validate stage: format checks, scrubbing, deduplication, a leak-free split, a report.

Each step decides keep or (drop, reason); the reasons are counted per step, and the dropped
examples are kept beside the splits (`dropped.jsonl`) so nothing disappears unexplained.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.dedup import DedupConfig, dedup
from pipeline.scrub import check_rule_ids, scrub_text
from pipeline.split import SPLITS, SplitConfig, assign_splits, leakage_groups, leaks
from pipeline.types import ChatExample

ROLES = frozenset({"system", "user", "assistant"})
CountTokens = Callable[[list[str]], list[int]]


@dataclass(frozen=True)
class ValidateConfig:
    max_tokens: int = 2048  # longer examples would be cut by the trainer mid-answer
    min_messages: int = 2
    dedup: DedupConfig = field(default_factory=DedupConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    # Scrubber rule ids to turn off (false positives in your own code); see pipeline.scrub.rule_ids
    scrub_skip_rules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_rule_ids(self.scrub_skip_rules)  # an unknown id fails here, naming close ones


@dataclass
class ValidateResult:
    splits: dict[str, list[ChatExample]]
    dropped: list[tuple[str, ChatExample]]
    report: dict

    def version(self) -> str:
        """Same splits, same version: downstream training can tell nothing changed."""
        digest = hashlib.sha256()
        for split in SPLITS:
            for ex in self.splits[split]:
                digest.update(f"{split}\t{json.dumps(ex.to_json(), sort_keys=True)}\n".encode())
        return "splits-" + digest.hexdigest()[:12]


def chatml_text(messages: Sequence[dict[str, str]]) -> str:
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


def format_problem(example: ChatExample) -> str | None:
    """Why an example is malformed, or None."""
    msgs = example.messages
    if not isinstance(msgs, list) or not msgs:
        return "no_messages"
    for m in msgs:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            return "bad_message"
        if m.get("role") not in ROLES:
            return "bad_role"
        if not m["content"].strip():
            return "empty_turn"
    if msgs[-1]["role"] != "assistant":
        return "no_final_answer"
    if not any(m["role"] == "user" for m in msgs):
        return "no_user_turn"
    return None


def _too_long(texts: list[str], limit: int, count_tokens: CountTokens | None) -> list[bool]:
    # A token covers at least one byte, so only texts longer than `limit` bytes need counting.
    sizes = [len(t.encode("utf-8")) for t in texts]
    over = [i for i, s in enumerate(sizes) if s > limit]
    long = [False] * len(texts)
    if not over:
        return long
    counts = (
        count_tokens([texts[i] for i in over]) if count_tokens else [sizes[i] // 4 for i in over]
    )
    for i, n in zip(over, counts, strict=True):
        long[i] = n > limit
    return long


def validate(
    examples: Sequence[ChatExample],
    count_tokens: CountTokens | None = None,
    cfg: ValidateConfig = ValidateConfig(),
) -> ValidateResult:
    started = time.perf_counter()
    stages: dict[str, dict] = {}
    dropped: list[tuple[str, ChatExample]] = []

    # 1. format
    kept: list[ChatExample] = []
    reasons: Counter[str] = Counter()
    for ex in examples:
        problem = format_problem(ex)
        if problem is None and len(ex.messages) < cfg.min_messages:
            problem = "too_few_messages"
        if problem:
            reasons[problem] += 1
            dropped.append((problem, ex))
        else:
            kept.append(ex)
    stages["format"] = {"in": len(examples), "out": len(kept), "dropped": dict(reasons)}

    # 2. scrub: every message's text, which includes rendered tool inputs and results
    found: Counter[str] = Counter()
    skip = check_rule_ids(cfg.scrub_skip_rules)
    scrubbed_examples = 0
    clean: list[ChatExample] = []
    for ex in kept:
        messages = []
        for m in ex.messages:
            text, counts = scrub_text(m["content"], skip)
            messages.append({**m, "content": text})
            found.update(counts)
        scrubbed_examples += messages != ex.messages
        clean.append(ChatExample(messages, ex.provenance))
    kept = clean
    stages["scrub"] = {
        "in": len(kept),
        "out": len(kept),
        "examples_changed": scrubbed_examples,
        "replaced": dict(found),
    }

    # 3. length in tokens of the base model's tokenizer
    texts = [chatml_text(ex.messages) for ex in kept]
    long = _too_long(texts, cfg.max_tokens, count_tokens)
    before = len(kept)
    for ex, is_long in zip(kept, long, strict=True):
        if is_long:
            dropped.append(("too_long", ex))
    kept = [ex for ex, is_long in zip(kept, long, strict=True) if not is_long]
    texts = [t for t, is_long in zip(texts, long, strict=True) if not is_long]
    stages["length"] = {
        "in": before,
        "out": len(kept),
        "dropped": {"too_long": sum(long)},
        "counted_with": "tokenizer" if count_tokens else "bytes/4",
    }

    # 4. exact, then near-duplicate removal
    result = dedup(texts, cfg.dedup)
    for ex, reason in zip(kept, result.reason, strict=True):
        if reason:
            dropped.append((reason, ex))
    stages["dedup"] = {"in": len(kept), "out": sum(result.keep), **result.counts}
    survivors = [i for i, keep in enumerate(result.keep) if keep]
    final = [kept[i] for i in survivors]
    clusters = [result.cluster[i] for i in survivors]

    # 5. split by leakage group, stratified by tier and strategy
    comps = [ex.provenance.get("component") or ex.provenance.get("session", "") for ex in final]
    groups = leakage_groups(comps, clusters)
    strata = [
        f"{ex.provenance.get('tier', '?')}/{ex.provenance.get('strategy', '?')}" for ex in final
    ]
    assigned = assign_splits(groups, strata, comps, cfg.split)
    splits: dict[str, list[ChatExample]] = {s: [] for s in SPLITS}
    for split, ex in zip(assigned, final, strict=True):
        splits[split].append(ex)
    leaked = leaks(assigned, comps)
    stages["split"] = {
        "in": len(final),
        **{s: len(v) for s, v in splits.items()},
        "groups": len(set(groups)),
        "leaked_components": len(leaked),
        "by_stratum": {
            s: dict(Counter(st for st, a in zip(strata, assigned, strict=True) if a == s))
            for s in SPLITS
        },
    }
    report = {
        "examples_in": len(examples),
        "examples_out": len(final),
        "stages": stages,
        "dropped_by_reason": dict(Counter(reason for reason, _ in dropped)),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return ValidateResult(splits, dropped, report)


def write_splits(result: ValidateResult, out: Path) -> dict[str, Path]:
    """`train/valid/test.jsonl` as mlx-lm reads them, plus dropped.jsonl and the report."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, rows in result.splits.items():
        paths[split] = out / f"{split}.jsonl"
        with paths[split].open("w", encoding="utf-8") as fh:
            for ex in rows:
                fh.write(json.dumps(ex.to_json(), ensure_ascii=False) + "\n")
    with (out / "dropped.jsonl").open("w", encoding="utf-8") as fh:
        for reason, ex in result.dropped:
            fh.write(json.dumps({"reason": reason, **ex.to_json()}, ensure_ascii=False) + "\n")
    (out / "report.json").write_text(json.dumps(result.report, indent=2) + "\n")
    (out / "report.md").write_text(report_markdown(result.report))
    return paths


def report_markdown(report: dict) -> str:
    lines = [
        "# Data report",
        "",
        f"{report['examples_in']} examples in, {report['examples_out']} out.",
        "",
        "| stage | in | out | dropped |",
        "| --- | ---: | ---: | --- |",
    ]
    for name, st in report["stages"].items():
        out = st.get("out", sum(st.get(s, 0) for s in SPLITS))
        drops = st.get("dropped") or {
            k: st[k] for k in ("exact_duplicate", "near_duplicate") if k in st
        }
        text = ", ".join(f"{k}: {v}" for k, v in drops.items() if v) or "-"
        lines.append(f"| {name} | {st['in']} | {out} | {text} |")
    split = report["stages"]["split"]
    lines += ["", "| split | examples |", "| --- | ---: |"]
    lines += [f"| {s} | {split[s]} |" for s in SPLITS]
    return "\n".join(lines) + "\n"
