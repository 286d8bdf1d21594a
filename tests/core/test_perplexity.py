"""Perplexity and quant loss through the bindings, checked against llama.cpp's own tool."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import pytest

from pipeline.gguf import quantize, repack_safe
from pipeline.perplexity import (
    TooLittleText,
    fit_ctx,
    kl_divergence,
    open_model,
    perplexity,
    text_tokens,
)
from pipeline.sample_content import COMMANDS

TEXT = "\n".join(f"Fix this command: {c}\n{c}\nDone, the command ran." for c in COMMANDS * 6)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ppl") / "text.txt"
    path.write_text(TEXT)
    return path


def llama_perplexity(toolchain, model: Path, text: Path, n_ctx: int) -> float:
    # One chunk per batch, as the bindings evaluate it (not 2048/n_ctx sequences at once).
    cmd = [toolchain.bin("llama-perplexity"), "-m", model, "-f", text, "-c", str(n_ctx)]
    cmd += ["-b", str(n_ctx)]
    cmd += [] if repack_safe(model) else ["--no-repack"]  # as the bindings load it (gguf.py)
    # llama.cpp logs from a background thread; on a loaded machine the tool sometimes exits
    # (rc 0) before its last lines are written, the result among them: ask again then.
    for _ in range(3):
        out = subprocess.run(list(map(str, cmd)), capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-2000:]
        found = re.search(r"Final estimate: PPL = (\S+)", out.stdout + out.stderr)
        if found:
            break
    assert found, out.stderr[-2000:]
    value = float(found.group(1))
    assert math.isfinite(value), out.stderr[-2000:]
    return value


@pytest.mark.parametrize("n_ctx", [64, 128])
def test_perplexity_agrees_with_llama_perplexity(tiny_q4, toolchain, text_file, n_ctx):
    llm = open_model(tiny_q4, n_ctx=n_ctx)
    ours = perplexity(llm, text_tokens(llm, TEXT), n_ctx)
    theirs = llama_perplexity(toolchain, tiny_q4, text_file, n_ctx)
    assert ours.chunks >= 2 and ours.tokens == ours.chunks * (n_ctx - n_ctx // 2 - 1)
    assert abs(ours.ppl / theirs - 1) < 0.01, (ours.ppl, theirs)


def test_kl_is_zero_against_itself_and_grows_with_coarser_quants(tiny_f16, tiny_q4, toolchain):
    q8 = quantize(toolchain, tiny_f16, tiny_f16.with_name("kl-q8_0.gguf"), "Q8_0")
    ref = open_model(tiny_f16, n_ctx=128)
    tokens = text_tokens(ref, TEXT)
    same = kl_divergence(ref, open_model(tiny_f16, n_ctx=128), tokens, 128)
    assert same.kl_mean == pytest.approx(0.0, abs=1e-9) and same.top1_agreement == 1.0
    kl8 = kl_divergence(ref, open_model(q8, n_ctx=128), tokens, 128)
    kl4 = kl_divergence(ref, open_model(tiny_q4, n_ctx=128), tokens, 128)
    assert 0 < kl8.kl_mean < kl4.kl_mean
    assert kl8.tokens == kl4.tokens == same.tokens


def test_too_little_text_is_refused_with_the_number_needed():
    assert fit_ctx(1000, 256) == 256
    assert fit_ctx(300, 256) == 128
    with pytest.raises(TooLittleText, match="at least 32"):
        fit_ctx(20, 256)


def test_a_test_split_too_small_gets_a_reason_not_a_crash(tiny_q4):
    from pipeline.config import EvalConfig
    from pipeline.eval_report import text_perplexity

    out = text_perplexity(open_model(tiny_q4, n_ctx=256), "git status", EvalConfig())
    assert out["ppl"] is None and "test split too small" in out["reason"]
