"""Measuring one GGUF the way it will be used: held-out tasks, latency, behaviour, canary.

Cases come from the test split and from the user's golden file; each answer is a greedy chat
completion through llama.cpp with the template stored in the GGUF, streamed so the same pass
gives time to first token and decode speed.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pipeline.perplexity import answer_score

ROLE_MARKERS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|start_header_id|>")
CANARY_FILE = Path(__file__).parent / "data" / "canary.json"


class GoldenFileError(ValueError):
    """The golden file is not what `load_cases` reads; the message names the entry and fix."""


@dataclass(frozen=True)
class EvalCase:
    messages: tuple[dict, ...]  # the conversation up to the answer
    category: str
    expected: str | None = None  # exact match against this
    keywords: tuple[str, ...] = ()  # or recall of these (case-insensitive)
    source: str = "golden"


def load_cases(path: Path, source: str = "golden") -> list[EvalCase]:
    """A JSON list of {prompt (text or messages), expected or keywords, category}."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise GoldenFileError(f"{path} is not JSON: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("cases")
    if not isinstance(data, list):
        raise GoldenFileError(f"{path}: expected a list of cases (or {{'cases': [...]}})")
    cases = []
    for i, item in enumerate(data):
        where = f"{path} case {i}"
        if not isinstance(item, dict) or "prompt" not in item:
            raise GoldenFileError(f"{where}: needs a 'prompt' (text or a list of messages)")
        prompt = item["prompt"]
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        if not (isinstance(messages, list) and all(_is_message(m) for m in messages)):
            raise GoldenFileError(f"{where}: 'prompt' messages need 'role' and 'content' strings")
        expected, keywords = item.get("expected"), item.get("keywords") or []
        if not isinstance(expected, str) and not keywords:
            raise GoldenFileError(f"{where}: give 'expected' (a string) or 'keywords' (a list)")
        if not all(isinstance(k, str) and k for k in keywords):
            raise GoldenFileError(f"{where}: 'keywords' must be non-empty strings")
        category = str(item.get("category") or "general")
        if category == "overall":
            raise GoldenFileError(f"{where}: 'overall' is the report's total; name it otherwise")
        cases.append(EvalCase(tuple(messages), category, expected, tuple(keywords), source))
    return cases


def _is_message(m: object) -> bool:
    return (
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
    )


def split_cases(rows: Sequence[dict], limit: int) -> list[EvalCase]:
    """Held-out cases from the test split: the last assistant turn is the expected answer."""
    cases = []
    for row in rows:
        messages = row["messages"]
        if len(messages) < 2 or messages[-1]["role"] != "assistant":
            continue
        strategy = (row.get("provenance") or {}).get("strategy", "unknown")
        cases.append(
            EvalCase(tuple(messages[:-1]), f"test:{strategy}", messages[-1]["content"], (), "test")
        )
    return cases[:limit]


def normalize(text: str) -> str:
    """Whitespace and a code fence or backticks around a one-line answer do not count."""
    text = re.sub(r"^```\w*\n?|\n?```$", "", text.strip()).strip().strip("`")
    return " ".join(text.split())


@dataclass
class CaseResult:
    category: str
    source: str
    exact_match: float | None
    keyword_recall: float | None
    answer: str
    finish_reason: str
    ttft_s: float
    tokens: int
    decode_tps: float | None
    leaked_markers: list[str] = field(default_factory=list)


def run_case(llm, case: EvalCase, max_tokens: int) -> CaseResult:
    llm.reset()  # no prefix reuse from the previous case: honest time to first token
    t0 = time.perf_counter()
    first = last = None
    parts, finish = [], "length"
    stream = llm.create_chat_completion(
        list(case.messages), max_tokens=max_tokens, temperature=0.0, stream=True
    )
    for chunk in stream:
        choice = chunk["choices"][0]
        piece = choice["delta"].get("content")
        if piece:
            last = time.perf_counter()
            first = first or last
            parts.append(piece)
        finish = choice.get("finish_reason") or finish
    end = time.perf_counter()
    answer = "".join(parts)
    tokens = len(llm.tokenize(answer.encode("utf-8"), add_bos=False)) if answer else 0
    decode = (tokens - 1) / (last - first) if tokens > 1 and last > first else None
    em = float(normalize(answer) == normalize(case.expected)) if case.expected else None
    low = answer.lower()
    recall = (
        sum(k.lower() in low for k in case.keywords) / len(case.keywords) if case.keywords else None
    )
    return CaseResult(
        case.category,
        case.source,
        em,
        recall,
        answer,
        finish,
        (first or end) - t0,
        tokens,
        decode,
        [m for m in ROLE_MARKERS if m in answer],
    )


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def summarize_tasks(results: Sequence[CaseResult]) -> dict:
    """Exact match and keyword recall per category and overall."""
    groups: dict[str, list[CaseResult]] = defaultdict(list)
    for r in results:
        groups[r.category].append(r)
    groups["overall"] = list(results)

    def scores(rs: list[CaseResult]) -> dict:
        em = [r.exact_match for r in rs if r.exact_match is not None]
        kw = [r.keyword_recall for r in rs if r.keyword_recall is not None]
        return {"cases": len(rs), "exact_match": _mean(em), "keyword_recall": _mean(kw)}

    return {name: scores(rs) for name, rs in sorted(groups.items())}


