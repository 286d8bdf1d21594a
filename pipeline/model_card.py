"""What a released repo says about itself: the model card (README.md) and an Ollama Modelfile."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml

TAGS = ["gguf", "lora", "nightshift", "llama.cpp", "chatml"]
# A Hub model id; the Hub rejects anything else (a local path, "tiny") as base_model.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

# ChatML, the template the model was trained with; Ollama passes system prompts as messages.
MODELFILE = '''FROM ./{gguf}
TEMPLATE """{{{{- range .Messages }}}}<|im_start|>{{{{ .Role }}}}
{{{{ .Content }}}}<|im_end|>
{{{{ end }}}}<|im_start|>assistant
"""
PARAMETER stop "<|im_end|>"
PARAMETER stop "<|im_start|>"
'''


def modelfile(gguf: str) -> str:
    """An Ollama Modelfile for the GGUF `gguf`, next to it in the repo."""
    return MODELFILE.format(gguf=gguf)


def model_card(manifest: dict[str, Any], repo_id: str, license: str, files: Sequence[str]) -> str:
    """README.md: YAML front matter the Hub indexes, then provenance, figures and usage."""
    base = manifest["base_model"]
    metrics = {k: v for k, v in manifest["metrics"].items() if _number(v)}
    meta: dict[str, Any] = {"license": license, "tags": TAGS, "pipeline_tag": "text-generation"}
    if _HUB_ID.match(base):
        meta["base_model"] = base
    if metrics:
        meta["model-index"] = [
            {
                "name": repo_id.split("/")[-1],
                "results": [
                    {
                        "task": {"type": "text-generation"},
                        "dataset": {"name": "nightshift held-out test split", "type": "private"},
                        "metrics": [
                            {"type": k, "name": k, "value": float(v)} for k, v in metrics.items()
                        ],
                    }
                ],
            }
        ]
    ggufs = [f for f in files if f.endswith(".gguf")]
    lines = [
        "---",
        yaml.safe_dump(meta, sort_keys=False).strip(),
        "---",
        "",
        f"# {repo_id.split('/')[-1]}",
        "",
        f"A LoRA fine-tune of `{base}` on its owner's coding-assistant sessions and ratings, "
        f"made by nightshift (registry version {manifest['version']}), quantized to GGUF.",
        "",
        "| provenance | |",
        "| --- | --- |",
        f"| base model | `{base}` |",
        f"| data version | `{manifest['data_version']}` |",
        f"| code version | `{manifest['code_version']}` |",
        f"| registered | {manifest['created']} |",
        "",
        "## Evaluation",
        "",
        *_table(["metric", "value"], [[k, _fmt(v)] for k, v in manifest["metrics"].items()]),
        "",
        *_table(
            ["gate", "result"],
            [[k, "pass" if g["passed"] else "FAIL"] for k, g in manifest["gates"].items()],
        ),
        "",
        "## Files",
        "",
        *_table(
            ["file", "bytes", "sha256"],
            [[f, manifest["files"][f]["bytes"], manifest["files"][f]["sha256"]] for f in files],
        ),
    ]
    if ggufs:
        lines += [
            "",
            "## Use",
            "",
            "```bash",
            f"llama-server -m {ggufs[0]} --jinja",
            "ollama create nightshift -f Modelfile && ollama run nightshift",
            "```",
        ]
    return "\n".join(lines) + "\n"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return [f"No {header[0]}s recorded."]
    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return out + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
