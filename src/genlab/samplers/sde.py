"""DDIM with η on any Gaussian path (Song et al. 2021, eq. 12), generalised from VP to (a, b).

From t to s < t with (x̂, ε̂) = denoise(x_t, t):
    σ_s² = η²·b_s²·(1 − SNR_t / SNR_s)            (SNR = a²/b²; the DDPM posterior variance at η = 1)
    x_s  = a_s·x̂ + √(b_s² − σ_s²)·ε̂ + σ_s·z
η = 0 is the deterministic DDIM (on the rectified path: exactly Euler on the velocity); η = 1 is
ancestral DDPM sampling (exact on the vp_ddpm path's grid t_i = i/T).
"""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.paths import Path
from genlab.samplers.ode import Denoiser, _tvec


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
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + sigma.to(x.dtype) * z
    return x
