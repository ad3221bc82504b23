"""Few-step students of a frozen flow/diffusion teacher: what the distillation methods share.

A student is a flow method (same path, network and data as its teacher) that holds the teacher as a frozen part:
the run layer loads the teacher run when the student's run is created, hands it over, and its weights are saved
with the student (the folder is self-contained). The student starts from the teacher's weights (`init: teacher`)
and learns the teacher's *guided* prediction (scale `teacher_guidance`, the teacher recipe's own by default), so it
samples with one network evaluation per step and no classifier-free guidance (guidance_scale 1). `genlab distill`
(genlab.distill) writes such recipes; the trainer, the run layer, `sample`, `eval` and `compare` treat the result
like any other run.

Teacher steps are DDIM steps in x̂-space on the shared path: from x_t with the teacher's estimate (x̂, ε̂),
x_s = a(s)·x̂ + b(s)·ε̂ (on the rectified path this is exactly an Euler step of the probability-flow ODE).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

import torch
from torch import Tensor

from genlab.constraints import NonEmpty, NonNegFloat, Probability
from genlab.errors import GenlabError
from genlab.methods.flow import FlowConfig, FlowMethod
from genlab.paths import bcast, to_x_eps
from genlab.settings import SampleSettings

#: the method kinds a student can learn from: any run sampled by an ODE/SDE sampler
TEACHER_KINDS = ("flow", "reflow", "progressive", "guidance_distill")


@dataclass
class StudentConfig(FlowConfig):
    kind: str = "student"
    teacher: Annotated[str, NonEmpty()] = "runs/digits-flow"  # the teacher's run folder
    frozen: dict = field(default_factory=dict)  # the teacher's recipe, recorded when the run is created
    teacher_guidance: NonNegFloat = 1.0  # CFG scale of the teacher prediction the student learns (1: none)
    # the times that prediction is guided at (t = 1 is noise; the teacher recipe's sample.guidance_interval)
    teacher_guidance_interval: tuple[Probability, Probability] = (0.0, 1.0)
    init: Literal["teacher", "random"] = "teacher"  # start from the teacher's weights or from scratch
    label_dropout: Probability = 0.0  # a student learns the guided prediction: no null-class training


def ddim_step(path, x_hat: Tensor, eps_hat: Tensor, s: Tensor) -> Tensor:
    """x_s = a(s)·x̂ + b(s)·ε̂ for per-example times s (B,)."""
    return bcast(path.a(s), x_hat) * x_hat + bcast(path.b(s), x_hat) * eps_hat


class StudentMethod(FlowMethod):
    likelihood = None  # a few-step student's ODE is not trained to be a density of the data

    @classmethod
    def frozen_parts(cls, cfg: StudentConfig) -> dict[str, tuple[str, str]]:
        return {"teacher": (cfg.teacher, "|".join(TEACHER_KINDS))}

    def __init__(self, cfg: StudentConfig, model_cfg, parts: dict):
        teacher = parts["teacher"]
        if teacher.path.name != cfg.path:
            raise GenlabError(
                f"method.path={cfg.path!r} but the teacher runs on the {teacher.path.name!r} path: a student shares "
                "its teacher's path (genlab distill sets it)"
            )
        super().__init__(cfg, model_cfg)
        self.teacher = teacher.requires_grad_(False).eval()
        interval = cfg.teacher_guidance_interval
        try:  # the guided prediction the student learns, checked when the run is created
            self.teacher_settings = SampleSettings(guidance_scale=cfg.teacher_guidance, guidance_interval=interval)
        except GenlabError:
            raise GenlabError(
                f"method.teacher_guidance_interval must be [lo, hi] with lo <= hi, got {list(interval)}"
            ) from None
        if cfg.init == "teacher":
            theirs = teacher.model.state_dict()
            if theirs.keys() != self.model.state_dict().keys():
                raise GenlabError(
                    f"the teacher's network does not match model.kind={model_cfg.kind!r} of this recipe: a student "
                    "starting from its teacher uses the teacher's model section (genlab distill copies it)"
                )
            self.model.load_state_dict(theirs)

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()
        return self

    @torch.no_grad()
    def teacher_x_eps(self, x_t: Tensor, t: Tensor, label: Tensor | None) -> tuple[Tensor, Tensor]:
        """The guided teacher's (x̂, ε̂) at (x_t, t) (B,) for labels `label` (None: unconditional)."""
        fn = self.teacher.prediction(len(x_t), label, self.teacher_settings)
        return to_x_eps(self.teacher.path, self.teacher.cfg.target, x_t, t, fn(x_t, t))

    def teacher_evaluations(self) -> int:
        """Network evaluations of the teacher per teacher prediction (2 with classifier-free guidance)."""
        guided = self.teacher.num_classes and self.cfg.teacher_guidance != 1.0
        return 2 if guided else 1

    def labels(self, cond) -> Tensor | None:
        """`cond` as labels on the method's device (None: unconditional), refused for an unconditional run."""
        if cond is None:
            return None
        if not self.num_classes:
            raise GenlabError("this run is unconditional: drop the label")
        return torch.as_tensor(cond, device=self.device)

    def student_x_hat(self, x_t: Tensor, t: Tensor, label: Tensor | None) -> Tensor:
        """The student's estimate of the data x̂ at (x_t, t)."""
        return to_x_eps(self.path, self.cfg.target, x_t, t, self.net(x_t, t, label))[0]

    def noised(self, x: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """x_t = a(t)·x + b(t)·ε."""
        return bcast(self.path.a(t), x) * x + bcast(self.path.b(t), x) * eps


def fixed_times(t: float, n: int, like: Tensor) -> Tensor:
    """(n,) times equal to t, in `like`'s dtype and device."""
    return torch.full((n,), t, dtype=like.dtype, device=like.device)


def mse(a: Tensor, b: Tensor) -> Tensor:
    """Per-example mean squared error, (B,)."""
    return (a - b).pow(2).flatten(1).mean(1)
