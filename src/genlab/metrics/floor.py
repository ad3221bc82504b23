"""A scale for every distance: the real-data noise floor and a single-Gaussian baseline.

real     = d(held-out real data, reference) at the same n as the samples: what a perfect model scores at this n.
gaussian = d(draws from N(μ, Σ) fit to the training data in data space, reference): images are flattened for the
           fit and the draws clipped to [−1, 1]. With no more items than dimensions (N ≤ D) a draw is
           μ + wᵀ(X − μ)/√(N−1), w ~ N(0, I_N), whose covariance is exactly Σ, at O(n·N·D) instead of the O(D³) of
           an eigendecomposition (for 64 shapes images, D = 3072: benchmarks/floor_fit_speed.py); otherwise Σ's
           eigendecomposition. Either way a singular Σ is fine.
normalized = (d(samples) − real) / (gaussian − real): 0 = as good as real data, 1 = as bad as the Gaussian fit
           (< 0 means within the noise of real data; None when the baseline is no worse than real data).
"""

from __future__ import annotations

import torch
from torch import Tensor


def gaussian_fit_samples(train: Tensor, n: int, *, seed: int = 0, route: str = "auto") -> Tensor:
    """n draws shaped like `train` from its Gaussian fit; 4-D (image) data is clipped to [-1, 1]. `route`: "data"
    (the data matrix), "eigh" (Σ's eigendecomposition) or "auto" (the data matrix when N ≤ D)."""
    if route not in ("auto", "data", "eigh"):
        raise ValueError(f"route must be auto, data or eigh, got {route!r}")
    flat = train.reshape(len(train), -1).double()
    mu = flat.mean(0)
    gen = torch.Generator().manual_seed(seed)
    if route == "data" or (route == "auto" and len(flat) <= flat.shape[1]):  # Cov(wᵀ(X − μ)/√(N−1)) = Σ
        w = torch.randn(n, len(flat), generator=gen, dtype=torch.float64).to(mu.device)
        x = mu + w @ ((flat - mu) / max(len(flat) - 1, 1) ** 0.5)
    else:
        cov = torch.cov(flat.T).reshape(flat.shape[1], flat.shape[1])  # (D, D)
        vals, vecs = torch.linalg.eigh(cov)
        z = torch.randn(n, len(mu), generator=gen, dtype=torch.float64).to(mu.device)
        x = mu + (z * vals.clamp_min(0).sqrt()) @ vecs.T
    x = x.float().reshape(n, *train.shape[1:])
    return x.clamp_(-1.0, 1.0) if train.dim() == 4 else x


def normalized(sample: float, real: float, gaussian: float) -> float | None:
    """(sample − real) / (gaussian − real), or None when gaussian ≤ real (no usable scale)."""
    span = gaussian - real
    return (sample - real) / span if span > 0 else None
