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
from genlab.methods.classifier import NoisyClassifier
from genlab.plots import save_samples
from genlab.samplers import classifier_guided

SAMPLER_SETTINGS = ("sampler", "steps", "grid", "guidance_scale", "eta")


def class_labels(n: int, num_classes: int, label: int | None) -> torch.Tensor | None:
    """`label` repeated n times, or the classes cycled evenly (0, 1, ..., 0, 1, ...)."""
    if not num_classes:
        if label is not None:
            raise GenlabError("this run is unconditional: drop --label")
        return None
    if label is not None and not 0 <= label < num_classes:
        raise GenlabError(f"--label must be in [0, {num_classes - 1}], got {label}")
    return torch.full((n,), label) if label is not None else torch.arange(n) % num_classes


def load_classifier(run: str | Path, *, like) -> NoisyClassifier:
    """The EMA noisy classifier of `run`, checked against the diffusion/flow method `like` it will guide."""
    recipe, clf, _ = load_method(run)
    if not isinstance(clf, NoisyClassifier):
        raise GenlabError(f"--classifier {run} is a method.kind={recipe.method.kind!r} run: pass a noisy_classifier "
                          "run (genlab train recipes/digits-classifier.yaml)")
    if not all(hasattr(like, k) for k in ("net", "path", "shape")):
        raise GenlabError("classifier guidance needs a diffusion/flow run (method.kind: flow)")
    if clf.path.name != like.path.name:
        raise GenlabError(f"the classifier was trained on path {clf.path.name!r} but the run uses {like.path.name!r}: "
                          f"retrain it with --method.path={like.path.name}")
    if tuple(clf.shape) != tuple(like.shape):
        raise GenlabError(f"the classifier takes data of shape {tuple(clf.shape)} but the run makes "
                          f"{tuple(like.shape)}: retrain it on the run's data (data.size)")
    if like.num_classes and like.num_classes != clf.num_classes:
        raise GenlabError(f"the classifier has {clf.num_classes} classes but the run has {like.num_classes}: "
                          "train it on the run's dataset")
    return clf


def sample_with_classifier(
    method, classifier: NoisyClassifier, n: int, *, label: torch.Tensor, scale: float,
    model_label: torch.Tensor | None, **opts,
) -> torch.Tensor:
    """A flow method's own sampling (same noise, same sampler options) with classifier guidance towards `label`
    at `scale` wrapped around the model; `model_label` None runs the model unconditionally (null class)."""

    def wrap(fn):
        return classifier_guided(fn, classifier.logits, label, scale=scale, path=method.path, target=method.cfg.target)

    return method.sample(n, label=model_label, wrap=wrap, **opts)


def sample_run(
    run: str | Path,
    *,
    n: int = 64,
    label: int | None = None,
    seed: int = 0,
    stats: dict | None = None,
    classifier: str | Path | None = None,
    classifier_scale: float = 1.0,
    **opts,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(samples, labels) from a run's EMA weights; opts override the recipe's `sample` section. With
    `classifier` (a noisy_classifier run) samples are guided towards the labels at `classifier_scale`; the
    model itself gets the labels too when it is class-conditional (guidance_scale 0 makes it unconditional)."""
    if n < 1:
        raise GenlabError(f"--n must be >= 1, got {n}")
    recipe, method, _ = load_method(run)
    settings = {k: getattr(recipe.sample, k) for k in SAMPLER_SETTINGS}
    settings.update({k: v for k, v in opts.items() if v is not None})
    gen = torch.Generator().manual_seed(seed)
    num_classes = getattr(recipe.model, "num_classes", 0) or 0
    if classifier is None:
        labels = class_labels(n, num_classes, label)
        x = method.sample(n, label=labels, generator=gen, stats=stats, **settings)
    else:
        clf = load_classifier(classifier, like=method)
        labels = class_labels(n, clf.num_classes, label)
        x = sample_with_classifier(method, clf, n, label=labels, scale=classifier_scale,
                                   model_label=labels if num_classes else None, generator=gen, stats=stats,
                                   **settings)
        settings.update(classifier=str(classifier), classifier_scale=classifier_scale)
    if stats is not None:
        if "sampler" in stats:  # the method samples by its own procedure (GAN, VAE, AR): no ODE/SDE settings apply
            settings = {k: v for k, v in settings.items() if k not in SAMPLER_SETTINGS}
        stats.update({k: v for k, v in settings.items() if k not in stats})
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
