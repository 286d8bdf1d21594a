"""A short causal-LM pretraining of the tiny base on the local corpus, in ChatML turns.

LoRA cannot teach a model with random frozen features when to end an answer; a base model
that has seen chat turns end in `<|im_end|>` can be taught the rest. All parameters train
(embeddings included), for a few hundred steps on the CPU.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from pipeline.config import IM_END, IM_START

Progress = Callable[[int, float], None]


def chat_stream(lines: list[str], seed: int) -> str:
    """Consecutive corpus lines as user/assistant turns: the chat format, on the user's text."""
    rng = random.Random(seed)
    turns = []
    for i in range(0, len(lines) - 1, 2):
        question, answer = lines[i][:400], lines[i + 1][:400]
        turns.append(f"{IM_START}user\n{question}{IM_END}\n{IM_START}assistant\n{answer}{IM_END}\n")
    rng.shuffle(turns)
    return "".join(turns)


def pretrain(
    model_dir: Path,
    lines: list[str],
    steps: int,
    seed: int,
    batch_size: int = 8,
    seq_len: int = 128,
    learning_rate: float = 3e-3,
    progress: Progress | None = None,
) -> list[float]:
    """Train every weight of the model in `model_dir` in place; returns the loss per step."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    import numpy as np
    from mlx.utils import tree_flatten
    from mlx_lm import load

    mx.random.seed(seed)
    model, tokenizer = load(str(model_dir))
    ids = np.array(tokenizer.encode(chat_stream(lines, seed), add_special_tokens=False))
    if len(ids) < seq_len + 2:
        raise ValueError(f"corpus too small to pretrain on ({len(ids)} tokens)")
    rng = np.random.default_rng(seed)
    model.train()
    optimizer = optim.AdamW(
        learning_rate=optim.cosine_decay(learning_rate, steps, 0.1 * learning_rate)
    )

    def loss_fn(m, x, y):
        return nn.losses.cross_entropy(m(x), y, reduction="mean")

    step_fn = nn.value_and_grad(model, loss_fn)
    losses = []
    for step in range(steps):
        starts = rng.integers(0, len(ids) - seq_len - 1, size=batch_size)
        batch = np.stack([ids[s : s + seq_len + 1] for s in starts])
        x, y = mx.array(batch[:, :-1]), mx.array(batch[:, 1:])
        loss, grads = step_fn(model, x, y)
        optimizer.update(model, grads)
        mx.eval(model.parameters(), optimizer.state, loss)
        losses.append(loss.item())
        if progress and (step % 25 == 0 or step == steps - 1):
            progress(step, losses[-1])
    weights = {k: np.array(v.astype(mx.float32)) for k, v in tree_flatten(model.parameters())}
    # lm_head is tied to the embeddings: the HF file keeps only embed_tokens.
    from safetensors.numpy import save_file

    save_file(weights, str(model_dir / "model.safetensors"), metadata={"format": "pt"})
    return losses
