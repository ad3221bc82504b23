"""Classifier-free guidance as a wrapper around a model callable.

out = uncond + s·(cond − uncond) (diffusers' `guidance_scale`; the notes' (1 + w)·cond − w·uncond is
s = 1 + w). cond and uncond run in ONE batched call; s = 1 returns the conditional call unchanged.
Guidance acts on the raw prediction, which is linear in (x̂, ε̂) for a fixed x_t, so it means the
same for every target.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def guided(model: Callable, cond: Tensor | None, *, scale: float, null_cond: Tensor | None) -> Callable:
    """Wrap `model(x_t, t, cond)` into `fn(x_t, t)` with classifier-free guidance."""
    if scale == 1.0 or cond is None or null_cond is None:
        return lambda x_t, t: model(x_t, t, cond)

    def fn(x_t: Tensor, t: Tensor) -> Tensor:
        both = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([cond, null_cond]))
        c, u = both.chunk(2)
        return u + scale * (c - u)

    return fn


class CountNFE:
    """Wraps a callable and counts its evaluations (network function evaluations)."""

    def __init__(self, fn: Callable):
        self.fn, self.nfe = fn, 0

    def __call__(self, *args, **kwargs):
        self.nfe += 1
        return self.fn(*args, **kwargs)
