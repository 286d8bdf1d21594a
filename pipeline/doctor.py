"""`nightshift doctor`: every real part, run and timed on the tiny model, one line per check."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.base_model import build_base_model, workspace_corpus
from pipeline.config import LoraConfig
from pipeline.fuse import fuse_adapter
from pipeline.gguf import chat, convert_to_gguf, quantize, tokenize
from pipeline.sample import create_sample_workspace
from pipeline.sample_content import COMMANDS, make_typo
from pipeline.toolchain import FIX, TOOLS, Toolchain, bindings_version, locate_toolchain
from pipeline.train import train_lora

PARITY_TEXT = "<|im_start|>user\nFix this command: gti stauts --all 42 ü\n<|im_end|>\n"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # PASS, FAIL or SKIP
    seconds: float
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4}  {self.name:<22} {self.seconds:6.1f}s  {self.detail}"
        return text + (f"\n      fix: {self.fix}" if self.fix and self.status != "PASS" else "")


def command_fix_split(out: Path, seed: int, n: int = 64) -> Path:
    """A small ChatML train/valid split of mistyped shell commands and their corrections."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", n), ("valid", max(8, n // 8))):
        with (out / f"{split}.jsonl").open("w") as fh:
            for _ in range(count):
                cmd = rng.choice(COMMANDS)
                messages = [
                    {"role": "user", "content": f"Fix this command: {make_typo(cmd, rng)}"},
                    {"role": "assistant", "content": cmd},
                ]
                fh.write(json.dumps({"messages": messages}) + "\n")
    return out


class Doctor:
    """Runs checks in order; a check whose input failed is skipped with the reason."""

    def __init__(self, report: Callable[[Check], None]) -> None:
        self.report = report
        self.checks: list[Check] = []

    def run(self, name: str, fix: str, fn: Callable[[], str], needs: tuple[str, ...] = ()) -> bool:
        failed = [c.name for c in self.checks if c.name in needs and c.status != "PASS"]
        if failed:
            check = Check(name, "SKIP", 0.0, f"needs {', '.join(failed)}")
        else:
            started = time.monotonic()
            try:
                detail = fn()
                check = Check(name, "PASS", time.monotonic() - started, detail)
            except Exception as exc:  # a doctor reports every failure instead of stopping
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                check = Check(name, "FAIL", time.monotonic() - started, first[:300], fix)
        self.checks.append(check)
        self.report(check)
        return check.status == "PASS"

    @property
    def ok(self) -> bool:
        return all(c.status == "PASS" for c in self.checks)


def run_doctor(
    report: Callable[[Check], None], workdir: Path, base_model: Path | None = None
) -> list[Check]:
    work = workdir
    doc = Doctor(report)
    state: dict[str, object] = {}

    def toolchain() -> str:
        tc = locate_toolchain()
        missing = [t for t in TOOLS if t not in tc.bins]
        if missing or tc.convert_script is None:
            raise RuntimeError(f"missing: {', '.join(missing or [tc.convert_script or ''])}")
        state["tc"] = tc
        return f"{tc.source}, llama-cpp-python {bindings_version()}, {tc.bin('llama-quantize')}"

    def base() -> str:
        if base_model is not None:
            state["base"] = base_model
            return f"given: {base_model}"
        sample = create_sample_workspace(work / "sample", seed=0)
        info = build_base_model(work / "base", workspace_corpus(sample.root))
        state["base"] = info.path
        return f"tiny llama, {info.parameters:,} parameters, vocab {info.vocab_size}"

    def lora() -> str:
        data = command_fix_split(work / "data", seed=0)
        cfg = LoraConfig(iters=5, steps_per_report=5, steps_per_eval=5, batch_size=4)
        result = train_lora(state["base"], data, work / "adapter", cfg)
        last = result.last("train") or {}
        return f"5 steps, loss {last.get('train_loss', float('nan')):.3f}, " + (
            f"{last.get('tokens_per_second', 0):.0f} tok/s"
        )

    def fuse() -> str:
        fuse_adapter(Path(state["base"]), work / "adapter", work / "fused")
        return str(work / "fused")

    def convert() -> str:
        f16 = convert_to_gguf(_tc(state), work / "fused", work / "model-f16.gguf")
        return f"{f16.stat().st_size / 1e6:.2f} MB F16"

    def quant() -> str:
        q = quantize(_tc(state), work / "model-f16.gguf", work / "model-Q4_K_M.gguf", "Q4_K_M")
        return f"{q.stat().st_size / 1e6:.2f} MB"

    def load() -> str:
        ids = tokenize(work / "model-Q4_K_M.gguf", PARITY_TEXT)
        return f"loaded, {len(ids)} tokens for the parity string"

    def completion() -> str:
        messages = [{"role": "user", "content": "Fix this command: gti stauts"}]
        out = chat(work / "model-Q4_K_M.gguf", messages, max_tokens=16)
        return f"{out.tokens} tokens, finish={out.finish_reason}: {out.text[:40]!r}"

    venv_fix = "run `make venv` (reinstalls the pinned packages into .venv)"
    doc.run("llama.cpp toolchain", FIX, toolchain)
    doc.run("tiny base model", venv_fix + "; sentencepiece 0.2.0 must be installed", base)
    doc.run(
        "mlx-lm LoRA (5 steps)",
        venv_fix + "; see the adapter's train.log",
        lora,
        ("tiny base model",),
    )
    doc.run("mlx-lm fuse", venv_fix, fuse, ("mlx-lm LoRA (5 steps)",))
    doc.run("convert to GGUF", FIX, convert, ("llama.cpp toolchain", "mlx-lm fuse"))
    doc.run("quantize Q4_K_M", FIX, quant, ("convert to GGUF",))
    doc.run("llama-cpp-python load", venv_fix, load, ("quantize Q4_K_M",))
    doc.run("chat completion", venv_fix, completion, ("llama-cpp-python load",))
    return doc.checks


def _tc(state: dict[str, object]) -> Toolchain:
    tc = state["tc"]
    assert isinstance(tc, Toolchain)
    return tc
