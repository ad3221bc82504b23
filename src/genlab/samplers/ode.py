"""Explicit Runge–Kutta samplers for the probability-flow ODE dx_t/dt = v = a′(t)·x̂ + b′(t)·ε̂.

Each sampler is a function `(denoise, x, ts, *, path) -> x` where `denoise(x_t, t) -> (x̂, ε̂)` and `ts`
is a descending time grid ending at 0. No hidden state: the grid is the schedule.
At t = 0 with b(0) = 0, x_0 = a(0)·x reveals nothing about eps, so E[eps | x_0] = 0 and the exact
velocity is v(x, 0) = (a′(0)/a(0))·x for any data law: stages landing there cost no evaluation
(and avoid the 0/0 in ε̂ = (x − a·x̂)/b).
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


def flow_velocity(denoise: Denoiser, path: Path, x: Tensor, t: Tensor) -> Tensor:
    """The ODE's right-hand side at (x, t); closed form (a′/a)·x without a model call where b(t) = 0."""
    t64 = t.double().reshape(1)
    if float(path.b(t64)) == 0.0:
        return (path.da(t64) / path.a(t64)).to(x.dtype) * x
    return _flow(denoise, path, x, t)[0]


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


@torch.no_grad()
def sample_midpoint(denoise: Denoiser, x: Tensor, ts: Tensor, *, path: Path) -> Tensor:
    """Explicit midpoint rule (RK2, Runge 1895): x_s = x + h·v(x + h/2·v(x, t), t + h/2). NFE = 2·steps."""
    for t, s in zip(ts[:-1], ts[1:]):
        h = (s - t).to(x.dtype)
        v = flow_velocity(denoise, path, x, t)
        x = x + h * flow_velocity(denoise, path, x + h / 2 * v, (t + s) / 2)
    return x


@torch.no_grad()
def sample_rk4(denoise: Denoiser, x: Tensor, ts: Tensor, *, path: Path) -> Tensor:
    """Classical 4th-order Runge–Kutta (Kutta 1901). NFE = 4·steps, minus 1 where b(0) = 0 (the last
    stage of the last step is the closed-form velocity at t = 0)."""
    for t, s in zip(ts[:-1], ts[1:]):
        h, mid = (s - t).to(x.dtype), (t + s) / 2
        k1 = flow_velocity(denoise, path, x, t)
        k2 = flow_velocity(denoise, path, x + h / 2 * k1, mid)
        k3 = flow_velocity(denoise, path, x + h / 2 * k2, mid)
        k4 = flow_velocity(denoise, path, x + h * k3, s)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x
