"""An exact Gaussian teacher and small students built without run folders, for the distillation tests."""

from __future__ import annotations

import torch

from genlab.analytic import GaussianMixture
from genlab.methods import METHOD_CONFIGS, METHODS
from genlab.methods.flow import FlowConfig, FlowMethod
from genlab.models.mlp import MLPConfig

MU = torch.tensor([[1.5, -1.0]])
STD = torch.tensor([0.5])


def mlp_cfg(num_classes: int = 0) -> MLPConfig:
    return MLPConfig(dim=2, num_classes=num_classes, hidden=64, depth=2)


class ExactTeacher(FlowMethod):
    """A rectified-flow 'teacher' whose velocity is the exact one of a single Gaussian N(MU, STD²I) (analytic)."""

    def __init__(self):
        super().__init__(FlowConfig(), mlp_cfg())
        self.mixture = GaussianMixture(MU, STD)
        self.exact = self.mixture.flow_fn(self.path)

    def net(self, x_t, t, label):
        return self.exact(x_t, t)


def student(kind: str, teacher, **fields):
    """A method of `kind` with `teacher` handed in as its frozen part (as the run layer does)."""
    cfg = METHOD_CONFIGS[kind](teacher="unused", **fields)
    return METHODS[kind](cfg, mlp_cfg(teacher.num_classes), {"teacher": teacher})


def fit(method, batches, *, steps: int, lr: float = 3e-3, seed: int = 0) -> list[float]:
    """Adam on method.loss over `batches(step)`; the losses."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=lr)
    losses = []
    for step in range(steps):
        method.step = step
        loss, _ = method.loss(batches(step), "model")
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.after_step()
        losses.append(loss.item())
    return losses
