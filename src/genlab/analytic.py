"""Isotropic Gaussian mixtures with their exact denoiser, for testing and benchmarking samplers.

Data x ~ Σ_k π_k N(μ_k, s_k² I). On a path x_t = a·x + b·eps, x_t | k ~ N(a μ_k, (a² s_k² + b²) I),
so the posterior over components is softmax_k(log π_k + log N(x_t; a μ_k, ...)) and
E[x | x_t] = Σ_k w_k (μ_k + a s_k² / (a² s_k² + b²) · (x_t − a μ_k)); ε̂ = (x_t − a x̂) / b.
For one component the probability-flow ODE is solved exactly by matching standardised values.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genlab.paths import Path


class GaussianMixture:
    def __init__(self, means: Tensor, stds: Tensor, weights: Tensor | None = None):
        self.means = torch.as_tensor(means, dtype=torch.float64)  # (K, D)
        self.stds = torch.as_tensor(stds, dtype=torch.float64).reshape(-1)  # (K,)
        k = self.means.shape[0]
        w = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None else torch.as_tensor(weights)
        self.weights = (w / w.sum()).to(torch.float64)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws (n, D) in float64, on the generator's device (the CPU without one)."""
        where = self.means.device if generator is None else generator.device
        means, stds, weights = self._params(where)
        k = torch.multinomial(weights, n, replacement=True, generator=generator)  # (n,)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64, device=where)
        return means[k] + stds[k, None] * z

    def _params(self, device) -> tuple[Tensor, Tensor, Tensor]:
        """(means, stds, weights) in float64 on `device` (the mixture is stored on the CPU)."""
        return self.means.to(device), self.stds.to(device), self.weights.to(device)

    def _log_components(self, x_t: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        means, stds, weights = self._params(x_t.device)
        var = a[:, None] ** 2 * stds[None] ** 2 + b[:, None] ** 2  # (B, K)
        sq = ((x_t[:, None, :] - a[:, None, None] * means[None]) ** 2).sum(-1)  # (B, K)
        logp = torch.log(weights)[None] - 0.5 * sq / var - 0.5 * self.dim * torch.log(2 * math.pi * var)
        return logp, var

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log density of the data (t = 0)."""
        x = x.double()
        one = torch.ones(x.shape[0], dtype=torch.float64, device=x.device)
        return torch.logsumexp(self._log_components(x, one, 0 * one)[0], dim=1)

    def denoiser(self, path: Path):
        """denoise(x_t, t) -> (E[x | x_t], E[eps | x_t]), computed in float64."""

        def denoise(x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
            dtype = x_t.dtype
            x_t, t = x_t.double(), t.double()
            a, b = path.a(t), path.b(t)
            logp, var = self._log_components(x_t, a, b)
            means, stds, _ = self._params(x_t.device)
            w = torch.softmax(logp, dim=1)  # (B, K)
            gain = a[:, None] * stds[None] ** 2 / var  # (B, K)
            x_k = means[None] + gain[..., None] * (x_t[:, None, :] - a[:, None, None] * means[None])
            x_hat = (w[..., None] * x_k).sum(1)  # (B, D)
            eps_hat = (x_t - a[:, None] * x_hat) / b[:, None]
            return x_hat.to(dtype), eps_hat.to(dtype)

        return denoise

    def component_logits(self, path: Path):
        """logits(x_t, t) -> log p(k, x_t) (B, K): softmax over k is the exact posterior p(k | x_t)."""

        def logits(x_t: Tensor, t: Tensor) -> Tensor:
            return self._log_components(x_t.double(), path.a(t.double()), path.b(t.double()))[0]

        return logits

    def flow_fn(self, path: Path):
        """fn(x_t, t) -> the exact velocity a′ x̂ + b′ ε̂ (the `flow` target)."""
        denoise = self.denoiser(path)

        def fn(x_t: Tensor, t: Tensor) -> Tensor:
            x_hat, eps_hat = denoise(x_t, t)
            da, db = path.da(t.double()).to(x_t.dtype), path.db(t.double()).to(x_t.dtype)
            return da[:, None] * x_hat + db[:, None] * eps_hat

        return fn

    def ode_endpoint(self, path: Path, x_t: Tensor, t: float) -> Tensor:
        """Exact probability-flow ODE solution at t = 0 from x_t at time t (one component only)."""
        if self.means.shape[0] != 1:
            raise ValueError("the closed-form ODE endpoint needs a single Gaussian")
        tt = torch.tensor([t], dtype=torch.float64, device=x_t.device)
        a, b = path.a(tt), path.b(tt)
        means, stds, _ = self._params(x_t.device)
        mu, s = means[0], stds[0]
        z = (x_t.double() - a * mu) / torch.sqrt(a**2 * s**2 + b**2)
        return mu + s * z
