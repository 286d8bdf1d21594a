"""The evaluation report as Markdown: for the Dagster UI and `nightshift report`."""

from __future__ import annotations

from pathlib import Path


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "n/a" if x is None else format(x, fmt)


def _delta(a: float | None, b: float | None, fmt: str = "+.3f") -> str:
    return "" if a is None or b is None else format(a - b, fmt)


def _metrics(m: dict) -> dict[str, float | None]:
    t, lat = m["tasks"]["overall"], m["latency"]
    return {
        "answer perplexity (test split)": m["answer_perplexity"]["ppl"],
        "text perplexity (test split)": m["perplexity"]["ppl"],
        "exact match": t["exact_match"],
        "keyword recall": t["keyword_recall"],
        "forgetting canary": m["canary"]["score"],
        "TTFT p50 (ms)": lat["ttft_ms_p50"],
        "TTFT p95 (ms)": lat["ttft_ms_p95"],
        "tokens/s p50": lat["tokens_per_s_p50"],
        "tokens/s p95": lat["tokens_per_s_p95"],
        "ends on EOS": m["behaviour"]["eos_rate"],
        "answers leaking role markers": m["behaviour"]["leaked_role_markers"],
    }


def metrics_table(report: dict) -> list[str]:
    models = report["models"]
    cols = [k for k in ("candidate", "champion", "base") if k in models]
    head = ["metric", "candidate"]
    for k in cols[1:]:
        head += [k, f"Δ vs {k}"]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    values = {k: _metrics(models[k]) for k in cols}
    for name, cand in values["candidate"].items():
        row = [name, _num(cand)]
        for k in cols[1:]:
            row += [_num(values[k][name]), _delta(cand, values[k][name])]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def category_table(report: dict) -> list[str]:
    models = report["models"]
    cols = [k for k in ("candidate", "champion", "base") if k in models]
    lines = [
        "| category | cases | " + " | ".join(f"{k} EM / recall" for k in cols) + " |",
        "| --- | ---: |" + " ---: |" * len(cols),
    ]
    for cat, s in models["candidate"]["tasks"].items():
        cells = []
        for k in cols:
            t = models[k]["tasks"].get(cat) or {}
            cells.append(
                f"{_num(t.get('exact_match'), '.0%')} / {_num(t.get('keyword_recall'), '.0%')}"
            )
        lines.append(f"| {cat} | {s['cases']} | " + " | ".join(cells) + " |")
    return lines


def quant_table(report: dict) -> list[str]:
    lines = [
        "| file | MB | perplexity | KL mean | KL p95 | top-1 agreement |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for qtype, q in report["quants"].items():
        kl = q.get("kl") or {}
        lines.append(
            f"| {qtype} | {_num(q.get('bytes', 0) / 1e6, '.2f') if 'bytes' in q else ''} | "
            f"{_num(q['perplexity']['ppl'])} | {_num(kl.get('kl_mean'), '.5f')} | "
            f"{_num(kl.get('kl_p95'), '.5f')} | {_num(kl.get('top1_agreement'), '.1%')} |"
        )
    return lines


def report_markdown(report: dict, plot: Path | None = None) -> str:
    verdict = "PASSED: may ship" if report["passed"] else "BLOCKED: a gate failed"
    ref = report["reference"]
    lines = [
        f"# Evaluation of {report['version']} ({report['ship_quant']})",
        "",
        f"**{verdict}.** Reference: the {ref}"
        + (f" ({report['champion_version']})" if report.get("champion_version") else "")
        + f". {report['cases']['total']} cases, {report['cases']['canary']} canary prompts.",
        "",
        "## Gates",
        "",
        "| gate | result | detail |",
        "| --- | --- | --- |",
    ]
    for g in report["gates"]:
        lines.append(f"| {g['name']} | {'pass' if g['passed'] else '**FAIL**'} | {g['message']} |")
    lines += ["", "## Metrics", "", *metrics_table(report), "", "## By category", ""]
    lines += [*category_table(report), "", "## Quants (against the F16)", "", *quant_table(report)]
    answers = report["models"]["candidate"].get("answers") or []
    if answers:
        lines += ["", "## Sample answers", "", "| category | answer | EM |", "| --- | --- | --- |"]
        for a in answers[:8]:
            text = a["answer"].replace("|", "\\|").replace("\n", " ")[:80]
            lines.append(f"| {a['category']} | `{text}` | {_num(a['exact_match'], '.0f')} |")
    if plot is not None and plot.is_file():
        from pipeline.plots import markdown_image

        lines += ["", "## Across versions", "", markdown_image(plot, "metrics across versions")]
    return "\n".join(lines) + "\n"
