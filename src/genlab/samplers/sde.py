"""Stochastic samplers on any Gaussian path x_t = a·x + b·eps, driven by (x̂, ε̂) = denoise(x_t, t).

DDIM-η (Song et al. 2021): x_s = a_s·x̂ + √(b_s² − σ²)·ε̂ + σ·z, σ² = η²·b_s²·(1 − SNR_t/SNR_s).
Reverse SDE (Song et al. 2021, eq. 6) of the forward SDE dx = f·x dt + g dw with f = a′/a and
g² = 2·b·(b′ − f·b), the only pair whose marginals are the path's; score = −ε̂/b, so its drift is
f·x − g²·score = v + (b′ − f·b)·ε̂ with v = a′·x̂ + b′·ε̂. EDM (Karras et al. 2022) works in σ = b/a,
y = x/a, where the ODE is dy/dσ = ε̂; its Euler step in σ is exactly the DDIM step x_s = a_s·x̂ + b_s·ε̂.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genlab.errors import GenlabError
from genlab.paths import Path
from genlab.samplers.ode import Denoiser, _tvec


def _ab(path: Path, t: Tensor) -> tuple[float, float, float, float]:
    """(a, b, a′, b′) at a scalar time, as floats."""
    t64 = t.double().reshape(1)
    return float(path.a(t64)), float(path.b(t64)), float(path.da(t64)), float(path.db(t64))


def _noise(x: Tensor, generator: torch.Generator | None) -> Tensor:
    where = x.device if generator is None else generator.device  # drawn where the generator lives, then moved
    return torch.randn(x.shape, generator=generator, device=where, dtype=x.dtype).to(x.device)


@torch.no_grad()
def sample_ddim(
    denoise: Denoiser,
    x: Tensor,
    ts: Tensor,
    *,
    path: Path,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """DDIM (Song, Meng & Ermon 2021, eq. 12) generalised to (a, b); η = 1 is ancestral DDPM."""
    if eta < 0:
        raise GenlabError(f"eta must be >= 0, got {eta}")
    for t, s in zip(ts[:-1], ts[1:]):
        x_hat, eps_hat = denoise(x, _tvec(t, x))
        t64, s64 = t.double().reshape(1), s.double().reshape(1)
        a_t, b_t, a_s, b_s = path.a(t64), path.b(t64), path.a(s64), path.b(s64)
        if s > 0 and eta > 0:
            ratio = (a_t * b_s) ** 2 / (a_s * b_t) ** 2  # SNR_t / SNR_s
            sigma = eta * b_s * torch.sqrt((1 - ratio).clamp_min(0))
        else:
            sigma = torch.zeros_like(b_s)
        keep = torch.sqrt((b_s**2 - sigma**2).clamp_min(0))
        x = a_s.to(x.dtype) * x_hat + keep.to(x.dtype) * eps_hat
        if sigma.item() > 0:
            x = x + sigma.to(x.dtype) * _noise(x, generator)
    return x


@torch.no_grad()
def sample_euler_maruyama(
    denoise: Denoiser, x: Tensor, ts: Tensor, *, path: Path, generator: torch.Generator | None = None
) -> Tensor:
    """Euler–Maruyama (Kloeden & Platen 1992, §9.1) on the reverse-time SDE (Anderson 1982; Song et al.
    2021, eq. 6): x_s = x_t + (s − t)·(v + k·ε̂) + √(2·b·k·(t − s))·z, k = b′ − (a′/a)·b.

    Where a(t) = 0 (rectified t = 1) f and g are infinite and x_t carries no signal; that step uses the
    exact reverse transition of that case, x_s = a_s·x̂ + b_s·z. The last step is the noise-free DDIM step
    (Tweedie denoising; the DDPM posterior variance is 0 there when b(0) = 0)."""
    last = len(ts) - 2
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:])):
        x_hat, eps_hat = denoise(x, _tvec(t, x))
        a, b, da, db = _ab(path, t)
        a_s, b_s, _, _ = _ab(path, s)
        if i == last:
            x = a_s * x_hat + b_s * eps_hat
        elif a == 0.0:
            x = a_s * x_hat + b_s * _noise(x, generator)
        else:
            k = db - da / a * b  # g² / (2b) ≥ 0 since σ = b/a increases with t
            drift = da * x_hat + (db + k) * eps_hat  # reverse drift f·x − g²·score, (B, ...)
            x = x + float(s - t) * drift + math.sqrt(2 * b * k * float(t - s)) * _noise(x, generator)
    return x


def _sigma(a: float, b: float) -> float:
    return math.inf if a == 0.0 else b / a


def _churn(x, t, path, gamma, s_noise, generator) -> tuple[Tensor, Tensor]:
    """EDM's noise injection: raise σ to σ̂ = σ·(1 + γ) (capped at the path's σ(1)); returns (x_hat, t_hat)."""
    a, b, _, _ = _ab(path, t)
    sig, sig_top = _sigma(a, b), _sigma(*_ab(path, torch.ones((), dtype=torch.float64))[:2])
    sig_hat = min(sig * (1 + gamma), sig_top)
    if gamma == 0.0 or not math.isfinite(sig) or sig_hat <= sig:
        return x, t
    t_hat = path.t_from_log_snr(torch.tensor([-2 * math.log(sig_hat)], dtype=torch.float64))[0]
    a_hat = float(path.a(t_hat.reshape(1)))
    y = x / a + math.sqrt(sig_hat**2 - sig**2) * s_noise * _noise(x, generator)  # y = x/a, (B, ...)
    return a_hat * y, t_hat


@torch.no_grad()
def sample_edm(
    denoise: Denoiser,
    x: Tensor,
    ts: Tensor,
    *,
    path: Path,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    s_noise: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """EDM stochastic sampler (Karras et al. 2022, Alg. 2): churn γ = min(s_churn/N, √2 − 1) for σ in
    [s_tmin, s_tmax] (σ = b/a units), then a Heun step in σ; s_churn = 0 is Alg. 1. The step into b = 0,
    and any step from σ̂ = ∞ (rectified t = 1), is the Euler (DDIM) step, so NFE ≤ 2·steps − 1."""
    if s_churn < 0 or s_noise < 0:
        raise GenlabError(f"s_churn and s_noise must be >= 0, got s_churn={s_churn}, s_noise={s_noise}")
    n = len(ts) - 1
    for t, s in zip(ts[:-1], ts[1:]):
        a, b, _, _ = _ab(path, t)
        gamma = min(s_churn / n, math.sqrt(2) - 1) if s_tmin <= _sigma(a, b) <= s_tmax else 0.0
        x, t_hat = _churn(x, t, path, gamma, s_noise, generator)
        a_hat, b_hat, _, _ = _ab(path, t_hat)
        a_s, b_s, _, _ = _ab(path, s)
        x_hat, eps_hat = denoise(x, _tvec(t_hat, x))
        x_next = a_s * x_hat + b_s * eps_hat  # Euler in σ
        if b_s > 0 and a_hat > 0:
            eps_next = denoise(x_next, _tvec(s, x))[1]
            y = x / a_hat + (b_s / a_s - b_hat / a_hat) * (eps_hat + eps_next) / 2
            x_next = a_s * y
        x = x_next
    return x