def summarize_latency(results: Sequence[CaseResult]) -> dict:
    ttft = [r.ttft_s * 1000 for r in results]
    tps = [r.decode_tps for r in results if r.decode_tps]

    def pct(xs: list[float], q: float) -> float | None:
        return float(np.percentile(xs, q)) if xs else None

    return {
        "ttft_ms_p50": pct(ttft, 50),
        "ttft_ms_p95": pct(ttft, 95),
        "tokens_per_s_p50": pct(tps, 50),
        "tokens_per_s_p95": pct(tps, 95),  # the 95th percentile of speed: the fast end
        "tokens_per_s_p05": pct(tps, 5),  # the slow end, what a user notices
        "samples": len(results),
    }


def summarize_behaviour(results: Sequence[CaseResult], template_matches: bool) -> dict:
    n = len(results) or 1
    return {
        "eos_rate": sum(r.finish_reason == "stop" for r in results) / n,
        "leaked_role_markers": sum(bool(r.leaked_markers) for r in results),
        "chat_template_identical": template_matches,
        "answers": len(results),
    }


def load_canary(path: Path = CANARY_FILE) -> list[EvalCase]:
    return load_cases(path, source="canary")


def canary_score(llm, cases: Sequence[EvalCase], render: Callable[[list[dict]], str]) -> dict:
    """Mean per-token probability of the canary answers, teacher-forced: falls when a model
    forgets general text, and is measurable even for a model too small to answer them."""
    total, count = 0.0, 0
    for case in cases:
        logp, n = answer_score(llm, render(list(case.messages)), case.expected or "")
        total, count = total + logp, count + n
    if not count:
        raise ValueError("the canary set is empty")
    # Uniform guessing scores 1/vocab: a model near it has no general knowledge to forget.
    chance = 1.0 / llm.n_vocab()
    return {"score": float(np.exp(total / count)), "chance": chance, "tokens": count}


def answer_perplexity(llm, rows: Sequence[dict], render: Callable[[list[dict]], str]) -> dict:
    """Perplexity of the test split's final answers given their conversations, teacher-forced:
    the tokens training optimizes (the prompt is masked there), so a fine-tuned model is
    judged on its answers, not on how well it predicts what users type."""
    total, count, skipped = 0.0, 0, 0
    for row in rows:
        messages = row["messages"]
        if len(messages) < 2 or messages[-1]["role"] != "assistant":
            continue
        try:
            logp, n = answer_score(llm, render(messages[:-1]), messages[-1]["content"])
        except ValueError:  # longer than the context: counted, not scored
            skipped += 1
            continue
        total, count = total + logp, count + n
    if not count:
        return {"ppl": None, "tokens": 0, "skipped_too_long": skipped}
    return {"ppl": float(np.exp(-total / count)), "tokens": count, "skipped_too_long": skipped}


def gguf_renderer(llm, add_generation_prompt: bool = True) -> Callable[[list[dict]], str]:
    """The chat template stored in the GGUF, applied the way llama-cpp-python's chat does
    (without the trailing assistant header for whole conversations)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    meta = llm.metadata
    template = meta.get("tokenizer.chat_template")
    if not template:
        raise ValueError("the GGUF has no chat template; convert with the tokenizer's template")

    def token(key: str) -> str:
        tid = meta.get(key)
        return llm._model.token_get_text(int(tid)) if tid is not None else ""

    fmt = Jinja2ChatFormatter(
        template,
        token("tokenizer.ggml.eos_token_id"),
        token("tokenizer.ggml.bos_token_id"),
        add_generation_prompt=add_generation_prompt,
    )
    return lambda messages: fmt(messages=messages).prompt


def results_json(results: Sequence[CaseResult], limit: int = 200) -> list[dict]:
    return [asdict(r) for r in results[:limit]]
