"""Time grids: descending tensors from t_max (noise) to 0 (data), steps + 1 points.

A grid is a plain tensor, so a user can pass their own anywhere a grid name is accepted.
`uniform`: evenly spaced in t. `log_snr`: evenly spaced in λ = log(a²/b²) (clipped to the path's
finite range). `shift`: SD3's resolution shift of the uniform grid (Esser et al. 2024).
"""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.errors import GenlabError
from genlab.paths import Path, shift_time


def _uniform(steps: int, t_max: float) -> Tensor:
    return torch.linspace(t_max, 0.0, steps + 1, dtype=torch.float64)


def _log_snr(steps: int, t_max: float, path: Path, eps: float = 1e-3) -> Tensor:
    """Even in λ between the clipped ends; the first point is moved back to t_max itself."""
    end = torch.tensor([min(t_max, 1 - eps), eps], dtype=torch.float64)
    lam = path.log_snr(end)
    ts = path.t_from_log_snr(torch.linspace(lam[0].item(), lam[1].item(), steps, dtype=torch.float64))
    ts[0] = t_max
    return torch.cat([ts, torch.zeros(1, dtype=torch.float64)])


def time_grid(grid: str | Tensor, steps: int, *, path: Path, t_max: float = 1.0, shift: float = 3.0) -> Tensor:
    """A descending float64 grid [t_max, ..., 0] of steps + 1 times."""
    if isinstance(grid, Tensor):
        ts = grid.to(torch.float64).flatten()
        if ts.numel() < 2 or not bool((ts[1:] < ts[:-1]).all()):
            raise GenlabError("a custom time grid must be strictly decreasing with at least 2 points")
        return ts
    if steps < 1:
        raise GenlabError(f"steps must be >= 1, got {steps}")
    if grid == "uniform":
        return _uniform(steps, t_max)
    if grid == "log_snr":
        return _log_snr(steps, t_max, path)
    if grid == "shift":
        return shift_time(_uniform(steps, t_max), shift)
    raise GenlabError(f"unknown grid {grid!r}: use one of {', '.join(GRIDS)} or pass a tensor")


GRIDS = ("uniform", "log_snr", "shift")
