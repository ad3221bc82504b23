"""The one abstraction for diffusion and flow ("generalized diffusion").

    x_t    = a(t)·x + b(t)·eps          t ∈ [0, 1], t = 0 data, t = 1 noise
    target = c(t)·x + d(t)·eps          x: (1, 0)   eps: (0, 1)   v: (−b, a)   flow: (a′, b′)

Any prediction turns into (x̂, ε̂) by inverting [[a, b], [c, d]]; samplers need only (x̂, ε̂).
Presets: rectified (CondOT), VP cosine, VP with DDPM's discrete linear-β table, VE (EDM σ range).
Time sampling for training and loss weights live here too, chosen by name.

Training times: t = shift(g(u)) with u ~ U(0, 1), g = identity (uniform) or g(u) = σ(m + s·Φ⁻¹(u)) (logit-normal)
and SD3's shift(t) = k·t / (1 + (k − 1)·t). g and shift increase, so F(t) = P(T ≤ t) = G(shift⁻¹(t)) with G the
CDF of g(u), and the law restricted to [t_min, t_max] is t = shift(g(u)) with u ~ U(F(t_min), F(t_max)): the
density inside is the untruncated one renormalised, with no point mass at the ends (a clamp would put all the
mass outside at t_min and t_max).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import torch
from torch import Tensor

from genlab.constraints import OneOf, PositiveFloat, Probability, require
from genlab.errors import GenlabError

TARGETS = ("x", "eps", "v", "flow")


class Path:
    """A Gaussian probability path x_t = a(t)·x + b(t)·eps with its time derivatives."""

    name = "path"

    def a(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def b(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def da(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def db(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def log_snr(self, t: Tensor) -> Tensor:
        """λ(t) = log(a² / b²); decreasing in t."""
        return 2 * (torch.log(self.a(t)) - torch.log(self.b(t)))

    def t_from_log_snr(self, lam: Tensor) -> Tensor:
        """Inverse of log_snr by bisection (paths override with closed forms)."""
        lo, hi = torch.zeros_like(lam), torch.ones_like(lam)
        for _ in range(60):
            mid = (lo + hi) / 2
            above = self.log_snr(mid) > lam  # λ decreasing: still too little noise
            lo, hi = torch.where(above, mid, lo), torch.where(above, hi, mid)
        return (lo + hi) / 2

    def coefficients(self, t: Tensor, target: str) -> tuple[Tensor, Tensor]:
        """(c(t), d(t)) of target = c·x + d·eps."""
        if target == "x":
            return torch.ones_like(t), torch.zeros_like(t)
        if target == "eps":
            return torch.zeros_like(t), torch.ones_like(t)
        if target == "v":
            return -self.b(t), self.a(t)
        if target == "flow":
            return self.da(t), self.db(t)
        raise GenlabError(f"unknown target {target!r}: use one of {', '.join(TARGETS)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RectifiedPath(Path):
    """Rectified flow / CondOT: a = 1 − t, b = t."""

    name = "rectified"

    def a(self, t):
        return 1 - t

    def b(self, t):
        return t

    def da(self, t):
        return -torch.ones_like(t)

    def db(self, t):
        return torch.ones_like(t)

    def t_from_log_snr(self, lam):
        return torch.sigmoid(-lam / 2)  # a/b = (1−t)/t = e^{λ/2}


class CosinePath(Path):
    """VP cosine (Nichol & Dhariwal 2021, s = 0): a = cos θ, b = sin θ, θ linear in t.

    θ runs over [θ_min, θ_max] so that λ = −2·log tan θ spans [λ_min, λ_max]; a(1) > 0 keeps
    ε-prediction invertible at t = 1.
    """

    name = "vp_cosine"

    def __init__(self, log_snr_max: float = 15.0, log_snr_min: float = -15.0):
        self.theta0 = math.atan(math.exp(-log_snr_max / 2))
        self.theta1 = math.atan(math.exp(-log_snr_min / 2))

    def _theta(self, t):
        return self.theta0 + t * (self.theta1 - self.theta0)

    def a(self, t):
        return torch.cos(self._theta(t))

    def b(self, t):
        return torch.sin(self._theta(t))

    def da(self, t):
        return -torch.sin(self._theta(t)) * (self.theta1 - self.theta0)

    def db(self, t):
        return torch.cos(self._theta(t)) * (self.theta1 - self.theta0)

    def t_from_log_snr(self, lam):
        theta = torch.atan(torch.exp(-lam / 2))
        return ((theta - self.theta0) / (self.theta1 - self.theta0)).clamp(0, 1)


class DDPMPath(Path):
    """VP with DDPM's discrete linear-β table (Ho et al. 2020): β_i from β_1 to β_T over T steps.

    ᾱ_i = Π_{j≤i}(1 − β_j) at t_i = i/T (ᾱ_0 = 1); log ᾱ is linearly interpolated in t, so the
    grid t_i reproduces the discrete chain exactly. a = √ᾱ, b = √(1 − ᾱ).
    """

    name = "vp_ddpm"

    def __init__(self, beta_start: float = 1e-4, beta_end: float = 0.02, steps: int = 1000):
        betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
        self.log_abar = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(torch.log1p(-betas), 0)])
        self.steps = steps

    def _log_abar_and_slope(self, t):
        table = self.log_abar.to(t.device, torch.float64)
        pos = t.double().clamp(0, 1) * self.steps
        i = pos.floor().long().clamp(max=self.steps - 1)
        slope = (table[i + 1] - table[i]) * self.steps  # d log ᾱ / dt on this segment
        value = table[i] + (pos - i) * (table[i + 1] - table[i])
        return value.to(t.dtype), slope.to(t.dtype)

    def a(self, t):
        return torch.exp(0.5 * self._log_abar_and_slope(t)[0])

    def b(self, t):
        return torch.sqrt(-torch.expm1(self._log_abar_and_slope(t)[0]))

    def da(self, t):
        la, slope = self._log_abar_and_slope(t)
        return 0.5 * slope * torch.exp(0.5 * la)

    def db(self, t):
        la, slope = self._log_abar_and_slope(t)
        abar = torch.exp(la)
        return -0.5 * slope * abar / torch.sqrt(-torch.expm1(la)).clamp_min(1e-12)


class VEPath(Path):
    """Variance exploding (Song et al. 2021; EDM's σ range): a = 1, b = σ(t) = σ_min (σ_max/σ_min)^t."""

    name = "ve"

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0):
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self.log_ratio = math.log(sigma_max / sigma_min)

    def a(self, t):
        return torch.ones_like(t)

    def b(self, t):
        return self.sigma_min * torch.exp(t * self.log_ratio)

    def da(self, t):
        return torch.zeros_like(t)

    def db(self, t):
        return self.b(t) * self.log_ratio

    def t_from_log_snr(self, lam):
        sigma = torch.exp(-lam / 2)
        return (torch.log(sigma / self.sigma_min) / self.log_ratio).clamp(0, 1)


