"""Fuse a LoRA adapter into its base with mlx-lm, keeping the base's tokenizer files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pipeline.paths import atomic_dir

# mlx-lm re-saves the tokenizer through transformers, which can drop tokenizer.model; the
# GGUF converter picks its vocab path by these files, so they are copied from the base as-is.
TOKENIZER_FILES = (
    "tokenizer.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "generation_config.json",
)


class FuseError(RuntimeError):
    pass


def fuse_adapter(base_model: Path, adapter_dir: Path, out: Path, dequantize: bool = True) -> Path:
    """Write base + adapter as one HF-format model to `out` (replaced atomically)."""
    with atomic_dir(out) as tmp:
        cmd = [sys.executable, "-m", "mlx_lm", "fuse", "--model", str(base_model)]
        cmd += ["--adapter-path", str(adapter_dir), "--save-path", str(tmp)]
        if dequantize:
            cmd.append("--dequantize")  # llama.cpp's converter wants plain weights
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
            raise FuseError(f"mlx_lm fuse failed (exit {proc.returncode}):\n{tail}")
        for name in TOKENIZER_FILES:
            if (base_model / name).is_file():
                shutil.copy2(base_model / name, tmp / name)
    return out


@dataclass(frozen=True)
class Parity:
    """Logit agreement of the fused model with base+adapter, on a few prompts."""

    fused_vs_adapted: float  # max |logit difference|: ~0 when the fuse kept the adapter
    adapted_vs_base: float  # how much the adapter changes the model at all
    tolerance: float
    prompts: int

    @property
    def ok(self) -> bool:
        # Summation order (and bf16 storage) leave small differences; a dropped adapter leaves
        # one as large as the adapter's own effect, so the fused model must sit far closer to
        # base+adapter than the base does.
        if self.adapted_vs_base <= self.tolerance:
            return self.fused_vs_adapted <= self.tolerance
        return self.fused_vs_adapted <= min(self.tolerance, 0.25 * self.adapted_vs_base)


def fuse_parity(
    base_model: Path, adapter_dir: Path, fused: Path, prompts: list[str], rel_tol: float = 2e-2
) -> Parity:
    """Compare logits in a child process, one model in memory at a time."""
    job = json.dumps(
        {
            "base": str(base_model),
            "adapter": str(adapter_dir),
            "fused": str(fused),
            "prompts": prompts,
        }
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.fuse", job], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise FuseError(f"parity check failed to run:\n{proc.stderr[-1500:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    tol = rel_tol * max(out["scale"], 1.0)
    return Parity(out["fused_vs_adapted"], out["adapted_vs_base"], tol, len(prompts))


def _logits(path: str, prompts: list[str], adapter: str | None = None) -> list:
    import mlx.core as mx
    from mlx_lm import load

    model, tok = load(path, adapter_path=adapter)
    out = []
    for text in prompts:
        logits = model(mx.array([tok.encode(text)])).astype(mx.float32)
        mx.eval(logits)
        out.append(logits)
    return out


def _parity_worker(job: dict) -> dict:
    import mlx.core as mx

    adapted = _logits(job["base"], job["prompts"], job["adapter"])
    fused = _logits(job["fused"], job["prompts"])
    base = _logits(job["base"], job["prompts"])

    def worst(a: list, b: list) -> float:
        return max(float(mx.abs(x - y).max()) for x, y in zip(a, b, strict=True))

    return {
        "fused_vs_adapted": worst(fused, adapted),
        "adapted_vs_base": worst(adapted, base),
        "scale": max(float(mx.abs(x).max()) for x in adapted),
    }


if __name__ == "__main__":
    print(json.dumps(_parity_worker(json.loads(sys.argv[1]))))
