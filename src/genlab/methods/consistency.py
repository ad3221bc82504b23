"""Consistency models (Song, Dhariwal, Chen & Sutskever 2023; improved training, Song & Dhariwal 2023; easy
consistency tuning, Geng et al. 2024): one network f(x_t, t) that maps every point of an ODE trajectory to its end.

Parametrisation (skip scaling): f(x_t, t) = x̂_θ(x_t, t), the network's data estimate on the path, which on a path
with a(0) = 1, b(0) = 0 (rectified, VP) is c_skip(t)·x_t + c_out(t)·F_θ with c_skip(0) = 1, c_out(0) = 0: on the
rectified path with a velocity network, f = x_t − t·v_θ(x_t, t). So the boundary condition f(x, 0) = x holds
exactly by construction, and a student initialised from a flow teacher starts as that teacher's one-step Euler map.

Discretisation: the Karras grid (σ_min 0.002, σ_max 80, ρ 7, in σ = b/a) of N + 1 times from t = 1 to 0
(genlab.samplers' `karras` grid), with N doubling from `n_start` to `n_end` over `schedule_steps` optimizer steps
(iCT's curriculum). A pair of neighbours t_{n+1} > t_n is drawn with iCT's log-normal weights on σ (P_mean −1.1,
P_std 2.0). With x_{t_{n+1}} = a·x + b·ε:
- distillation (`mode: distill`): x̃_{t_n} = one DDIM/Euler step of the guided teacher (Heun with `solver: heun`);
- training (`mode: train`): x̃_{t_n} = a(t_n)·x + b(t_n)·ε, the same ε (no teacher; from the teacher's weights
  this is easy consistency tuning, from random weights improved consistency training);
loss = λ(t)·d(f_θ(x_{t_{n+1}}, t_{n+1}), f_θ⁻(x̃_{t_n}, t_n)) with λ = 1/(t_{n+1} − t_n) and the pseudo-Huber
distance d(u, v) = √(‖u − v‖²/D + c²) − c (c = `huber_c`, iCT's 0.00054·√D in per-dimension units).
The target θ⁻ is the stop-gradient of θ (iCT; `target_ema: 0`) or an EMA of θ updated after each step.
Sampling (multistep consistency sampling): x = f(ε, 1), then for each later time τ of `steps` uniform times,
x = f(a(τ)·x + b(τ)·z, τ) with fresh noise z; NFE = steps.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from genlab.constraints import NonNegFloat, PositiveInt, Probability, require
from genlab.errors import GenlabError
from genlab.methods.base import randn
from genlab.methods.student import StudentConfig, StudentMethod, ddim_step
from genlab.paths import bcast, to_x_eps
from genlab.samplers import time_grid
from genlab.samplers.grids import path_sigma
from genlab.settings import DEFAULT_SETTINGS, Callback, Samples, SampleSettings, StepInfo

P_MEAN, P_STD = -1.1, 2.0  # iCT's log-normal over σ


@dataclass
class ConsistencyConfig(StudentConfig):
    kind: str = "consistency"
    mode: Literal["distill", "train"] = "distill"
    solver: Literal["euler", "heun"] = "euler"  # the teacher's step (distill)
    n_start: PositiveInt = 10  # discretisation steps N at the start ...
    n_end: PositiveInt = 160  # ... doubling up to this
    schedule_steps: PositiveInt = 1000  # optimizer steps over which N doubles (genlab distill: train.steps)
    huber_c: NonNegFloat = 0.00054  # pseudo-Huber c per √D (0: squared error)
    target_ema: Probability = 0.0  # 0: θ⁻ = stop-gradient θ (iCT); else an EMA of θ with this decay

    def __post_init__(self) -> None:
        require(self.n_end >= self.n_start, "n_end", f"must be >= n_start={self.n_start}, got {self.n_end}")


def discretisation(cfg: ConsistencyConfig, step: int) -> int:
    """iCT's N(k) = min(n_start · 2^⌊k / K'⌋, n_end), K' = ⌊K / (log2(n_end / n_start) + 1)⌋."""
    doublings = math.floor(math.log2(cfg.n_end / cfg.n_start)) + 1
    per = max(1, cfg.schedule_steps // doublings)
    return min(cfg.n_start * 2 ** (step // per), cfg.n_end)


def pair_weights(path, ts: Tensor) -> Tensor:
    """iCT's probability of each neighbour pair (t_{n+1}, t_n) of an ascending grid ts (N + 1,): the log-normal mass
    of log σ between them; (N,)."""
    sig = torch.tensor([path_sigma(path, float(t)) for t in ts], dtype=torch.float64)
    z = (torch.log(sig) - P_MEAN) / (math.sqrt(2) * P_STD)  # log 0 = −inf and log ∞ = inf are fine here
    cdf = torch.erf(z)
    w = cdf[1:] - cdf[:-1]
    return w / w.sum()


class ConsistencyMethod(StudentMethod):
    sample_settings = frozenset({"steps"})
    sampled_by = "multistep consistency sampling (steps = NFE)"

    def __init__(self, cfg: ConsistencyConfig, model_cfg, parts: dict):
        super().__init__(cfg, model_cfg, parts)
        a0, b0 = float(self.path.a(torch.zeros(1))), float(self.path.b(torch.zeros(1)))
        if (a0, b0) != (1.0, 0.0):
            raise GenlabError(f"consistency models need a path with a(0) = 1, b(0) = 0 (rectified, VP), not {cfg.path}")
        self.target_model = copy.deepcopy(self.model).requires_grad_(False) if cfg.target_ema > 0 else None
        self._grids: dict[int, tuple[Tensor, Tensor]] = {}

    def train(self, mode: bool = True):
        super().train(mode)
        if self.target_model is not None:
            self.target_model.train(mode)
        return self

    def grid(self, n: int) -> tuple[Tensor, Tensor]:
        """(ascending times (N + 1,), pair probabilities (N,)) of the N-step discretisation, cached."""
        if n not in self._grids:
            ts = time_grid("karras", n, path=self.path).flip(0)  # 0 = t_0 < ... < t_N = 1
            self._grids[n] = (ts, pair_weights(self.path, ts))
        return self._grids[n]

    def consistency(self, x_t: Tensor, t: Tensor, label: Tensor | None, *, target: bool = False) -> Tensor:
        """f(x_t, t) (the EMA target network's with target=True)."""
        model = self.target_model if target and self.target_model is not None else self.model
        a, b = self.path.a(t), self.path.b(t)
        c_in = torch.rsqrt(a**2 * self.cfg.sigma_data**2 + b**2)
        return to_x_eps(self.path, self.cfg.target, x_t, t, model(x_t * bcast(c_in, x_t), t, label))[0]

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        x, label = batch["x"], batch.get("label") if self.num_classes else None
        n = discretisation(self.cfg, self.step)
        ts, probs = self.grid(n)
        k = torch.multinomial(probs, x.shape[0], replacement=True)  # pair (t_k, t_{k+1}), global RNG
        t_hi, t_lo = ts[k + 1].to(x), ts[k].to(x)
        eps = torch.randn_like(x)
        x_hi = self.noised(x, t_hi, eps)
        with torch.no_grad():
            if self.cfg.mode == "train":
                x_lo = self.noised(x, t_lo, eps)
            else:
                x_lo = self.teacher_step(x_hi, t_hi, t_lo, label)
            target = self.consistency(x_lo, t_lo, label, target=True)
        pred = self.consistency(x_hi, t_hi, label)
        d = (pred - target).pow(2).flatten(1).mean(1)  # per-dimension squared distance (B,)
        c = self.cfg.huber_c
        dist = torch.sqrt(d + c**2) - c if c > 0 else d
        loss = (dist / (t_hi - t_lo)).mean()
        return loss, {"loss": loss.detach(), "N": float(n)}

    @torch.no_grad()
    def teacher_step(self, x_hi: Tensor, t_hi: Tensor, t_lo: Tensor, label: Tensor | None) -> Tensor:
        """The guided teacher's ODE step from t_hi to t_lo (DDIM/Euler, or Heun with the solver 'heun')."""
        x_hat, eps_hat = self.teacher_x_eps(x_hi, t_hi, label)
        x_lo = ddim_step(self.path, x_hat, eps_hat, t_lo)
        if self.cfg.solver == "heun":
            inside = t_lo > 0  # Heun's correction needs the teacher at t_lo; at t = 0 the Euler step is exact
            x_hat2, eps_hat2 = self.teacher_x_eps(x_lo, t_lo, label)
            x_heun = ddim_step(self.path, (x_hat + x_hat2) / 2, (eps_hat + eps_hat2) / 2, t_lo)
            x_lo = torch.where(bcast(inside, x_lo), x_heun, x_lo)
        return x_lo

    @torch.no_grad()
    def after_step(self) -> None:
        if self.target_model is not None:
            for p_t, p in zip(self.target_model.parameters(), self.model.parameters()):
                p_t.lerp_(p, 1 - self.cfg.target_ema)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        cond=None,
        settings: SampleSettings = DEFAULT_SETTINGS,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
    ) -> Samples:
        device, label = self.device, self.labels(cond)
        times = time_grid("uniform", settings.steps, path=self.path)[:-1].tolist()  # 1, ..., > 0
        x = randn((n, *self.shape), generator=generator, device=device)
        for i, tau in enumerate(times):
            t = torch.full((n,), tau, device=device, dtype=x.dtype)
            if i > 0:
                x = self.noised(x, t, randn((n, *self.shape), generator=generator, device=device))
            else:
                x = x * float(self.path.b(torch.ones(1)))
            x = self.consistency(x, t, label)
            if callback is not None:
                callback(StepInfo(step=i, total=len(times), t=tau, x_t=x, x_hat=x))
        return Samples(self.finish(x), len(times), sampler="multistep consistency")
