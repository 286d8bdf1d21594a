"""Every tunable, as frozen dataclasses with units and the reason for each default."""

from __future__ import annotations

from dataclasses import dataclass

# ChatML markers: the template the tiny model is built with and every example is rendered in.
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class BaseModelConfig:
    """The embedded tiny llama: small enough to train on a CPU in minutes."""

    vocab_size: int = 1024  # a soft target; a small corpus may yield fewer pieces
    hidden_size: int = 64  # multiple of 32 so Q8_0/Q5 blocks fit every row
    intermediate_size: int = 192
    num_hidden_layers: int = 2
    num_attention_heads: int = 4  # head_dim 16
    num_key_value_heads: int = 2  # grouped-query attention, as in current llamas
    max_position_embeddings: int = 2048  # tokens
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    init_std: float = 0.02  # GPT-2 style initialisation of the projections
    # Tied embeddings are also the output layer, which LoRA never touches: at 0.02 the largest
    # reachable logit is ~|h|*|e| = 8*0.16, too flat to ever answer; 0.25 allows confident ones.
    embed_std: float = 0.25
    seed: int = 0
    max_corpus_lines: int = 50_000  # cap on tokenizer training lines, keeps builds ~seconds
    pretrain_steps: int = 150  # full causal-LM steps on the corpus (~1.5 min on 2 CPU cores)


@dataclass(frozen=True)
class LoraConfig:
    """mlx-lm LoRA settings; the defaults suit the tiny model on a CPU."""

    fine_tune_type: str = "lora"  # or "dora"
    rank: int = 8
    scale: float = 20.0  # mlx-lm's default alpha/rank multiplier
    dropout: float = 0.0
    num_layers: int = -1  # transformer blocks to adapt, counted from the top; -1 = all
    learning_rate: float = 1e-3  # peak; a tiny random model needs larger steps than a real one
    lr_schedule: str = "cosine"  # "cosine": decay to 10% of the peak by the last step; "constant"
    warmup_steps: int = 0  # optimizer steps of linear ramp from 0; LoRA's zero-init B is stable
    batch_size: int = 4  # sequences per step
    # Steps follow the data: None = ceil(epochs * train examples / batch_size), clamped to
    # [min_iters, max_iters], so a small night still learns and a huge one still ends.
    iters: int | None = None  # optimizer steps; an explicit number wins over the derivation
    epochs: float = 3.0  # passes over the train split
    min_iters: int = 20
    max_iters: int = 2000
    max_seq_length: int = 512  # tokens; longer examples are truncated by mlx-lm
    mask_prompt: bool = True  # loss on assistant tokens only
    grad_checkpoint: bool = False
    seed: int = 0  # LoRA init, data order and dropout
    steps_per_report: int = 10
    steps_per_eval: int = 50
    val_batches: int = 4  # -1 = the whole valid split
    checkpoint_every: int = 25  # steps between resumable checkpoints (the last 2 are kept)


# The tiny model starts from 150 pretraining steps: it needs many more passes over the data
# than a pretrained model before it maps a misspelled command to the right one (the sample's
# 40 held-out typos: 0% exact match before, ~45% after ~600 steps, 2 minutes on 2 cores). Its
# few long session examples are cut to 128 tokens, which keeps those passes cheap: the tiny
# model cannot learn from them anyway. Higher learning rates diverged (tried 2e-3 with warmup).
TINY_LORA = {"epochs": 11.0, "batch_size": 8, "max_seq_length": 128}


@dataclass(frozen=True)
class EvalConfig:
    """What eval_report measures, and how much of it."""

    ship_quant: str = "Q4_K_M"  # the file users download and serve: the gates judge this one
    n_ctx: int = 2048  # tokens of context for generation; longer prompts are skipped, counted
    ppl_ctx: int = 256  # tokens per perplexity chunk (halved until the test text has two)
    max_tokens: int = 48  # per answer; a command fix needs a handful
    test_cases: int = 40  # held-out cases taken from the test split (the golden file: all)
    threads: int = 0  # 0: llama.cpp's default


@dataclass(frozen=True)
class GateConfig:
    """The thresholds that decide what ships. Each one is a blocking check on eval_report."""

    perplexity_tolerance: float = 0.05  # candidate ppl <= reference ppl * (1 + this)
    exact_match_floor: float = 0.10  # and exact match >= this, whatever the reference scored
    exact_match_tolerance: float = 0.0  # exact match >= reference - this
    # nats/token vs the F16: Q8_0 must be near lossless; the shipped 4-bit file may lose more
    kl_max: tuple[tuple[str, float], ...] = (("Q8_0", 0.01), ("Q4_K_M", 0.10))
    ttft_p95_ms: float = 2000.0  # time to first token, p95, on this machine
    canary_tolerance: float = 0.10  # canary score >= reference * (1 - this)
    canary_min_over_chance: float = 4.0  # a reference below this x 1/vocab is not judged
    eos_rate_min: float = 0.9  # share of answers that end on EOS rather than the token limit
