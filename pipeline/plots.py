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
