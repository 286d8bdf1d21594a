"""Perplexity, quant loss (KL divergence) and teacher-forced answer scores, through llama.cpp.

Perplexity follows `llama-perplexity` step for step so the two agree on the same file and
text: the text is tokenized with the model's special-token rules (BOS only if the vocab adds
one), cut into chunks of `n_ctx` tokens, BOS put in place of each chunk's first token when
the vocab uses one, and only the second half of each chunk is scored.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Perplexity:
    ppl: float
    nll: float  # mean negative log-likelihood per scored token, nats
    tokens: int  # scored tokens
    chunks: int
    n_ctx: int


class TooLittleText(ValueError):
    """Fewer than two chunks of tokens: llama-perplexity refuses such text too."""


def open_model(path: Path, n_ctx: int = 512, threads: int = 0):
    """A llama.cpp context that keeps the logits of every position (needed for scoring)."""
    from pipeline.gguf import open_llama

    return open_llama(
        path, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, logits_all=True, n_threads=threads or None
    )


def text_tokens(llm, text: str, special: bool = False) -> list[int]:
    """Token ids as llama-perplexity makes them: BOS when the vocab adds one, specials as text
    unless `special` (our chat-rendered eval text parses its role markers)."""
    return llm.tokenize(text.encode("utf-8"), add_bos=True, special=special)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x -= x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def fit_ctx(n_tokens: int, n_ctx: int, floor: int = 16) -> int:
    """The largest context <= n_ctx (halving) that still gives two chunks."""
    while n_ctx > floor and n_tokens < 2 * n_ctx:
        n_ctx //= 2
    if n_tokens < 2 * n_ctx:
        raise TooLittleText(f"{n_tokens} tokens: perplexity needs at least {2 * n_ctx}")
    return n_ctx


def chunk_logprobs(llm, tokens: Sequence[int], n_ctx: int) -> Iterator[tuple[np.ndarray, list]]:
    """Per chunk: log-probabilities at positions n_ctx/2 .. n_ctx-2 and the tokens they predict."""
    if len(tokens) < 2 * n_ctx:
        raise TooLittleText(f"{len(tokens)} tokens: perplexity needs at least {2 * n_ctx}")
    first = n_ctx // 2
    bos = llm.token_bos() if llm._model.add_bos_token() else None
    for c in range(len(tokens) // n_ctx):
        chunk = list(tokens[c * n_ctx : (c + 1) * n_ctx])
        if bos is not None:
            chunk[0] = bos
        llm.reset()
        llm.eval(chunk)
        logits = np.asarray(llm.scores[first : n_ctx - 1])
        yield log_softmax(logits), chunk[first + 1 :]


def perplexity(llm, tokens: Sequence[int], n_ctx: int) -> Perplexity:
    nll, count, chunks = 0.0, 0, 0
    for logp, targets in chunk_logprobs(llm, tokens, n_ctx):
        nll -= float(logp[np.arange(len(targets)), targets].sum())
        count += len(targets)
        chunks += 1
    mean = nll / count
    return Perplexity(math.exp(mean), mean, count, chunks, n_ctx)


@dataclass(frozen=True)
class QuantLoss:
    kl_mean: float  # mean KL(reference || quant) per scored token, nats
    kl_p95: float
    top1_agreement: float  # share of positions where both pick the same most likely token
    tokens: int


def kl_divergence(reference, quant, tokens: Sequence[int], n_ctx: int) -> QuantLoss:
    """How far a quant's next-token distributions drift from the reference (F16) on the same
    tokens, chunked exactly as for perplexity."""
    kls: list[np.ndarray] = []
    agree = 0
    for (p_log, _), (q_log, _) in zip(
        chunk_logprobs(reference, tokens, n_ctx),
        chunk_logprobs(quant, tokens, n_ctx),
        strict=True,
    ):
        kls.append((np.exp(p_log) * (p_log - q_log)).sum(axis=-1))
        agree += int((p_log.argmax(-1) == q_log.argmax(-1)).sum())
    kl = np.concatenate(kls)
    return QuantLoss(float(kl.mean()), float(np.percentile(kl, 95)), agree / len(kl), len(kl))


def answer_score(llm, prompt: str, answer: str) -> tuple[float, int]:
    """Teacher-forced: total log-probability of `answer` then EOS after a rendered `prompt`."""
    head = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
    tail = llm.tokenize(answer.encode("utf-8"), add_bos=False, special=False)
    tail.append(llm.token_eos())
    seq = head + tail
    if len(seq) > llm.n_ctx():
        raise ValueError(f"prompt and answer are {len(seq)} tokens, over the context")
    llm.reset()
    llm.eval(seq)
    logp = log_softmax(np.asarray(llm.scores[len(head) - 1 : len(seq) - 1]))
    return float(logp[np.arange(len(tail)), tail].sum()), len(tail)
