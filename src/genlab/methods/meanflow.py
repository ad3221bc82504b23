"""MeanFlow (Geng, Deng, Bai, Kolter & He 2025): learn the *average* velocity over an interval, so one step jumps.

On the rectified path x_t = (1 − t)·x + t·ε, the average velocity u(x_t, r, t) = (1/(t − r)) ∫_r^t v(x_τ, τ) dτ moves
x_t to x_r = x_t − (t − r)·u exactly. Differentiating (t − r)·u = ∫_r^t v in t gives the MeanFlow identity
    u(x_t, r, t) = v(x_t, t) − (t − r)·d/dt u(x_t, r, t),   d/dt u = v·∂_x u + ∂_t u,
so the network u_θ(x_t, r, t) (the teacher's network with the interval length h = t − r as an extra scalar input)
is trained on the stop-gradient target u_tgt = v − (t − r)·(v·∂_x u_θ + ∂_t u_θ). The total derivative is ONE
forward-mode Jacobian-vector product, `torch.func.jvp` of (x, t, h) ↦ u_θ with tangent (v, 1, 1) (r is fixed,
so h = t − r moves with t; attention runs on its plain-math kernel inside it, the fused ones have no forward-mode
rule) — plain float32
on the CPU (and bf16/GPU); no double backward. v is the guided teacher's velocity at (x_t, t) (`velocity:
teacher`, a distillation with low variance) or the conditional velocity ε − x (`velocity: data`, the paper's
from-data training). (r, t): two logit-normal draws sorted, with r = t for a fraction `equal_fraction` (the
paper's best is 75 %: those examples are plain flow matching). Loss: the paper's adaptive weight,
‖Δ‖² / sg(‖Δ‖² + c)^p with p = `adaptive_p`, Δ = u_θ − u_tgt per example.
Sampling: `steps` uniform intervals, x_r = x_t − (t − r)·u_θ(x_t, r, t); one step is x = ε − u_θ(ε, 0, 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

from genlab.constraints import NonNegFloat, Probability
from genlab.errors import GenlabError
from genlab.methods.base import randn
from genlab.methods.student import StudentConfig, StudentMethod
from genlab.models.layers import add_scalar_input
from genlab.paths import bcast, sample_time, velocity
from genlab.samplers import time_grid
from genlab.settings import DEFAULT_SETTINGS, Callback, Samples, SampleSettings, StepInfo


@dataclass
class MeanFlowConfig(StudentConfig):
    kind: str = "meanflow"
    velocity: Literal["teacher", "data"] = "teacher"
    equal_fraction: Probability = 0.75  # share of examples with r = t
    adaptive_p: NonNegFloat = 1.0  # adaptive loss weight power (0: plain squared error)
    adaptive_c: NonNegFloat = 1e-3


class MeanFlowMethod(StudentMethod):
    sample_settings = frozenset({"steps"})
    sampled_by = "average-velocity jumps (steps = NFE)"

    def __init__(self, cfg: MeanFlowConfig, model_cfg, parts: dict):
        if cfg.path != "rectified" or cfg.target != "flow":
            raise GenlabError("MeanFlow needs path: rectified and target: flow (a teacher trained that way)")
        super().__init__(cfg, model_cfg, parts)
        add_scalar_input(self.model)

    def average_velocity(self, x_t: Tensor, t: Tensor, h: Tensor, label: Tensor | None) -> Tensor:
        """u_θ(x_t, r = t − h, t)."""
        c_in = torch.rsqrt((1 - t) ** 2 * self.cfg.sigma_data**2 + t**2)
        return self.model(x_t * bcast(c_in, x_t), torch.stack([t, h], 1), label)

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        x, label = batch["x"], batch.get("label") if self.num_classes else None
        n = x.shape[0]
        a = sample_time(self.cfg.time, n, device=x.device).to(x.dtype)
        b = sample_time(self.cfg.time, n, device=x.device).to(x.dtype)
        t, r = torch.maximum(a, b), torch.minimum(a, b)
        r = torch.where(torch.rand(n, device=x.device) < self.cfg.equal_fraction, t, r)
        eps = torch.randn_like(x)
        x_t = self.noised(x, t, eps)
        if self.cfg.velocity == "teacher":
            v = velocity(self.path, t, *self.teacher_x_eps(x_t, t, label))
        else:
            v = eps - x
        h = t - r

        def u_fn(x_in: Tensor, t_in: Tensor, h_in: Tensor) -> Tensor:
            return self.average_velocity(x_in, t_in, h_in, label)

        ones = torch.ones_like(t)  # d/dt at fixed r: dx/dt = v, dt/dt = 1, dh/dt = 1
        with sdpa_kernel([SDPBackend.MATH]):  # the fused attention kernels have no forward-mode derivative
            u, dudt = torch.func.jvp(u_fn, (x_t, t, h), (v, ones, ones))
        u_tgt = (v - bcast(h, v) * dudt).detach()
        sq = (u - u_tgt).pow(2).flatten(1).mean(1)  # (B,)
        w = (sq.detach() + self.cfg.adaptive_c) ** self.cfg.adaptive_p if self.cfg.adaptive_p > 0 else 1.0
        loss = (sq / w).mean()
        return loss, {"loss": loss.detach(), "mse": sq.detach().mean()}

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
        ts = time_grid("uniform", settings.steps, path=self.path).tolist()  # 1, ..., 0
        x = randn((n, *self.shape), generator=generator, device=device)
        for i, (t_hi, t_lo) in enumerate(zip(ts[:-1], ts[1:])):
            t = torch.full((n,), t_hi, device=device, dtype=x.dtype)
            x = x - (t_hi - t_lo) * self.average_velocity(x, t, torch.full_like(t, t_hi - t_lo), label)
            if callback is not None:
                callback(StepInfo(step=i, total=len(ts) - 1, t=t_lo, x_t=x, x_hat=None))
        return Samples(self.finish(x), len(ts) - 1, sampler="meanflow jumps")
