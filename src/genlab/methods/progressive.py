"""Progressive distillation (Salimans & Ho 2022): each round, a student learns to do in one step what its teacher
does in two, halving the sampler's steps (N → N/2 → … ).

Round k's teacher samples with N_k = teacher_steps / 2^k DDIM steps on the uniform grid t_i = i / N_k (Euler on
the rectified path); its student takes N_k / 2 steps. For data x, noise ε and a student step from t = n / N_s to
s = (n − 1) / N_s (n uniform in 1..N_s), the teacher runs two DDIM steps from x_t = a_t·x + b_t·ε:
    x_m = a_m·x̂₁ + b_m·ε̂₁ (m the midpoint),  x_s = a_s·x̂₂ + b_s·ε̂₂,
and the student's estimate x̂ must make one DDIM step land on x_s. With ε̂ = (x_t − a_t·x̂)/b_t that step is
x_s = a_s·x̂ + (b_s/b_t)(x_t − a_t·x̂), so the target is
    x̃ = (x_s − (b_s/b_t)·x_t) / (a_s − (b_s/b_t)·a_t)          (`two_step_target`)
and the loss is w(t)·‖x̂_θ(x_t) − x̃‖² with the paper's truncated-SNR weight w = max(a_t²/b_t², 1).
Round 0's teacher is the frozen teacher run with its guidance; at the end of each round (every `steps_per_round`
optimizer steps) the student's weights become the next round's teacher (`after_step`), kept as a module so a
resumed run continues bit-identically. The student samples with `ddim` (eta 0) on the uniform grid.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.constraints import PositiveInt, require
from genlab.methods.student import StudentConfig, StudentMethod, ddim_step, mse
from genlab.paths import bcast, to_x_eps


@dataclass
class ProgressiveConfig(StudentConfig):
    kind: str = "progressive"
    teacher_steps: PositiveInt = 32  # steps of round 0's teacher; the student of the last round takes
    rounds: PositiveInt = 1  # teacher_steps / 2**rounds steps
    steps_per_round: PositiveInt = 500  # optimizer steps per round (train.steps = rounds · steps_per_round)

    def __post_init__(self) -> None:
        require(
            self.teacher_steps % 2**self.rounds == 0,
            "teacher_steps",
            f"must be divisible by 2**rounds = {2**self.rounds}, got {self.teacher_steps}",
        )


def two_step_target(path, x_t: Tensor, t: Tensor, s: Tensor, x_s: Tensor) -> Tensor:
    """The x̂ whose single DDIM step from (x_t, t) lands on x_s at time s (per-example t, s (B,))."""
    ratio = bcast(path.b(s) / path.b(t), x_t)
    return (x_s - ratio * x_t) / (bcast(path.a(s), x_t) - ratio * bcast(path.a(t), x_t))


class ProgressiveMethod(StudentMethod):
    def __init__(self, cfg: ProgressiveConfig, model_cfg, parts: dict):
        super().__init__(cfg, model_cfg, parts)
        self.round_teacher = copy.deepcopy(self.model).requires_grad_(False).eval()  # rounds >= 1

    def train(self, mode: bool = True):
        super().train(mode)
        self.round_teacher.eval()
        return self

    def round(self, step: int | None = None) -> int:
        """The round the optimizer step `step` (default: the current one) belongs to."""
        step = self.step if step is None else step
        return min(step // self.cfg.steps_per_round, self.cfg.rounds - 1)

    def student_steps(self, round_: int) -> int:
        return self.cfg.teacher_steps // 2 ** (round_ + 1)

    @torch.no_grad()
    def round_teacher_x_eps(self, x_t: Tensor, t: Tensor, label: Tensor | None, round_: int):
        if round_ == 0:
            return self.teacher_x_eps(x_t, t, label)
        a, b = self.path.a(t), self.path.b(t)
        c_in = torch.rsqrt(a**2 * self.cfg.sigma_data**2 + b**2)
        pred = self.round_teacher(x_t * bcast(c_in, x_t), t, label)
        return to_x_eps(self.path, self.cfg.target, x_t, t, pred)

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        x, label = batch["x"], batch.get("label") if self.num_classes else None
        round_ = self.round()
        n_s = self.student_steps(round_)
        k = torch.randint(1, n_s + 1, (x.shape[0],), device=x.device).to(x.dtype)
        t, s = k / n_s, (k - 1) / n_s
        x_t = self.noised(x, t, torch.randn_like(x))
        with torch.no_grad():
            mid = (t + s) / 2
            x_m = ddim_step(self.path, *self.round_teacher_x_eps(x_t, t, label, round_), mid)
            x_s = ddim_step(self.path, *self.round_teacher_x_eps(x_m, mid, label, round_), s)
            target = two_step_target(self.path, x_t, t, s, x_s)
            snr = (self.path.a(t) / self.path.b(t)) ** 2
            w = snr.clamp(min=1.0)
        loss = (w * mse(self.student_x_hat(x_t, t, label), target)).mean()
        return loss, {"loss": loss.detach(), "round": float(round_)}

    @torch.no_grad()
    def after_step(self) -> None:
        """At the end of a round (not the last) the student becomes the next round's teacher."""
        ends_round = (self.step + 1) % self.cfg.steps_per_round == 0
        if ends_round and self.round() < self.cfg.rounds - 1:
            self.round_teacher.load_state_dict(self.model.state_dict())
