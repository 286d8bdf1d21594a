"""GGUF files: llama.cpp's converter and quantizer, and loading through llama-cpp-python."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.toolchain import Toolchain, run_tool


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop" when the model ended on EOS, "length" when it ran out
    tokens: int


def convert_to_gguf(
    toolchain: Toolchain, model_dir: Path, out_file: Path, outtype: str = "f16"
) -> Path:
    """llama.cpp's own converter (mlx-lm's GGUF export writes files llama.cpp rejects)."""
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(f".{out_file.name}.tmp")
    cmd = [sys.executable, toolchain.convert(), model_dir, "--outfile", tmp, "--outtype", outtype]
    run_tool(cmd)
    tmp.replace(out_file)
    return out_file


def quantize(toolchain: Toolchain, src: Path, out_file: Path, qtype: str, threads: int = 0) -> Path:
    """`llama-quantize SRC OUT TYPE`, written under a temporary name and renamed."""
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(f".{out_file.name}.tmp")
    cmd: list[str | Path] = [toolchain.bin("llama-quantize"), src, tmp, qtype]
    if threads:
        cmd.append(str(threads))
    run_tool(cmd)
    tmp.replace(out_file)
    return out_file


def load_llama(path: Path, n_ctx: int = 512):
    """A llama-cpp-python model on the CPU, quiet unless it fails."""
    from llama_cpp import Llama

    return Llama(model_path=str(path), n_ctx=n_ctx, n_gpu_layers=0, seed=0, verbose=False)


def tokenize(path: Path, text: str) -> list[int]:
    """Token ids as llama.cpp sees them: no BOS added, special markers parsed."""
    import llama_cpp
    from llama_cpp._internals import LlamaModel

    # The vocabulary alone: a full context would load weights and warn about n_ctx_train.
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = LlamaModel(path_model=str(path), params=params, verbose=False)
    try:
        return model.tokenize(text.encode("utf-8"), add_bos=False, special=True)
    finally:
        model.close()


def chat(path: Path, messages: Sequence[dict[str, str]], max_tokens: int = 32) -> Completion:
    """One greedy chat completion with the chat template stored in the GGUF."""
    llm = load_llama(path)
    out = llm.create_chat_completion(list(messages), max_tokens=max_tokens, temperature=0.0)
    choice = out["choices"][0]
    used = out["usage"]["completion_tokens"]
    return Completion(choice["message"]["content"] or "", choice["finish_reason"], used)


PARITY_STRINGS = (
    "<|im_start|>user\nFix this command: gti stauts --all 42\n<|im_end|>\n",
    "def add(a, b):\n    return a + b  # naïve 😀\n",
    "<|im_start|>assistant\ngit push origin main<|im_end|>\n",
)


@dataclass(frozen=True)
class Parity:
    text: str
    transformers_ids: list[int]
    llama_cpp_ids: list[int]

    @property
    def equal(self) -> bool:
        return self.transformers_ids == self.llama_cpp_ids


def tokenizer_parity(
    model_dir: Path, gguf: Path, texts: Sequence[str] = PARITY_STRINGS
) -> list[Parity]:
    """Token ids of the same texts in transformers (the training side) and llama.cpp."""
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(model_dir))
    return [
        Parity(t, list(hf.encode(t, add_special_tokens=False)), tokenize(gguf, t)) for t in texts
    ]
