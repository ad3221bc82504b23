"""Guidance distillation (Meng et al. 2023, stage one): a student that takes the guidance scale w as an input and
matches the teacher's classifier-free-guided prediction in one network evaluation, half the cost of CFG per step.

Target (genlab's CFG convention): p_w = p(x_t, t, ∅) + w·(p(x_t, t, c) − p(x_t, t, ∅)), both teacher halves in one
batched call, with w ~ U[scale_min, scale_max] per example; loss = ‖net(x_t, (t, w), c) − p_w‖². The student is
the teacher's network with a scalar input added (genlab.models.layers.add_scalar_input, which starts at zero, so
the student starts as the teacher's conditional prediction). It samples with any ODE sampler at any
`guidance_scale` in the trained range, one evaluation per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.constraints import NonNegFloat, require
from genlab.errors import GenlabError
from genlab.methods.student import StudentConfig, StudentMethod, mse
from genlab.models.layers import add_scalar_input
from genlab.paths import bcast, from_x_eps, sample_time, to_x_eps
from genlab.samplers import guided_at
from genlab.settings import SampleSettings

SCALE_EMBED = 100.0  # the scale w is embedded as sinusoid(100 w): w in [0, 10] spans the embedding's range


@dataclass
class GuidanceDistillConfig(StudentConfig):
    kind: str = "guidance_distill"
    scale_min: NonNegFloat = 1.0
    scale_max: NonNegFloat = 4.0

    def __post_init__(self) -> None:
        require(self.scale_max >= self.scale_min, "scale_max", f"must be >= scale_min={self.scale_min}")


class GuidanceDistillMethod(StudentMethod):
    def __init__(self, cfg: GuidanceDistillConfig, model_cfg, parts: dict):
        super().__init__(cfg, model_cfg, parts)
        if not self.teacher.num_classes:
            raise GenlabError("guidance distillation needs a class-conditional teacher trained with label dropout")
        add_scalar_input(self.model, scale=SCALE_EMBED)

    def net_w(self, x_t: Tensor, t: Tensor, label: Tensor | None, w: Tensor) -> Tensor:
        """The student's prediction at guidance scale w (B,)."""
        a, b = self.path.a(t), self.path.b(t)
        c_in = torch.rsqrt(a**2 * self.cfg.sigma_data**2 + b**2)
        return self.model(x_t * bcast(c_in, x_t), torch.stack([t, w], 1), label)

    @torch.no_grad()
    def teacher_guided(self, x_t: Tensor, t: Tensor, label: Tensor, w: Tensor) -> Tensor:
        """The teacher's prediction of the student's target, guided with per-example scales w (B,)."""
        net, c, null = self.teacher.guidance_inputs(len(x_t), label, x_t.device)
        cond, uncond = net(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([c, null])).chunk(2)
        guided = uncond + bcast(w, cond) * (cond - uncond)
        x_hat, eps_hat = to_x_eps(self.teacher.path, self.teacher.cfg.target, x_t, t, guided)
        return from_x_eps(self.path, self.cfg.target, t, x_hat, eps_hat)

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        x, label = batch["x"], batch.get("label")
        if label is None:
            raise GenlabError("guidance distillation needs labelled data (the teacher's)")
        n = x.shape[0]
        t = sample_time(self.cfg.time, n, device=x.device).to(x.dtype)
        w = self.cfg.scale_min + (self.cfg.scale_max - self.cfg.scale_min) * torch.rand(n, device=x.device)
        x_t = self.noised(x, t, torch.randn_like(x))
        loss = mse(self.net_w(x_t, t, label, w.to(x.dtype)), self.teacher_guided(x_t, t, label, w)).mean()
        return loss, {"loss": loss.detach()}

    def prediction(self, n: int, cond, settings: SampleSettings) -> Callable:
        """One evaluation per step at the settings' guidance scale inside their guidance interval (no unconditional
        half)."""
        if cond is None:
            raise GenlabError("a guidance-distilled student is class-conditional: give labels")
        label = torch.as_tensor(cond, device=self.device)

        def fn(x_t: Tensor, t: Tensor) -> Tensor:  # outside the guidance interval, w = 1: the conditional prediction
            w = torch.where(guided_at(t, settings.interval), settings.guidance_scale, 1.0).to(t.dtype)
            return self.net_w(x_t, t, label, w)

        return fn
