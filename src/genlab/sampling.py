"""Sampling from a trained run, and writing the result as a PNG grid or an .npz array file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from genlab.checkpoint import find_checkpoint, load_method
from genlab.data.images import tensor_to_uint8
from genlab.errors import GenlabError
from genlab.plots import save_samples


def class_labels(n: int, num_classes: int, label: int | None) -> torch.Tensor | None:
    """`label` repeated n times, or the classes cycled evenly (0, 1, ..., 0, 1, ...)."""
    if not num_classes:
        if label is not None:
            raise GenlabError("this run is unconditional: drop --label")
        return None
    if label is not None and not 0 <= label < num_classes:
        raise GenlabError(f"--label must be in [0, {num_classes - 1}], got {label}")
    return torch.full((n,), label) if label is not None else torch.arange(n) % num_classes


def sample_run(
    run: str | Path,
    *,
    n: int = 64,
    label: int | None = None,
    seed: int = 0,
    stats: dict | None = None,
    **opts,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(samples, labels) from a run's EMA weights; opts override the recipe's `sample` section."""
    if n < 1:
        raise GenlabError(f"--n must be >= 1, got {n}")
    recipe, method, _ = load_method(run)
    settings = {k: getattr(recipe.sample, k) for k in ("sampler", "steps", "grid", "guidance_scale", "eta")}
    settings.update({k: v for k, v in opts.items() if v is not None})
    labels = class_labels(n, getattr(recipe.model, "num_classes", 0) or 0, label)
    gen = torch.Generator().manual_seed(seed)
    x = method.sample(n, label=labels, generator=gen, stats=stats, **settings)
    if stats is not None:
        stats.update(settings)
    return x, labels


def write_samples(x: torch.Tensor, labels: torch.Tensor | None, out: str | Path, *, nrow: int = 8) -> Path:
    """Write to `out` atomically: .png (grid / scatter) or .npz (images uint8 NHWC or x float32)."""
    out = Path(out)
    if out.suffix not in (".png", ".npz"):
        raise GenlabError(f"-o {out}: use a .png (grid) or .npz (arrays) file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    if out.suffix == ".png":
        save_samples(x, tmp, nrow=nrow)
    else:
        arrays = {"images": tensor_to_uint8(x)} if x.dim() == 4 else {"x": x.float().numpy()}
        if labels is not None:
            arrays["labels"] = labels.numpy().astype(np.int64)
        np.savez(tmp, **arrays)
    os.replace(tmp, out)
    return out


def run_info(run: str | Path) -> dict:
    """Recipe, parameter count, step and the last metrics row of a run."""
    ckpt = find_checkpoint(run)
    recipe, method, step = load_method(run)
    metrics = Path(run) / "metrics.jsonl"
    rows = metrics.read_text().splitlines() if metrics.is_file() else []
    return {
        "run": str(run),
        "checkpoint": str(ckpt),
        "step": step,
        "parameters": sum(p.numel() for p in method.parameters()),
        "last_metrics": json.loads(rows[-1]) if rows else None,
        "recipe": json.loads((ckpt / "config.json").read_text())["recipe"],
    }
