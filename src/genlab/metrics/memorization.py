"""Memorization: are samples closer to the training set than unseen real data would be?

Distances are Euclidean in data space (images flattened). Nearest-neighbour distances shrink as a bank grows
(≈ N^(-1/d)), so banks are compared at EQUAL size m = min(|H|, |T|, max_heldout): seeded subsets H' of the held-out
set H and T' of the train set T. ratio = mean_s d(s, T') / mean_s d(s, H') is ≈ 1 for a model that generalises and
< 1 when samples sit on training points. Matched real baseline: for `splits` seeded splits of H into halves (at most
`max_baseline` points each), real held-out queries Q against the other half A and an equal-size train subset B give
nn_ratio_real = mean over splits of mean_q d(q, B) / mean_q d(q, A) (≈ 1 when train and held-out come from the same
law) and its spread nn_ratio_real_sd: the samples' ratio is evidence of memorization only relative to that.
Near-copies: τ = the `quantile` (1 %) point of the nearest-train distances of held-out points d(h, T) (how close
unseen real data gets to the full train set T); near_copy_fraction = mean_s 1[d(s, T) ≤ τ] is ≈ 1 % for samples from
the data law and 1 for copies; the report flags memorization when it exceeds `flag_factor` (5) times that rate.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.metrics.prdc import nearest


def _flat(x: Tensor) -> Tensor:
    return x.reshape(len(x), -1).double()


def _ratio(query: Tensor, train_bank: Tensor, heldout_bank: Tensor) -> float:
    d_heldout = float(nearest(query, heldout_bank)[0].mean())
    return float(nearest(query, train_bank)[0].mean()) / d_heldout if d_heldout > 0 else float("nan")


def real_baseline(train: Tensor, heldout: Tensor, *, gen: torch.Generator, splits: int, max_size: int) -> dict:
    """The ratio that real held-out points score (half of H as queries; banks: the other half, equal train subset)."""
    t, h = _flat(train), _flat(heldout)
    half = min(len(h) // 2, len(t), max_size)
    if half < 1 or splits < 1:
        return {"nn_ratio_real": float("nan"), "nn_ratio_real_sd": float("nan"), "baseline_bank_size": half}
    ratios = []
    for _ in range(splits):
        perm = torch.randperm(len(h), generator=gen)
        bank_t = t[torch.randperm(len(t), generator=gen)[:half]]
        ratios.append(_ratio(h[perm[half : 2 * half]], bank_t, h[perm[:half]]))
    values = torch.tensor(ratios, dtype=torch.float64)
    sd = float(values.std()) if splits > 1 else float("nan")
    return {"nn_ratio_real": float(values.mean()), "nn_ratio_real_sd": sd, "baseline_bank_size": half}


def memorization(
    samples: Tensor,
    train: Tensor,
    heldout: Tensor,
    *,
    seed: int = 0,
    quantile: float = 0.01,
    flag_factor: float = 5.0,
    max_heldout: int = 5000,
    splits: int = 5,
    max_baseline: int = 1000,
) -> dict:
    """Nearest-neighbour statistics of samples against train and held-out data (see the module docstring).

    Both banks of the ratio are seeded subsets of size min(|H|, |T|, max_heldout) (equal density, bounded cost).
    """
    gen = torch.Generator().manual_seed(seed)
    s, t, h = _flat(samples), _flat(train), _flat(heldout)
    m = min(len(h), len(t), max_heldout)
    h = h[torch.randperm(len(h), generator=gen)[:m]]
    subset = torch.randperm(len(t), generator=gen)[:m]
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
        **real_baseline(t, _flat(heldout), gen=gen, splits=splits, max_size=max_baseline),
        "near_copy_threshold": threshold,
        "near_copy_fraction": fraction,
        "memorized": fraction > flag_factor * quantile,
        "heldout_size": len(h),
        "train_subset_size": len(subset),
    }
