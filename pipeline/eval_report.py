"""eval_report's core: measure the candidate's quants, the base model and the champion on the
same held-out text and cases, then apply the gates. Written as report.json and report.md."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from pipeline.artifacts import sha256_file
from pipeline.config import EvalConfig, GateConfig
from pipeline.evaluate import (
    EvalCase,
    answer_perplexity,
    canary_score,
    gguf_renderer,
    results_json,
    run_case,
    summarize_behaviour,
    summarize_latency,
    summarize_tasks,
)
from pipeline.gates import evaluate_gates
from pipeline.gguf import load_llama
from pipeline.perplexity import (
    TooLittleText,
    fit_ctx,
    kl_divergence,
    open_model,
    perplexity,
    text_tokens,
)
from pipeline.report_md import report_markdown


def eval_text(rows: Sequence[dict], render: Callable[[list[dict]], str]) -> str:
    """The test split as the model sees it in training: every conversation, chat-rendered."""
    return "".join(render(r["messages"]) for r in rows)


def measure_model(
    path: Path,
    cases: Sequence[EvalCase],
    canary: Sequence[EvalCase],
    text: str,
    test_rows: Sequence[dict],
    cfg: EvalConfig,
    template: str | None,
    log: Callable[[str], None] = print,
) -> dict:
    """Everything the gates read about one GGUF: perplexity, tasks, latency, behaviour, canary."""
    gen = load_llama(path, n_ctx=cfg.n_ctx)
    render = gguf_renderer(gen)
    results, skipped = [], Counter()
    for case in cases:
        prompt = gen.tokenize(render(list(case.messages)).encode(), add_bos=True, special=True)
        if len(prompt) + cfg.max_tokens > cfg.n_ctx:
            skipped["prompt longer than the eval context"] += 1
            continue
        # An answer that cannot fit the budget can neither match nor end on EOS: its quality
        # is measured by answer perplexity instead.
        if (
            case.expected
            and len(gen.tokenize(case.expected.encode(), add_bos=False)) >= cfg.max_tokens
        ):
            skipped["expected answer longer than max_tokens"] += 1
            continue
        results.append(run_case(gen, case, cfg.max_tokens))
    meta_template = gen.metadata.get("tokenizer.chat_template")
    del gen
    scorer = open_model(path, n_ctx=max(cfg.ppl_ctx, cfg.n_ctx), threads=cfg.threads)
    ppl = text_perplexity(scorer, text, cfg)
    answers_ppl = answer_perplexity(scorer, test_rows, render)
    tasks = summarize_tasks(results)
    log(
        f"{path.name}: ppl {ppl['ppl']}, answer ppl {answers_ppl['ppl']}, "
        f"exact match {tasks['overall']['exact_match']}, "
        f"{len(results)} answers ({sum(skipped.values())} skipped)"
    )
    return {
        "path": str(path),
        "bytes": path.stat().st_size,
        "perplexity": ppl,
        "answer_perplexity": answers_ppl,
        "tasks": tasks,
        "latency": summarize_latency(results),
        "behaviour": summarize_behaviour(results, template is None or meta_template == template),
        "canary": canary_score(scorer, canary, render),
        "skipped": dict(skipped),
        "answers": results_json(results, limit=60),
    }


def text_perplexity(scorer, text: str, cfg: EvalConfig) -> dict:
    """llama-perplexity's figure on the chat-rendered test split, or why there is none."""
    tokens = text_tokens(scorer, text, special=True)
    try:
        return asdict(perplexity(scorer, tokens, fit_ctx(len(tokens), cfg.ppl_ctx)))
    except TooLittleText as exc:
        return {"ppl": None, "reason": f"test split too small: {exc}"}


