"""Classifier-free guidance as a wrapper around a model callable.

out = uncond + s·(cond − uncond) (diffusers' `guidance_scale`; the notes' (1 + w)·cond − w·uncond is
s = 1 + w). cond and uncond run in ONE batched call; s = 1 returns the conditional call unchanged.
`interval=(t_lo, t_hi)` guides only for t in [t_lo, t_hi] and is the conditional model elsewhere
(Kynkäänniemi et al. 2024). `rescale=φ` blends in the guided output rescaled to the conditional
output's per-sample std (Lin et al. 2024, eq. 15–16): φ·out·std(cond)/std(out) + (1 − φ)·out.
Guidance acts on the raw prediction, which is linear in (x̂, ε̂) for a fixed x_t (Lin et al. rescale v).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from genlab.errors import GenlabError


def _rescale(out: Tensor, cond: Tensor, phi: float) -> Tensor:
    dims = tuple(range(1, out.dim()))
    ratio = cond.std(dim=dims, keepdim=True) / out.std(dim=dims, keepdim=True).clamp_min(1e-12)  # (B, 1, ...)
    return phi * (out * ratio) + (1 - phi) * out


def _check(interval: tuple[float, float] | None, rescale: float) -> None:
    if interval is not None and not (len(interval) == 2 and interval[0] <= interval[1]):
        raise GenlabError(f"interval must be (t_lo, t_hi) with t_lo <= t_hi, got {interval}")
    if not 0.0 <= rescale <= 1.0:
        raise GenlabError(f"rescale (φ) must be in [0, 1], got {rescale}")


def guided(
    model: Callable,
    cond: Tensor | None,
    *,
    scale: float,
    null_cond: Tensor | None,
    interval: tuple[float, float] | None = None,
    rescale: float = 0.0,
) -> Callable:
    """Wrap `model(x_t, t, cond)` into `fn(x_t, t)` with classifier-free guidance."""
    _check(interval, rescale)
    if scale == 1.0 or cond is None or null_cond is None:
        return lambda x_t, t: model(x_t, t, cond)

    def fn(x_t: Tensor, t: Tensor) -> Tensor:
        inside = torch.ones_like(t, dtype=torch.bool) if interval is None else (t >= interval[0]) & (t <= interval[1])
        if not bool(inside.any()):
            return model(x_t, t, cond)
        both = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([cond, null_cond]))
        c, u = both.chunk(2)
        out = u + scale * (c - u)
        if rescale > 0:
            out = _rescale(out, c, rescale)
        return out if bool(inside.all()) else torch.where(inside.reshape(-1, *[1] * (out.dim() - 1)), out, c)

    return fn


class CountNFE:
    """Wraps a callable and counts its evaluations (network function evaluations)."""

    def __init__(self, fn: Callable):
        self.fn, self.nfe = fn, 0

    def __call__(self, *args, **kwargs):
        self.nfe += 1
        return self.fn(*args, **kwargs)
