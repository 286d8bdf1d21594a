"""PNG plots for asset metadata and reports (matplotlib, no display needed)."""

from __future__ import annotations

import base64
from pathlib import Path


def loss_curve(events: list[dict], out: Path) -> Path:
    """Train and validation loss against the step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(e["iteration"], e["train_loss"]) for e in events if e.get("event") == "train"]
    val = [(e["iteration"], e["val_loss"]) for e in events if e.get("event") == "val"]
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    if train:
        ax.plot(*zip(*train, strict=True), label="train", color="#3b6fd8")
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="valid", color="#d8733b")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def markdown_image(png: Path, alt: str) -> str:
    """The PNG inline, so the Dagster UI shows it with the metadata."""
    data = base64.b64encode(png.read_bytes()).decode()
    return f"![{alt}](data:image/png;base64,{data})"


def history_plot(reports: list[dict], out: Path) -> Path:
    """Exact match and perplexity of the shipped quant across nightly versions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["version"][-15:] for r in reports]  # the evaluation's time stamp
    cand = [r["models"]["candidate"] for r in reports]
    em = [(c["tasks"]["overall"]["exact_match"] or 0) * 100 for c in cand]
    ppl = [c["answer_perplexity"]["ppl"] or float("nan") for c in cand]
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3), dpi=100)
    a.plot(names, em, "o-", color="#3b6fd8")
    a.set_title("exact match (%)")
    b.plot(names, ppl, "o-", color="#d8733b")
    b.set_title("answer perplexity (test split)")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
