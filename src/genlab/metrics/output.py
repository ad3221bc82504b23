"""Write an evaluation report: eval.json, eval.md and plots, staged in a temporary folder and renamed into place.

Files: eval.json (settings + every metric; non-finite numbers become null), eval.md (one table: samples at n,
samples / real held-out / Gaussian fit at the floor size m, normalized distance), samples.png (grid or scatter),
nearest.png (images: the 16 samples closest to the training set, each beside its nearest training image, in data
space) and prdc.png (precision / recall / density / coverage bars, samples vs real held-out data).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import torch
from torch import Tensor

from genlab.data.base import Dataset
from genlab.data.images import save_grid
from genlab.metrics.prdc import nearest
from genlab.plots import pyplot, save_samples

PRDC = ("precision", "recall", "density", "coverage")
NN_PAIRS = 16


def _clean(value):
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return json.dumps(value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _likelihood_line(lik: dict) -> str:
    """One sentence: '1.23 bits/dim (exact, ± 0.01 std err, n=64)' or why there is no value."""
    unit = next((u for u in ("bits_per_dim", "nats_per_dim") if lik.get(u) is not None), None)
    if unit is None:
        return f"none: {lik.get('reason')}"
    kind = "a bound: log p ≥ the ELBO, so the true value is at most this" if lik["kind"] == "bound" else lik["kind"]
    how = "".join(f"; {k} {lik[k]}" for k in ("divergence", "nfe") if lik.get(k) is not None)
    return (
        f"**{lik[unit]:.4f} {unit.replace('_per_', '/')}** ({kind}, ± {lik[unit + '_std_err']:.4f} std err over "
        f"n={lik['n']} held-out items{how})"
    )


def markdown(report: dict) -> str:
    """eval.md: the metric table, memorization and the settings."""
    s, metrics, floor = report["settings"], report["metrics"], report.get("floor")
    head = f"| metric | {'held-out data' if 'split' in s else 'samples'} (n={s['n']}) |"
    extra = floor is not None and floor["n"] != s["n"]  # a separate column for the samples at the floor size
    if floor:
        m = floor["n"]
        head += f" samples (n={m}) |" * extra
        head += f" real held-out (n={m}) | Gaussian fit (n={m}) | normalized (0 real, 1 Gaussian) |"
    lines = [
        f"# Evaluation: {s.get('run') or s.get('samples') or 'samples'} vs {s['data']}",
        "",
        head,
        "|" + " --- |" * head.count(" |"),
    ]
    for key, value in metrics.items():
        row = f"| {key} | {_fmt(value)} |"
        if floor:
            cells = (floor["samples"].get(key),) * extra + (
                floor["real"].get(key),
                floor["gaussian"].get(key),
                floor["normalized"].get(key),
            )
            row += "".join(f" {_fmt(c)} |" for c in cells)
        lines.append(row)
    if "memorization" in report:
        lines += ["", "## Memorization (data space)", ""]
        lines += [f"- {k}: {_fmt(v)}" for k, v in report["memorization"].items()]
    if "likelihood" in report:
        lines += ["", "## Likelihood (held-out data)", "", _likelihood_line(report["likelihood"])]
        lines += [f"- {k}: {_fmt(v)}" for k, v in report["likelihood"].items() if v is not None]
    lines += ["", "## Settings", ""] + [f"- {k}: {_fmt(v)}" for k, v in s.items()]
    return "\n".join(lines) + "\n"


def _prdc_bars(report: dict, path: Path) -> None:
    plt = pyplot()  # matplotlib on the Agg backend, imported here
    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    xs = torch.arange(len(PRDC)).float()
    rows = [("samples", report["metrics"])]
    if "floor" in report:
        rows.append(("real held-out", report["floor"]["real"]))
    for i, (name, values) in enumerate(rows):
        ax.bar(xs + 0.4 * i - 0.2 * (len(rows) - 1), [values[k] for k in PRDC], width=0.4, label=name)
    ax.set_xticks(xs.tolist(), PRDC)
    ax.axhline(1.0, color="gray", lw=0.5)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _nearest_pairs(x: Tensor, train: Tensor, path: Path) -> None:
    dist, idx = nearest(x.reshape(len(x), -1), train.reshape(len(train), -1))
    closest = dist.argsort()[:NN_PAIRS]
    pairs = torch.stack([x[closest].float(), train[idx[closest]].float()], 1).flatten(0, 1)  # sample, neighbour, ...
    save_grid(pairs.clamp(-1, 1), path, nrow=8)


def write_report(report: dict, *, x: Tensor | None, labels: Tensor | None, train: Dataset, out: str | Path) -> Path:
    """Write every file into `out` (created), each file atomically; returns the eval.json path. x None: a report of
    held-out metrics only (a method that makes no samples), no pictures."""
    out = Path(out)
    tmp = out / f".eval-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "eval.json").write_text(json.dumps(_clean(report), indent=2) + "\n")
    (tmp / "eval.md").write_text(markdown(report))
    nrow = 8 if labels is None else max(1, min(int(labels.max()) + 1, 16))
    if x is not None and (x.dim() == 4 or x.shape[1] >= 2):  # a grid, or a scatter of the first two coordinates
        save_samples(x[:64] if x.dim() == 4 else x, tmp / "samples.png", nrow=nrow, reference=train.x)
    if x is not None and x.dim() == 4:
        _nearest_pairs(x, train.x, tmp / "nearest.png")
    if x is not None:
        _prdc_bars(report, tmp / "prdc.png")
    for f in tmp.iterdir():
        os.replace(f, out / f.name)
    tmp.rmdir()
    return out / "eval.json"
