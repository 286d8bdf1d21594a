"""Before any training: will the pinned llama.cpp converter take this model at the end?

Hours of training that end in a model llama.cpp cannot convert are the expensive failure, so
the same converter that runs after training judges the base model first: its architecture
must be one the converter registers, and its tokenizer must convert (`--vocab-only`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.toolchain import Toolchain


class PreflightError(RuntimeError):
    """The base model cannot go through the pipeline; the message says why and what to do."""


@dataclass(frozen=True)
class Preflight:
    architecture: str
    tokenizer_files: list[str] = field(default_factory=list)
    chat_template: bool = False
    vocab_gguf_bytes: int = 0


def supported_architectures(toolchain: Toolchain) -> set[str]:
    """Text model classes the pinned converter registers."""
    cmd = [sys.executable, str(toolchain.convert()), "--print-supported-models"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    names, text_section = set(), False
    for line in (out.stdout + out.stderr).splitlines():
        if line.strip().endswith("models:"):
            text_section = line.strip().upper().startswith("TEXT")
        elif text_section and line.strip().startswith("- "):
            names.add(line.strip()[2:].strip())
    if not names:
        raise PreflightError(f"the converter listed no supported models:\n{out.stderr[-800:]}")
    return names


def _has_chat_template(model_dir: Path) -> bool:
    if (model_dir / "chat_template.jinja").is_file():
        return True
    config = model_dir / "tokenizer_config.json"
    return config.is_file() and bool(json.loads(config.read_text()).get("chat_template"))


def preflight(model_dir: Path, toolchain: Toolchain) -> Preflight:
    """Raise PreflightError unless architecture, tokenizer and chat template will carry through."""
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise PreflightError(f"{model_dir} has no config.json: not an HF-format model directory")
    archs = json.loads(config_path.read_text()).get("architectures") or []
    if not archs:
        raise PreflightError(f"{config_path} names no architecture")
    supported = supported_architectures(toolchain)
    if archs[0] not in supported:
        raise PreflightError(
            f"{archs[0]} is not supported by the pinned llama.cpp converter "
            f"(llama-cpp-python {toolchain.version}); choose a model of a supported architecture "
            "(`convert_hf_to_gguf.py --print-supported-models`) or upgrade llama-cpp-python"
        )
    if not _has_chat_template(model_dir):
        raise PreflightError(
            f"{model_dir} has no chat template: the examples are chats; use an instruct model "
            "or add `chat_template` to its tokenizer_config.json"
        )
    with tempfile.TemporaryDirectory(prefix="nightshift-preflight-") as tmp:
        out = Path(tmp) / "vocab.gguf"
        cmd = [sys.executable, str(toolchain.convert()), str(model_dir), "--vocab-only"]
        proc = subprocess.run([*cmd, "--outfile", str(out)], capture_output=True, text=True)
        if proc.returncode != 0 or not out.is_file():
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-8:])
            raise PreflightError(
                f"the pinned llama.cpp converter cannot convert this model's tokenizer:\n{tail}\n"
                "choose another base model or upgrade llama-cpp-python"
            )
        size = out.stat().st_size
    tokenizer_files = sorted(
        p.name
        for p in model_dir.iterdir()
        if p.name.startswith("tokenizer") or p.suffix == ".jinja"
    )
    return Preflight(archs[0], tokenizer_files, True, size)
