"""The report: every metric of a sample set against a reference, with its noise floor and Gaussian baseline.

Reference R = training points (a seeded subset of at most 5,000; 2,000 for vector data, to bound exact OT).
Images are compared in a feature space φ (FD, KID, PRDC, class metrics); vectors in data space (W2, sliced W2,
RBF-MMD², PRDC). With held-out data H, every metric is also measured at m = min(n, |H|) for seeded m-subsets of
the samples and of H (real vs real) and for m Gaussian-fit draws, giving normalized = (s − real)/(gaussian − real)
per distance; memorization is measured in data space (see genlab.metrics.memorization).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from genlab.data.base import Dataset
from genlab.errors import GenlabError
from genlab.metrics.classes import class_metrics
from genlab.metrics.features import FeatureNet, extract, resolve_feature_net
from genlab.metrics.fid import frechet_distance, kid
from genlab.metrics.floor import gaussian_fit_samples, normalized
from genlab.metrics.memorization import memorization
from genlab.metrics.prdc import knn_radius, prdc
from genlab.metrics.vector import median_bandwidth, mmd2_rbf, sliced_w2, w2_squared

DISTANCES = ("fd", "kid", "w2", "w2_squared", "sliced_w2", "mmd2_rbf")
K_PR, K_DC = 3, 5
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000
SLICED_PROJECTIONS = 256
MAX_REFERENCE = {"image": 5000, "vector": 2000}
MIN_SET = 10  # fewest samples (and held-out items) the k-NN metrics are run on


@dataclass
class Reference:
    """The fixed side of every comparison: reference points (features or vectors) and what they need."""

    train: Dataset
    points: Tensor  # (R, F) float64
    radii: dict[int, Tensor]
    net: FeatureNet | None  # None: vector data, compared in data space
    bandwidth: float | None
    seed: int


def _subset(x: Tensor, size: int, seed: int) -> Tensor:
    if len(x) <= size:
        return x
    return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:size]]


def _embed(ref: Reference, x: Tensor) -> tuple[Tensor, Tensor | None]:
    return extract(ref.net, x) if ref.net is not None else (x.double(), None)


def build_reference(train: Dataset, net: FeatureNet | None, *, seed: int = 0) -> Reference:
    """Embed (a capped seeded subset of) the training data and precompute its k-NN radii."""
    if train.is_image and net is None:
        raise GenlabError("image data needs a feature net: pass feature_net= (an nn.Module) or use the default")
    cap = MAX_REFERENCE["image" if train.is_image else "vector"]
    ref = Reference(train, torch.empty(0), {}, net if train.is_image else None, None, seed)
    ref.points = _embed(ref, _subset(train.x, cap, seed))[0]
    ref.radii = {k: knn_radius(ref.points, k) for k in (K_PR, K_DC)}
    ref.bandwidth = None if train.is_image else median_bandwidth(ref.points, seed=seed)
    return ref


def set_metrics(ref: Reference, x: Tensor, labels: Tensor | None = None) -> dict:
    """Every set metric of x (N, ...) against the reference."""
    points, logits = _embed(ref, x)
    out = prdc(ref.points, points, k_pr=K_PR, k_dc=K_DC, real_radii=ref.radii)
    if ref.net is None:
        w2sq = w2_squared(points, ref.points)
        out.update(
            w2=math.sqrt(max(w2sq, 0.0)),
            w2_squared=w2sq,
            sliced_w2=sliced_w2(points, ref.points, projections=SLICED_PROJECTIONS, seed=ref.seed),
            mmd2_rbf=mmd2_rbf(points, ref.points, bandwidth=ref.bandwidth),
        )
        return out
    out["fd"] = frechet_distance(points, ref.points)
    out["kid"], out["kid_std"] = kid(
        ref.points, points, subsets=KID_SUBSETS, subset_size=KID_SUBSET_SIZE, seed=ref.seed
    )
    if logits is not None:
        out.update(class_metrics(logits, labels=labels))
    return out


def floor_metrics(ref: Reference, x: Tensor, labels: Tensor | None, heldout: Dataset, headline: dict) -> dict:
    """Samples, real held-out data and the Gaussian fit, all at m = min(n, |H|), and the normalized distances."""
    m = min(len(x), len(heldout))
    gen = torch.Generator().manual_seed(ref.seed)
    pick, own = torch.randperm(len(heldout), generator=gen)[:m], torch.randperm(len(x), generator=gen)[:m]
    held_labels = None if heldout.labels is None or labels is None else heldout.labels[pick]
    at_m = headline if m == len(x) else set_metrics(ref, x[own], None if labels is None else labels[own])
    real = set_metrics(ref, heldout.x[pick], held_labels)
    gauss = set_metrics(ref, gaussian_fit_samples(ref.train.x, m, seed=ref.seed + 1))
    scores = {k: normalized(at_m[k], real[k], gauss[k]) for k in DISTANCES if k in real}
    return {"n": m, "samples": at_m, "real": real, "gaussian": gauss, "normalized": scores}


def _net_settings(ref: Reference, heldout: Dataset | None) -> dict:
    net, x = ref.net, ref.train.x
    if net is None:
        return {"space": "data", "mmd_bandwidth": ref.bandwidth, "sliced_projections": SLICED_PROJECTIONS}
    accuracy = net.heldout_accuracy
    if net.has_logits and heldout is not None and heldout.labels is not None:
        _, logits = extract(net, heldout.x)
        if logits.shape[1] >= heldout.num_classes:  # measured now, on this evaluation's held-out data
            accuracy = float((logits.argmax(1) == heldout.labels).double().mean())
    size = net.image_size or getattr(net.module, "side", None)
    return {
        "space": "features",
        "feature_net": net.name,
        "num_features": int(ref.points.shape[1]),
        "feature_net_heldout_accuracy": accuracy,
        "resize": f"{x.shape[-2]}x{x.shape[-1]} -> {size}x{size}" if size and size != x.shape[-1] else None,
        "kid_subsets": KID_SUBSETS,
        "kid_subset_size": KID_SUBSET_SIZE,
        "kid_note": "subset size capped at both set sizes; one subset when that is everything",
    }


def evaluate_sets(
    x: Tensor,
    labels: Tensor | None = None,
    *,
    train: Dataset,
    heldout: Dataset | None = None,
    feature_net: FeatureNet | nn.Module | str | None = None,
    seed: int = 0,
) -> dict:
    """The full report dict (settings, metrics, floor, memorization) of samples x against train (+ held-out).

    feature_net: None (the data's default), 'digits', 'pixels', a feature-net .safetensors path or any nn.Module.
    """
    if len(x) < MIN_SET:
        raise GenlabError(f"got {len(x)} samples; evaluate at least {MIN_SET} (k-NN metrics need neighbours)")
    if x.shape[1:] != train.x.shape[1:]:
        raise GenlabError(
            f"samples have shape {tuple(x.shape[1:])} but {train.name} items are "
            f"{tuple(train.x.shape[1:])}; evaluate against the dataset the samples imitate"
        )
    ref = build_reference(train, resolve_feature_net(feature_net, train), seed=seed)
    settings = {
        "n": len(x),
        "seed": seed,
        "data": train.name,
        "reference": f"train split: {len(ref.points)} of {len(train)} items",
        "heldout": None if heldout is None else f"test split: {len(heldout)} items",
        "prdc_k": {"precision_recall": K_PR, "density_coverage": K_DC},
        **_net_settings(ref, heldout),
    }
    report = {"settings": settings, "metrics": set_metrics(ref, x, labels)}
    if heldout is not None and len(heldout) < MIN_SET:
        report["settings"]["heldout"] = f"test split of {len(heldout)} items: too small (< {MIN_SET}), no floor"
        heldout = None
    if heldout is not None:
        report["floor"] = floor_metrics(ref, x, labels, heldout, report["metrics"])
        report["memorization"] = memorization(x, train.x, heldout.x, seed=seed)
        report["settings"].update(
            floor_n=report["floor"]["n"], memorization_space="data (pixels or vectors)", near_copy_quantile=0.01
        )
    return report
