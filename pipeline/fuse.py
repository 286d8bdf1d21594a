"""Fuse a LoRA adapter into its base with mlx-lm, keeping the base's tokenizer files."""

from __future__ import annotations

import shutil
import subprocess
import sys
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
