"""Fréchet distance (FD) and kernel distance (KID) between two feature sets, in float64.

FD  = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½     (Heusel et al. 2017; Σ with the 1/(n−1) estimator),
      where tr (Σ₁^½ Σ₂ Σ₁^½)^½ = Σᵢ √λᵢ of a symmetric PSD matrix (eigh; rounding negatives clipped to 0).
KID = unbiased MMD² with k(x, y) = (xᵀy / F + 1)³ (Bińkowski et al. 2018, eq. 4), averaged over `subsets` random
      subsets of `subset_size` points drawn without replacement from each set; the report gives mean and std.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.errors import GenlabError


def gaussian_stats(f: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (F,) and unbiased covariance (F, F) of features (N, F), float64."""
    if f.dim() != 2 or len(f) < 2:
        raise GenlabError(f"FD needs at least 2 feature vectors (N, F), got shape {tuple(f.shape)}")
    f = f.double()
    mu = f.mean(0)
    centred = f - mu
    return mu, centred.T @ centred / (len(f) - 1)


def _sqrt_psd(m: Tensor) -> Tensor:
    vals, vecs = torch.linalg.eigh((m + m.T) / 2)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_from_stats(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """FD between N(mu1, cov1) and N(mu2, cov2)."""
    root1 = _sqrt_psd(cov1.double())
    middle = root1 @ cov2.double() @ root1  # symmetric PSD, same nonzero spectrum as cov1 @ cov2
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    value = (mu1.double() - mu2.double()).square().sum() + cov1.trace() + cov2.trace() - 2 * trace_sqrt
    return float(value)


def frechet_distance(f1: Tensor, f2: Tensor) -> float:
    """FD between the Gaussian fits of two feature sets (N1, F) and (N2, F)."""
    if f1.shape[1:] != f2.shape[1:]:
        raise GenlabError(f"FD: feature sizes differ ({f1.shape[1]} vs {f2.shape[1]}); use one feature net")
    return frechet_from_stats(*gaussian_stats(f1), *gaussian_stats(f2))


def polynomial_mmd2(a: Tensor, b: Tensor, *, degree: int = 3, coef: float = 1.0) -> float:
    """Unbiased MMD² between sets (m, F) and (n, F) under k(x, y) = (xᵀy / F + 1)^degree."""
    a, b = a.double(), b.double()
    gamma = 1.0 / a.shape[1]
    k_aa = (a @ a.T * gamma + coef) ** degree
    k_bb = (b @ b.T * gamma + coef) ** degree
    k_ab = (a @ b.T * gamma + coef) ** degree
    return mmd2_from_kernels(k_aa, k_bb, k_ab)


def mmd2_from_kernels(k_aa: Tensor, k_bb: Tensor, k_ab: Tensor) -> float:
    """Unbiased MMD² = mean_{i≠i'} k(aᵢ, aᵢ') + mean_{j≠j'} k(bⱼ, bⱼ') − 2 mean_{i,j} k(aᵢ, bⱼ)."""
    m, n = len(k_aa), len(k_bb)
    within_a = (k_aa.sum() - k_aa.diagonal().sum()) / (m * (m - 1))
    within_b = (k_bb.sum() - k_bb.diagonal().sum()) / (n * (n - 1))
    return float(within_a + within_b - 2 * k_ab.mean())


def _select(n: int, picks: list[Tensor], device) -> Tensor:
    """0/1 matrix (n, L) on `device` whose column l marks the indices picks[l]."""
    sel = torch.zeros(n, len(picks), dtype=torch.float64, device=device)
    for col, idx in enumerate(picks):
        sel[idx.to(device), col] = 1.0
    return sel


def kid(
    real: Tensor, fake: Tensor, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """(mean, std) of the unbiased polynomial MMD² over random subsets; subset_size is capped at both set sizes.

    The kernel matrices are computed once; a subset's kernel sum is sᵀKs for its 0/1 indicator s, so all subsets
    cost a few matrix products instead of `subsets` kernel evaluations (same values as looping polynomial_mmd2).
    """
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise GenlabError(f"KID needs at least 2 points in each set, got {len(real)} and {len(fake)}")
    gen = torch.Generator().manual_seed(seed)
    count = subsets if size < max(len(real), len(fake)) else 1  # one subset is everything: no resampling
    picks = [
        (torch.randperm(len(real), generator=gen)[:size], torch.randperm(len(fake), generator=gen)[:size])
        for _ in range(count)
    ]
    a, b = real.double(), fake.double()
    gamma = 1.0 / a.shape[1]
    sa, sb = (_select(len(v), [p[i] for p in picks], v.device) for i, v in enumerate((a, b)))  # (m, L), (n, L)
    values = torch.zeros(count, dtype=torch.float64, device=a.device)
    for sel_1, x, sel_2, y, weight in ((sa, a, sa, a, 1.0), (sb, b, sb, b, 1.0), (sa, a, sb, b, -2.0)):
        k = (x @ y.T * gamma + 1.0) ** 3  # (|x|, |y|)
        sums = (sel_1 * (k @ sel_2)).sum(0)  # (L,) kernel sum over each subset pair
        if x is y:
            sums = (sums - sel_1.T @ k.diagonal()) / (size * (size - 1))  # drop i = i' terms
        else:
            sums = sums / size**2
        values += weight * sums
    return float(values.mean()), float(values.std(unbiased=False))
