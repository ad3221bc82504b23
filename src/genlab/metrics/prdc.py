"""Precision / recall (Kynkäänniemi et al. 2019) and density / coverage (Naeem et al. 2020) from k-NN balls.

With real points Xᵢ (N), fake points Yⱼ (M) and r_k(z) the distance from z to its k-th nearest neighbour in
its own set:  precision = 1/M Σⱼ 1[∃i ‖Yⱼ−Xᵢ‖ ≤ r_k(Xᵢ)],   recall = 1/N Σᵢ 1[∃j ‖Xᵢ−Yⱼ‖ ≤ r_k(Yⱼ)],
density = 1/(kM) Σⱼ Σᵢ 1[‖Yⱼ−Xᵢ‖ ≤ r_k(Xᵢ)],   coverage = 1/N Σᵢ 1[minⱼ ‖Xᵢ−Yⱼ‖ ≤ r_k(Xᵢ)]  (closed balls throughout).
genlab uses k = 3 for precision/recall and k = 5 for density/coverage; distances are Euclidean, float64,
computed in row chunks so memory stays O(chunk · N).
"""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.errors import GenlabError

CHUNK = 1024


def knn_radius(x: Tensor, k: int) -> Tensor:
    """Distance (N,) from each point of x (N, F) to its k-th nearest other point of x."""
    if len(x) <= k:
        raise GenlabError(f"k-NN radii with k={k} need more than {k} points, got {len(x)}; use larger sets (--n)")
    x = x.double()
    out = []
    for start in range(0, len(x), CHUNK):
        d = torch.cdist(x[start : start + CHUNK], x)  # (c, N)
        rows = torch.arange(d.shape[0], device=d.device)
        d[rows, rows + start] = float("inf")  # a point is not its own neighbour
        out.append(d.kthvalue(k, dim=1).values)
    return torch.cat(out)


def _ball_counts(query: Tensor, centres: Tensor, radii: Tensor) -> Tensor:
    """For each query point (Q,), how many balls B(centre, radius) contain it (closed balls)."""
    counts = []
    for start in range(0, len(query), CHUNK):
        d = torch.cdist(query[start : start + CHUNK].double(), centres.double())  # (c, C)
        counts.append((d <= radii[None, :]).sum(1))
    return torch.cat(counts)


def nearest(query: Tensor, bank: Tensor) -> tuple[Tensor, Tensor]:
    """(distance, index) of each query point's nearest point in bank, both (Q,)."""
    found = [torch.cdist(q.double(), bank.double()).min(1) for q in query.split(CHUNK)]
    return torch.cat([f.values for f in found]), torch.cat([f.indices for f in found])


def prdc(
    real: Tensor, fake: Tensor, *, k_pr: int = 3, k_dc: int = 5, real_radii: dict[int, Tensor] | None = None
) -> dict[str, float]:
    """Precision, recall (k_pr) and density, coverage (k_dc) of fake (M, F) against real (N, F) points.

    `real_radii` may hold precomputed {k: knn_radius(real, k)} so a fixed reference is measured once.
    """
    radii = real_radii or {}
    r_pr = radii[k_pr] if k_pr in radii else knn_radius(real, k_pr)
    r_dc = radii[k_dc] if k_dc in radii else knn_radius(real, k_dc)
    fake_r = knn_radius(fake, k_pr)
    return {
        "precision": float((_ball_counts(fake, real, r_pr) > 0).double().mean()),
        "recall": float((_ball_counts(real, fake, fake_r) > 0).double().mean()),
        "density": float(_ball_counts(fake, real, r_dc).double().mean() / k_dc),
        "coverage": float((nearest(real, fake)[0] <= r_dc).double().mean()),
    }
