"""Memorization: are samples closer to the training set than unseen real data would be?

Distances are Euclidean in data space (images flattened). With held-out set H and a seeded train subset T' of the
same size |H| (equal sizes, so both banks are equally dense): ratio = mean_s d(s, T') / mean_s d(s, H), ≈ 1 for a
model that generalises and < 1 when samples sit on training points. Near-copies: τ = the `quantile` (1 %) point of
the nearest-train distances of held-out points d(h, T) (how close unseen real data gets to the full train set T);
near_copy_fraction = mean_s 1[d(s, T) ≤ τ] is ≈ 1 % for samples from the data law and 1 for copies; the report flags
memorization when it exceeds `flag_factor` (5) times the calibrated rate.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.metrics.prdc import nearest


def _flat(x: Tensor) -> Tensor:
    return x.reshape(len(x), -1).double()


def memorization(
    samples: Tensor, train: Tensor, heldout: Tensor, *, seed: int = 0, quantile: float = 0.01, flag_factor: float = 5.0,
    max_heldout: int = 5000,
) -> dict:
    """Nearest-neighbour statistics of samples against train and held-out data (see the module docstring).

    A held-out set larger than `max_heldout` is replaced by a seeded subset of that size (bounds the cost).
    """
    gen = torch.Generator().manual_seed(seed)
    s, t, h = _flat(samples), _flat(train), _flat(heldout)
    h = h[torch.randperm(len(h), generator=gen)[:max_heldout]]
    subset = torch.randperm(len(t), generator=gen)[: len(h)]
    d_train_subset = nearest(s, t[subset])[0]
    d_heldout = nearest(s, h)[0]
    d_train = nearest(s, t)[0]
    threshold = float(torch.quantile(nearest(h, t)[0], quantile))
    fraction = float((d_train <= threshold).double().mean())
    ratio = float(d_train_subset.mean() / d_heldout.mean()) if float(d_heldout.mean()) > 0 else float("nan")
    return {
        "nn_train_subset_mean": float(d_train_subset.mean()),
        "nn_heldout_mean": float(d_heldout.mean()),
        "nn_ratio": ratio,
        "near_copy_threshold": threshold,
        "near_copy_fraction": fraction,
        "memorized": fraction > flag_factor * quantile,
        "heldout_size": len(h),
        "train_subset_size": len(subset),
    }
