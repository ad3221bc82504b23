"""Pictures people would rather look at than read: sample grids, 2-D scatters, loss curves.

matplotlib (about a second to import) is imported by the functions that draw with it, not with this module.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from genlab.data.images import save_grid


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend, imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_samples(
    x: torch.Tensor,
    path: Path,
    *,
    nrow: int,
    reference: torch.Tensor | None = None,
    row_labels: list[str] | None = None,
) -> None:
    """Images → PNG grid (`nrow` per row, optional row labels); 2-D vectors → scatter over the data."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if x.dim() == 4:
        save_grid(x.clamp(-1, 1), path, nrow=nrow, row_labels=row_labels)
        return
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    if reference is not None and reference.dim() == 2:
        ax.scatter(reference[:, 0], reference[:, 1], s=2, alpha=0.3, c="tab:gray", label="data")
    ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.5, c="tab:blue", label="samples")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", markerscale=4)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_loss_curve(metrics_file: Path, path: Path) -> None:
    """Plot every `loss*` column of metrics.jsonl against step, and `val_loss` (train.eval_every) as dots."""
    if not Path(metrics_file).exists():
        return
    rows = [json.loads(line) for line in Path(metrics_file).read_text().splitlines() if line.strip()]
    keys = sorted({k for r in rows for k in r if k.startswith("loss")})
    keys += ["val_loss"] if keys and any("val_loss" in r for r in rows) else []
    if not rows or not keys:
        return
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for k in keys:
        pts = [(r["step"], r[k]) for r in rows if k in r]
        ax.plot(*zip(*pts), "o-" if k == "val_loss" else "-", label=k, markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if all(v > 0 for r in rows for k, v in r.items() if k in keys):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