PATHS = {"rectified": RectifiedPath, "vp_cosine": CosinePath, "vp_ddpm": DDPMPath, "ve": VEPath}


def get_path(path: str | Path) -> Path:
    if isinstance(path, Path):
        return path
    if path not in PATHS:
        raise GenlabError(f"unknown path {path!r}: use one of {', '.join(PATHS)}")
    return PATHS[path]()


def bcast(v: Tensor, like: Tensor) -> Tensor:
    """A (B,) tensor reshaped to broadcast against `like` (B, ...)."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def to_x_eps(path: Path, target: str, x_t: Tensor, t: Tensor, pred: Tensor) -> tuple[Tensor, Tensor]:
    """Invert [[a, b], [c, d]]·[x, eps] = [x_t, pred] for (x̂, ε̂)."""
    a, b = bcast(path.a(t), x_t), bcast(path.b(t), x_t)
    c, d = (bcast(v, x_t) for v in path.coefficients(t, target))
    det = a * d - b * c
    x_hat = (d * x_t - b * pred) / det
    eps_hat = (a * pred - c * x_t) / det
    return x_hat, eps_hat


def from_x_eps(path: Path, target: str, t: Tensor, x: Tensor, eps: Tensor) -> Tensor:
    """target = c(t)·x + d(t)·eps."""
    c, d = (bcast(v, x) for v in path.coefficients(t, target))
    return c * x + d * eps


def velocity(path: Path, t: Tensor, x_hat: Tensor, eps_hat: Tensor) -> Tensor:
    """dx_t/dt = a′·x̂ + b′·ε̂."""
    return bcast(path.da(t), x_hat) * x_hat + bcast(path.db(t), x_hat) * eps_hat


# ----------------------------------------------------------------------------- time sampling


@dataclass
class TimeSampling:
    """Training-time distribution of t: `uniform` or `logit_normal(mean, std)`, then SD3's shift."""

    kind: Annotated[str, OneOf(("uniform", "logit_normal"))] = "uniform"
    mean: float = 0.0
    std: PositiveFloat = 1.0
    shift: PositiveFloat = 1.0  # t ↦ s·t / (1 + (s − 1)·t); s > 1 moves mass towards noise (Esser et al. 2024)
    t_min: Probability = 0.0  # the law is truncated to [t_min, t_max] (renormalised), e.g. to keep VP ε-prediction
    t_max: Probability = 1.0  # away from t = 0

    def __post_init__(self) -> None:
        require(self.t_min < self.t_max, "t_max", f"must be > t_min={self.t_min}, got {self.t_max}")