def measure_quants(
    f16: Path, quants: dict[str, Path], text: str, cfg: EvalConfig, log: Callable = print
) -> dict:
    """Perplexity of the F16 and every quant, and each quant's KL divergence from the F16."""
    ref = open_model(f16, n_ctx=cfg.ppl_ctx, threads=cfg.threads)
    tokens = text_tokens(ref, text, special=True)
    try:
        n_ctx = fit_ctx(len(tokens), cfg.ppl_ctx)
    except TooLittleText as exc:  # a tiny test split: no quant figures, said so in the report
        log(f"quants not measured: {exc}")
        return {"F16": {"path": str(f16), "perplexity": {"ppl": None, "reason": str(exc)}}}
    out = {"F16": {"path": str(f16), "perplexity": asdict(perplexity(ref, tokens, n_ctx))}}
    for qtype, path in quants.items():
        q = open_model(path, n_ctx=cfg.ppl_ctx, threads=cfg.threads)
        out[qtype] = {
            "path": str(path),
            "bytes": path.stat().st_size,
            "perplexity": asdict(perplexity(q, tokens, n_ctx)),
            "kl": asdict(kl_divergence(ref, q, tokens, n_ctx)),
        }
        ppl, kl = out[qtype]["perplexity"]["ppl"], out[qtype]["kl"]["kl_mean"]
        log(f"{qtype}: ppl {ppl:.3f}, KL {kl:.5f}")
    return out


def cases_digest(cases: Sequence[EvalCase], text: str, cfg: EvalConfig) -> str:
    payload = json.dumps([[asdict(c) for c in cases], text, asdict(cfg)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def cached_measure(
    cache_dir: Path, path: Path, digest: str, measure: Callable[[], dict], log: Callable = print
) -> dict:
    """The base model and the champion do not change between nights: measure each once per
    file and evaluation set (keyed by the file's sha256)."""
    key = f"{sha256_file(path)[:16]}-{digest}"
    hit = cache_dir / f"{key}.json"
    if hit.is_file():
        log(f"{path.name}: measurements reused ({hit.name})")
        return {**json.loads(hit.read_text()), "cached": True}
    result = measure()
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = hit.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(hit)
    return result


def build_report(
    version: str,
    quants_version: str,
    quant_dir: Path,
    base_gguf: Path,
    champion: tuple[str, Path] | None,
    test_rows: Sequence[dict],
    cases: Sequence[EvalCase],
    canary: Sequence[EvalCase],
    template: str,
    cache_dir: Path,
    cfg: EvalConfig = EvalConfig(),
    gates: GateConfig = GateConfig(),
    log: Callable[[str], None] = print,
) -> dict:
    """The whole evaluation of one candidate; `champion` is (version, shipped GGUF) or None."""
    started = time.monotonic()
    manifest = json.loads((quant_dir / "quants.json").read_text())
    # quants.json names files where they were written (a scratch dir): find them here instead
    quants = {q["qtype"]: quant_dir / Path(q["path"]).name for q in manifest["quants"]}
    if cfg.ship_quant not in quants:
        raise ValueError(f"the shipped quant {cfg.ship_quant} was not built: {sorted(quants)}")
    shipped = quants[cfg.ship_quant]
    text = eval_text(test_rows, gguf_renderer(load_llama(shipped, n_ctx=64), False))
    digest = cases_digest(cases, text, cfg)
    measure = lambda p: measure_model(p, cases, canary, text, test_rows, cfg, template, log)  # noqa: E731
    models = {"candidate": measure(shipped)}
    models["candidate"]["label"] = f"{quants_version} {cfg.ship_quant}"
    models["base"] = cached_measure(cache_dir, base_gguf, digest, lambda: measure(base_gguf), log)
    models["base"]["label"] = "base model"
    if champion:
        name, path = champion
        models["champion"] = cached_measure(cache_dir, path, digest, lambda: measure(path), log)
        models["champion"]["label"] = f"champion {name}"
    report = {
        "version": version,
        "quants_version": quants_version,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "ship_quant": cfg.ship_quant,
        "reference": "champion" if champion else "base",
        "champion_version": champion[0] if champion else None,
        "models": models,
        "quants": measure_quants(
            quant_dir / Path(manifest["f16"]["path"]).name, quants, text, cfg, log
        ),
        "config": {"eval": asdict(cfg), "gates": asdict(gates)},
        "cases": {"total": len(cases), "canary": len(canary)},
    }
    report["gates"] = [g.to_json() for g in evaluate_gates(report, gates)]
    report["passed"] = all(g["passed"] for g in report["gates"])
    report["seconds"] = round(time.monotonic() - started, 1)
    return report


def write_report(report: dict, out: Path, history: Sequence[dict] = ()) -> None:
    """report.json, report.md and the metric plots across nightly versions."""
    from pipeline.plots import history_plot

    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    plot = history_plot([*history, report], out / "history.png")
    (out / "report.md").write_text(report_markdown(report, plot))
