"""Distances between point clouds in data space (vector data such as toy2d), float64.

W2² = min over couplings π of Σᵢⱼ πᵢⱼ ‖aᵢ − bⱼ‖², uniform weights, solved exactly by POT's network simplex (`ot.emd2`).
Sliced W2² = E_θ W2²(θᵀa, θᵀb) over random unit directions θ; each 1-D W2² is ∫₀¹ (F⁻¹(u) − G⁻¹(u))² du computed
exactly from the two sorted projections (piecewise-constant quantile functions), so set sizes may differ.
MMD² (RBF): unbiased estimate with k(x, y) = exp(−‖x − y‖² / (2σ²)); σ by the median heuristic (median pairwise
distance of a reference set, fixed once so every comparison uses the same kernel).
"""

from __future__ import annotations

import numpy as np
import ot
import torch
from torch import Tensor

from genlab.errors import GenlabError
from genlab.metrics.fid import mmd2_from_kernels


def _check(a: Tensor, b: Tensor) -> None:
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise GenlabError(f"point sets must be (N, D) with one D, got {tuple(a.shape)} and {tuple(b.shape)}")


def w2_squared(a: Tensor, b: Tensor) -> float:
    """Exact squared 2-Wasserstein distance between the empirical measures of a (m, D) and b (n, D)."""
    _check(a, b)
    x, y = a.double().numpy(), b.double().numpy()
    cost = ot.dist(x, y, metric="sqeuclidean")  # (m, n)
    wa, wb = np.full(len(x), 1.0 / len(x)), np.full(len(y), 1.0 / len(y))
    return float(ot.emd2(wa, wb, cost, numItermax=10_000_000))


def _w2_squared_1d(a: Tensor, b: Tensor) -> Tensor:
    """Exact 1-D W2² per column: a (m, L), b (n, L) -> (L,)."""
    a, b = a.sort(0).values, b.sort(0).values
    m, n = len(a), len(b)
    f64 = {"dtype": torch.float64, "device": a.device}
    cuts = torch.cat([torch.arange(m + 1, **f64) / m, torch.arange(n + 1, **f64) / n])
    cuts = cuts.unique()  # sorted breakpoints of both quantile functions, 0 .. 1
    mid, width = (cuts[1:] + cuts[:-1]) / 2, cuts[1:] - cuts[:-1]
    ia, ib = (mid * m).long().clamp_max(m - 1), (mid * n).long().clamp_max(n - 1)
    return ((a[ia] - b[ib]).square() * width[:, None]).sum(0)


def sliced_w2(a: Tensor, b: Tensor, *, projections: int = 256, seed: int = 0) -> float:
    """Sliced W2 = sqrt(mean over random unit directions of the 1-D W2²)."""
    _check(a, b)
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(a.shape[1], projections, generator=gen, dtype=torch.float64).to(a.device)
    theta = theta / theta.norm(dim=0, keepdim=True)  # (D, L) unit directions
    return float(_w2_squared_1d(a.double() @ theta, b.double() @ theta).mean().sqrt())


def median_bandwidth(x: Tensor, *, max_points: int = 2000, seed: int = 0) -> float:
    """σ = median pairwise distance of (a seeded subset of at most max_points of) x."""
    if len(x) > max_points:
        x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:max_points]]
    d = torch.pdist(x.double())
    return float(d.median()) if len(d) and float(d.median()) > 0 else 1.0


def mmd2_rbf(a: Tensor, b: Tensor, *, bandwidth: float) -> float:
    """Unbiased MMD² between a (m, D) and b (n, D) with an RBF kernel of width `bandwidth`."""
    _check(a, b)
    a, b, scale = a.double(), b.double(), -0.5 / bandwidth**2
    k_aa, k_bb, k_ab = (torch.cdist(u, v).square().mul(scale).exp() for u, v in ((a, a), (b, b), (a, b)))
    return mmd2_from_kernels(k_aa, k_bb, k_ab)
