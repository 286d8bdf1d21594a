"""The quality gates: each compares the shipped quant with the reference (the champion, or the
base model before any champion exists) and says by how much it passed or failed."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pipeline.config import GateConfig

GATES = ("perplexity", "exact_match", "quant_kl", "latency", "canary", "behaviour")


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    value: float | None
    threshold: float | None
    message: str

    def to_json(self) -> dict:
        return asdict(self)


def _pct(a: float, b: float) -> str:
    return f"{(a / b - 1) * 100:+.1f}%" if b else "n/a"


def perplexity_gate(cand: dict, ref: dict, ref_name: str, cfg: GateConfig) -> Gate:
    """On the test split's answers (what training optimizes), not the whole chat text."""
    value, base = cand["answer_perplexity"]["ppl"], ref["answer_perplexity"]["ppl"]
    if value is None or base is None:
        return Gate("perplexity", True, value, None, "not judged: the test split has no answers")
    limit = base * (1 + cfg.perplexity_tolerance)
    ok = value <= limit
    return Gate(
        "perplexity",
        ok,
        value,
        limit,
        f"answer perplexity {value:.3f} is {_pct(value, base)} against the {ref_name}'s "
        f"{base:.3f} "
        f"(allowed up to {limit:.3f}, +{cfg.perplexity_tolerance:.0%})"
        + ("" if ok else f": {value - limit:.3f} over"),
    )


def exact_match_gate(cand: dict, ref: dict, ref_name: str, cfg: GateConfig) -> Gate:
    value = cand["tasks"]["overall"]["exact_match"]
    base = ref["tasks"]["overall"]["exact_match"]
    if value is None:
        return Gate(
            "exact_match",
            True,
            None,
            None,
            "not judged: no case with a short expected answer (add a golden file: "
            "NIGHTSHIFT_GOLDEN or $NIGHTSHIFT_HOME/golden.json)",
        )
    limit = max(cfg.exact_match_floor, (base or 0.0) - cfg.exact_match_tolerance)
    ok = value >= limit
    return Gate(
        "exact_match",
        ok,
        value,
        limit,
        f"exact match {value:.1%} against the {ref_name}'s {(base or 0):.1%} "
        f"(needs >= {limit:.1%}: the {ref_name}'s and the floor {cfg.exact_match_floor:.0%})"
        + ("" if ok else f": {limit - value:.1%} short"),
    )


def quant_kl_gate(quants: dict, cfg: GateConfig) -> Gate:
    checked, over = [], []
    for qtype, limit in cfg.kl_max:
        kl = (quants.get(qtype) or {}).get("kl")
        if kl is None:
            continue
        checked.append(f"{qtype} {kl['kl_mean']:.5f} (max {limit})")
        if kl["kl_mean"] > limit:
            over.append(f"{qtype} is {kl['kl_mean'] - limit:.5f} nats over {limit}")
    if not checked:
        return Gate("quant_kl", True, None, None, "not judged: no quant with a KL limit measured")
    worst = max(quants[q]["kl"]["kl_mean"] for q, _ in cfg.kl_max if q in quants)
    message = "KL vs F16: " + ", ".join(checked) + ("" if not over else "; " + "; ".join(over))
    return Gate("quant_kl", not over, worst, None, message)


def latency_gate(cand: dict, cfg: GateConfig) -> Gate:
    value = cand["latency"]["ttft_ms_p95"]
    if value is None:
        return Gate("latency", False, None, cfg.ttft_p95_ms, "no answer was timed")
    ok = value <= cfg.ttft_p95_ms
    return Gate(
        "latency",
        ok,
        value,
        cfg.ttft_p95_ms,
        f"time to first token p95 {value:.0f} ms (budget {cfg.ttft_p95_ms:.0f} ms)"
        + ("" if ok else f": {value - cfg.ttft_p95_ms:.0f} ms over"),
    )


def canary_gate(cand: dict, ref: dict, ref_name: str, cfg: GateConfig) -> Gate:
    value, base = cand["canary"]["score"], ref["canary"]["score"]
    chance = ref["canary"]["chance"]
    if base < cfg.canary_min_over_chance * chance:
        return Gate(
            "canary",
            True,
            value,
            None,
            f"not judged: the {ref_name} scores {base:.4f} on the canary, within "
            f"{cfg.canary_min_over_chance:g}x of guessing ({chance:.4f}): no general knowledge "
            "to forget (a tiny model; a real one scores far above)",
        )
    limit = base * (1 - cfg.canary_tolerance)
    ok = value >= limit
    return Gate(
        "canary",
        ok,
        value,
        limit,
        f"forgetting canary {value:.4f} is {_pct(value, base)} against the {ref_name}'s "
        f"{base:.4f} (may fall at most {cfg.canary_tolerance:.0%}, to {limit:.4f})"
        + ("" if ok else f": {limit - value:.4f} below"),
    )


def behaviour_gate(cand: dict, cfg: GateConfig) -> Gate:
    b = cand["behaviour"]
    problems = []
    if b["eos_rate"] < cfg.eos_rate_min:
        problems.append(
            f"only {b['eos_rate']:.0%} of answers end on EOS (min {cfg.eos_rate_min:.0%})"
        )
    if b["leaked_role_markers"]:
        problems.append(f"{b['leaked_role_markers']} answers leak role markers")
    if not b["chat_template_identical"]:
        problems.append("the GGUF's chat template differs from the one used in training")
    message = "; ".join(problems) or (
        f"{b['eos_rate']:.0%} of answers end on EOS, no role markers, same chat template"
    )
    return Gate("behaviour", not problems, b["eos_rate"], cfg.eos_rate_min, message)


def evaluate_gates(report: dict, cfg: GateConfig) -> list[Gate]:
    """Every gate on the shipped quant against the reference named in the report."""
    models = report["models"]
    ref_name = report["reference"]
    cand, ref = models["candidate"], models[ref_name]
    return [
        perplexity_gate(cand, ref, ref_name, cfg),
        exact_match_gate(cand, ref, ref_name, cfg),
        quant_kl_gate(report["quants"], cfg),
        latency_gate(cand, cfg),
        canary_gate(cand, ref, ref_name, cfg),
        behaviour_gate(cand, cfg),
    ]
