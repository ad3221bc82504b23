"""Adaptive Dormand–Prince 5(4) on the probability-flow ODE dx/dt = v(x, t), from ts[0] down to ts[-1].

Each step takes 6 new stages (first-same-as-last) and an embedded 4th-order solution; the error
e = x⁵ − x⁴ is measured as ‖e / (atol + rtol·max(|x|, |x_new|))‖_rms over the whole batch, a step is
accepted when that is ≤ 1, and h ← h·clip(0.9·err^{−1/5}, 0.2, 5). Stages stay inside [t + h, t], so
nothing is evaluated beyond t = 0; where b(0) = 0 the velocity there is the closed form (a′/a)·x.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.errors import GenlabError
from genlab.paths import Path
from genlab.samplers.ode import Denoiser, flow_velocity

# Dormand & Prince 1980, "A family of embedded Runge-Kutta formulae", Table 2 (RK5(4)7M).
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
)
_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)  # also the FSAL stage's row
_E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)  # b5 − b4 (7 stages)


def _combo(coefs, ks: list[Tensor]) -> Tensor:
    return sum(c * k for c, k in zip(coefs, ks) if c != 0.0)


def _dp_step(f, x: Tensor, t: Tensor, h: Tensor, k1: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One Dormand–Prince step: (x_new, error estimate, k7 = f(x_new, t + h))."""
    ks = [k1]
    for c, row in zip(_C[1:], _A[1:]):
        ks.append(f(x + h * _combo(row, ks), t + c * h))
    x_new = x + h * _combo(_B5, ks)
    ks.append(f(x_new, t + h))
    return x_new, h * _combo(_E, ks), ks[-1]


@torch.no_grad()
def sample_dopri5(
    denoise: Denoiser,
    x: Tensor,
    ts: Tensor,
    *,
    path: Path,
    rtol: float = 1e-4,
    atol: float = 1e-4,
    max_steps: int = 10_000,
) -> Tensor:
    """Adaptive Dormand–Prince 5(4) (Dormand & Prince 1980; step control as Hairer et al., Solving ODEs I,
    §II.4). `ts` gives the span [ts[0] → ts[-1]] and the first step (ts[1] − ts[0]); NFE is whatever the
    tolerance needs (6 per attempted step + 1)."""
    f = lambda y, tt: flow_velocity(denoise, path, y, tt)  # noqa: E731
    return solve_dopri5(f, x, ts[0], ts[-1], first_step=ts[1] - ts[0], rtol=rtol, atol=atol, max_steps=max_steps)


def solve_dopri5(
    f, x: Tensor, t: Tensor, t_end: Tensor, *, first_step: Tensor, rtol: float, atol: float, max_steps: int = 10_000
) -> Tensor:
    """Integrate dx/dt = f(x, t) from t to t_end (either direction) with Dormand–Prince 5(4) step control."""
    if rtol <= 0 or atol <= 0:
        raise GenlabError(f"dopri5 needs rtol > 0 and atol > 0, got rtol={rtol}, atol={atol}")
    t, t_end, h = t.double(), t_end.double(), first_step.double()
    sign = 1.0 if float(t_end - t) > 0 else -1.0
    k1 = f(x, t)
    for _ in range(max_steps):
        last = bool(sign * h >= sign * (t_end - t))  # never step past the end of the span
        h = t_end - t if last else h
        x_new, err, k7 = _dp_step(f, x, t, h, k1)
        scale = atol + rtol * torch.maximum(x.abs(), x_new.abs())
        ratio = float((err / scale).pow(2).mean().sqrt())
        if ratio <= 1.0:
            if last:
                return x_new
            x, t, k1 = x_new, t + h, k7
        h = h * min(5.0, max(0.2, 0.9 * max(ratio, 1e-10) ** -0.2))
    raise GenlabError(f"dopri5 did not reach t={float(t_end)} in max_steps={max_steps}; loosen rtol/atol")
