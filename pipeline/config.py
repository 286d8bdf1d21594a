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
    init_std: float = 0.02  # GPT-2 style initialisation
    seed: int = 0
    max_corpus_lines: int = 50_000  # cap on tokenizer training lines, keeps builds ~seconds


@dataclass(frozen=True)
class LoraConfig:
    """mlx-lm LoRA settings; the defaults suit the tiny model on a CPU."""

    fine_tune_type: str = "lora"  # or "dora"
    rank: int = 8
    scale: float = 20.0  # mlx-lm's default alpha/rank multiplier
    dropout: float = 0.0
    num_layers: int = -1  # transformer blocks to adapt, counted from the top; -1 = all
    learning_rate: float = 1e-3  # a tiny random model needs larger steps than a real one
    batch_size: int = 4  # sequences per step
    iters: int = 100  # optimizer steps
    max_seq_length: int = 512  # tokens; longer examples are truncated by mlx-lm
    mask_prompt: bool = True  # loss on assistant tokens only
    grad_checkpoint: bool = False
    seed: int = 0
    steps_per_report: int = 10
    steps_per_eval: int = 50
    val_batches: int = 4  # -1 = the whole valid split
    save_every: int = 50  # steps between adapter checkpoints
