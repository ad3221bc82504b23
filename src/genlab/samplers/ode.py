"""Deterministic samplers for the probability-flow ODE dx_t/dt = a′(t)·x̂ + b′(t)·ε̂.

Each sampler is a function `(denoise, x, ts, *, path) -> x` where `denoise(x_t, t) -> (x̂, ε̂)`
and `ts` is a descending time grid ending at 0. No hidden state: the grid is the schedule.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from genlab.paths import Path, velocity

Denoiser = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def _tvec(t: Tensor, x: Tensor) -> Tensor:
    return t.to(x.dtype).expand(x.shape[0]).to(x.device)


def _flow(denoise: Denoiser, path: Path, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """(velocity, x̂) at (x, t)."""
    tv = _tvec(t, x)
    x_hat, eps_hat = denoise(x, tv)
    return velocity(path, tv, x_hat, eps_hat), x_hat


@torch.no_grad()
def sample_euler(denoise: Denoiser, x: Tensor, ts: Tensor, *, path: Path) -> Tensor:
    """Euler's method on the probability-flow ODE. The step into t = 0 returns x̂ itself when the
    path ends at a(0) = 1, b(0) = 0, which is what an Euler step gives on the rectified path."""
    for t, s in zip(ts[:-1], ts[1:]):
        v, _ = _flow(denoise, path, x, t)
        x = x + (s - t).to(x.dtype) * v
    return x


@torch.no_grad()
def sample_heun(denoise: Denoiser, x: Tensor, ts: Tensor, *, path: Path) -> Tensor:
    """Heun's 2nd-order method (Karras et al. 2022, Alg. 1, deterministic), in t.

    The last step into t = 0 is a plain Euler step (EDM's convention), so NFE = 2·steps − 1."""
    for t, s in zip(ts[:-1], ts[1:]):
        h = (s - t).to(x.dtype)
        v, _ = _flow(denoise, path, x, t)
        x_next = x + h * v
        if s > 0:
            v_next, _ = _flow(denoise, path, x_next, s)
            x_next = x + h * (v + v_next) / 2
        x = x_next
    return x
