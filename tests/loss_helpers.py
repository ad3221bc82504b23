"""A method's loss on one batch before and after a few Adam steps on it (the noise of the scored loss fixed)."""

from __future__ import annotations

import torch


def loss_before_after(method, batch: dict, steps: int, *, lr: float = 3e-3) -> tuple[float, float]:
    def loss() -> float:
        torch.manual_seed(1)
        with torch.no_grad():
            return float(method.loss(batch)[0])

    before = loss()
    opt = torch.optim.Adam(method.optimizer_groups()["model"], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        method.loss(batch)[0].backward()
        opt.step()
    return before, loss()