def shift_time(t: Tensor, shift: float) -> Tensor:
    return shift * t / (1 + (shift - 1) * t)


def unshift_time(t: Tensor, shift: float) -> Tensor:
    """The inverse of shift_time: t = k·t₀ / (1 + (k − 1)·t₀)  ⇔  t₀ = t / (k − (k − 1)·t)."""
    return t / (shift - (shift - 1) * t)


def time_cdf(cfg: TimeSampling, t: Tensor) -> Tensor:
    """F(t) = P(T ≤ t) of the untruncated training-time law (t in [0, 1])."""
    t0 = unshift_time(t, cfg.shift)
    if cfg.kind == "uniform":
        return t0
    z = (torch.logit(t0) - cfg.mean) / cfg.std  # logit(0) = −inf, logit(1) = +inf: F = 0 and 1
    return 0.5 * (1 + torch.erf(z / math.sqrt(2)))


def _from_quantile(cfg: TimeSampling, u: Tensor) -> Tensor:
    """F⁻¹(u): the time at quantile u."""
    t0 = u if cfg.kind == "uniform" else torch.sigmoid(cfg.mean + cfg.std * math.sqrt(2) * torch.erfinv(2 * u - 1))
    return shift_time(t0, cfg.shift)


def sample_time(cfg: TimeSampling, n: int, *, generator: torch.Generator | None = None, device=None) -> Tensor:
    """n training times (float32, on `device`) from the law of `cfg`, truncated to [t_min, t_max]."""
    if cfg.kind not in ("uniform", "logit_normal"):
        raise GenlabError(f"method.time.kind: unknown {cfg.kind!r}, use 'uniform' or 'logit_normal'")
    where = device if generator is None else generator.device  # drawn on the generator's device, then moved
    if cfg.t_min <= 0.0 and cfg.t_max >= 1.0:  # no truncation: the direct draw
        if cfg.kind == "uniform":
            t = torch.rand(n, generator=generator, device=where).to(device)
        else:
            t = torch.sigmoid(cfg.mean + cfg.std * torch.randn(n, generator=generator, device=where).to(device))
        return shift_time(t, cfg.shift) if cfg.shift != 1.0 else t
    ends = torch.tensor([cfg.t_min, cfg.t_max], dtype=torch.float64, device=device)
    lo, hi = time_cdf(cfg, ends).unbind()
    u = lo + (hi - lo) * torch.rand(n, generator=generator, device=where, dtype=torch.float64).to(device)
    return _from_quantile(cfg, u).clamp(cfg.t_min, cfg.t_max).float()  # the clamp only absorbs rounding


# ----------------------------------------------------------------------------- loss weights


def loss_weight(name: str, path: Path, target: str, t: Tensor, *, sigma_data: float = 0.5) -> Tensor:
    """Per-sample weight on the target-space MSE.

    `uniform`: 1 (L_simple for eps, the CFM loss for flow). `min_snr` (Hang et al. 2023, γ = 5) and
    `edm` (Karras et al. 2022, eq. 8) are defined on the x̂ error and converted: with x_t fixed,
    δx̂ = −b/det·δpred, so w_target = w_x·(b/det)².
    """
    if name == "uniform":
        return torch.ones_like(t)
    a, b = path.a(t), path.b(t)
    c, d = path.coefficients(t, target)
    to_target = (b / (a * d - b * c)) ** 2
    if name == "min_snr":
        w_x = torch.clamp((a / b) ** 2, max=5.0)
    elif name == "edm":
        sigma = b / a
        w_x = (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
    else:
        raise GenlabError(f"method.loss_weight: unknown {name!r}, use 'uniform', 'min_snr' or 'edm'")
    return w_x * to_target
