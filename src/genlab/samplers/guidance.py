"""Guidance as wrappers around a model callable: classifier-free and classifier guidance.

Classifier-free: out = uncond + s·(cond − uncond) (diffusers' `guidance_scale`; the notes' (1 + w)·cond −
w·uncond is s = 1 + w). cond and uncond run in ONE batched call; s = 1 returns the conditional call unchanged.
Classifier (Dhariwal & Nichol 2021): score' = score + s·∇_{x_t} log p(y | x_t), with score = −ε̂/b, i.e.
ε̂' = ε̂ − s·b·∇ log p(y | x_t); s = 0 is no guidance and s = 1 the exact conditional (Bayes).
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
from genlab.paths import bcast, from_x_eps, get_path, to_x_eps


def _rescale(out: Tensor, cond: Tensor, phi: float) -> Tensor:
    dims = tuple(range(1, out.dim()))
    ratio = cond.std(dim=dims, keepdim=True) / out.std(dim=dims, keepdim=True).clamp_min(1e-12)  # (B, 1, ...)
    return phi * (out * ratio) + (1 - phi) * out


def _check(interval: tuple[float, float] | None, rescale: float) -> None:
    if interval is not None and not (len(interval) == 2 and interval[0] <= interval[1]):
        raise GenlabError(f"interval must be (t_lo, t_hi) with t_lo <= t_hi, got {interval}")
    if not 0.0 <= rescale <= 1.0:
        raise GenlabError(f"rescale (φ) must be in [0, 1], got {rescale}")


def guided_at(t: Tensor, interval: tuple[float, float] | None) -> Tensor:
    """Which times of `t` (a tensor) the guidance interval [lo, hi] holds (None: every time), as a bool tensor."""
    if interval is None:
        return torch.ones_like(t, dtype=torch.bool)
    return (t >= interval[0]) & (t <= interval[1])


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
        inside = guided_at(t, interval)
        if not bool(inside.any()):
            return model(x_t, t, cond)
        both = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([cond, null_cond]))
        c, u = both.chunk(2)
        out = u + scale * (c - u)
        if rescale > 0:
            out = _rescale(out, c, rescale)
        return out if bool(inside.all()) else torch.where(inside.reshape(-1, *[1] * (out.dim() - 1)), out, c)

    return fn


def class_log_prob_grad(classifier: Callable, x_t: Tensor, t: Tensor, label: Tensor) -> Tensor:
    """∇_{x_t} log softmax(classifier(x_t, t))[label], per sample (works inside torch.no_grad)."""
    with torch.enable_grad():
        x = x_t.detach().requires_grad_(True)
        logp = torch.log_softmax(classifier(x, t), dim=-1)  # (B, K)
        picked = logp.gather(-1, label.to(logp.device).reshape(-1, 1)).sum()
        return torch.autograd.grad(picked, x)[0].to(x_t.dtype)


def classifier_guided(
    fn: Callable, classifier: Callable, label: Tensor | None, *, scale: float, path, target: str
) -> Callable:
    """Wrap `fn(x_t, t) -> prediction of target` with classifier guidance towards `label` (B,).

    With x_t = a·x + b·eps, Tweedie gives score(x_t) = −ε̂/b, and Bayes gives
    ∇ log p(x_t | y) = ∇ log p(x_t) + ∇ log p(y | x_t). Guidance at scale s samples p(x_t)·p(y | x_t)^s:
        ε̂' = ε̂ − s·b·g,   x̂' = (x_t − b·ε̂')/a = x̂ + s·(b²/a)·g,   g = ∇_{x_t} log p(y | x_t),
    and the guided (x̂', ε̂') is turned back into `target`, so every sampler runs unchanged. `classifier`
    maps (x_t, t) to logits (B, K). Where a(t) = 0 (rectified t = 1) x_t holds no information about y, so the
    exact g is 0 and the prediction is returned as it is. One extra classifier forward+backward per call."""
    if scale == 0.0 or label is None:
        return fn
    path = get_path(path)

    def guided_fn(x_t: Tensor, t: Tensor) -> Tensor:
        pred = fn(x_t, t)
        x_hat, eps_hat = to_x_eps(path, target, x_t, t, pred)
        g = class_log_prob_grad(classifier, x_t, t, label)  # (B, ...)
        a, b = bcast(path.a(t), x_t), bcast(path.b(t), x_t)
        informative = a != 0
        eps_new = eps_hat - scale * b * g
        x_new = x_hat + scale * b**2 / torch.where(informative, a, 1) * g  # = (x_t − b·ε̂')/a, without cancellation
        out = from_x_eps(path, target, t, x_new, eps_new)
        return torch.where(informative, out, pred)

    return guided_fn


class CountNFE:
    """Wraps a callable and counts its evaluations (network function evaluations)."""

    def __init__(self, fn: Callable):
        self.fn, self.nfe = fn, 0

    def __call__(self, *args, **kwargs):
        self.nfe += 1
        return self.fn(*args, **kwargs)
