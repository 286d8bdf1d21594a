from pathlib import Path

import dagster as dg
from pydantic import Field

from pipeline.config import EvalConfig, GateConfig


class EvaluationResource(dg.ConfigurableResource):
    """What eval_report measures and the gates' thresholds: the one place to change them.

    Defaults come from pipeline.config (EvalConfig, GateConfig), where each is explained.
    """

    golden_file: str | None = Field(
        default=None, description="JSON cases: prompt, expected or keywords, category."
    )
    ship_quant: str = EvalConfig.ship_quant
    max_tokens: int = EvalConfig.max_tokens
    test_cases: int = EvalConfig.test_cases
    perplexity_tolerance: float = GateConfig.perplexity_tolerance
    exact_match_floor: float = GateConfig.exact_match_floor
    exact_match_tolerance: float = GateConfig.exact_match_tolerance
    kl_max_q8_0: float = dict(GateConfig.kl_max)["Q8_0"]
    kl_max_ship: float = Field(
        default=dict(GateConfig.kl_max)["Q4_K_M"], description="KL limit of the shipped quant"
    )
    ttft_p95_ms: float = GateConfig.ttft_p95_ms
    canary_tolerance: float = GateConfig.canary_tolerance
    eos_rate_min: float = GateConfig.eos_rate_min

    def golden_path(self) -> Path | None:
        return Path(self.golden_file).expanduser() if self.golden_file else None

    def eval_config(self) -> EvalConfig:
        return EvalConfig(
            ship_quant=self.ship_quant, max_tokens=self.max_tokens, test_cases=self.test_cases
        )

    def gate_config(self) -> GateConfig:
        return GateConfig(
            perplexity_tolerance=self.perplexity_tolerance,
            exact_match_floor=self.exact_match_floor,
            exact_match_tolerance=self.exact_match_tolerance,
            kl_max=(("Q8_0", self.kl_max_q8_0), (self.ship_quant, self.kl_max_ship)),
            ttft_p95_ms=self.ttft_p95_ms,
            canary_tolerance=self.canary_tolerance,
            eos_rate_min=self.eos_rate_min,
        )
