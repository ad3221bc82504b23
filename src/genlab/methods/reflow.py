"""Reflow (rectified flow's straightening, Liu, Gong & Liu 2022): a flow trained on its teacher's own couplings.

The teacher's ODE maps noise ε to a sample x = ODE(ε); `genlab distill --method reflow` draws such (ε, x, label)
pairs once and stores them (`pairs.npz`, with the teacher, its settings and the seed as provenance). The student
(2-RF; distilling a 2-RF run gives 3-RF) learns the conditional flow of the *coupled* pairs,
    x_t = a(t)·x + b(t)·ε,   loss = ‖net(x_t, t) − (c(t)·x + d(t)·ε)‖²,
whose straight paths no longer cross, so its ODE is nearly straight and a few Euler steps follow it.
`one_step: true` is Liu et al.'s distillation stage: train only at t = 1, where one Euler step
x = ε − v(ε, 1) must land on the paired sample (the rectified path's a(1) = 0, b(1) = 1).

Straightness S = E ∫ ‖(ε − x) − v(x_t, t)‖² dt along the model's own ODE (Liu et al.'s measure on the rectified
path, where the straight displacement per unit time is ε − x) is `straightness` in genlab.distill.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from genlab.errors import GenlabError
from genlab.methods.student import StudentConfig, StudentMethod, fixed_times, mse
from genlab.paths import from_x_eps, sample_time


@dataclass
class ReflowConfig(StudentConfig):
    kind: str = "reflow"
    pairs: str = ""  # the .npz of teacher couplings (noise, x, labels) that genlab distill writes
    one_step: bool = False  # Liu et al.'s 1-step distillation: train at t = 1 only


def read_pairs(path: str | Path) -> dict[str, Tensor]:
    """{'noise', 'x', ['labels']} tensors and the provenance dict of a pairs file written by genlab.distill."""
    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"method.pairs={str(path)!r}: no such file; genlab distill --method reflow writes it")
    with np.load(path, allow_pickle=False) as z:
        if "noise" not in z or "x" not in z or z["noise"].shape != z["x"].shape:
            raise GenlabError(f"{path}: a pairs file holds 'noise' and 'x' arrays of one shape; rewrite it")
        out = {k: torch.from_numpy(z[k]) for k in ("noise", "x", "labels") if k in z}
        out["provenance"] = json.loads(str(z["provenance"])) if "provenance" in z else {}
    return out


class ReflowMethod(StudentMethod):
    def __init__(self, cfg: ReflowConfig, model_cfg, parts: dict):
        super().__init__(cfg, model_cfg, parts)
        self._pairs: dict | None = None  # read on first use: sampling a trained student needs no pairs

    def pairs(self) -> dict:
        if self._pairs is None:
            pairs = read_pairs(self.cfg.pairs)
            if tuple(pairs["x"].shape[1:]) != tuple(self.shape):
                raise GenlabError(f"{self.cfg.pairs}: pairs of shape {tuple(pairs['x'].shape[1:])}, model {self.shape}")
            self._pairs = pairs
        return self._pairs

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        device, n = batch["x"].device, batch["x"].shape[0]
        pairs = self.pairs()
        idx = torch.randint(len(pairs["x"]), (n,))  # the trainer seeds the global generator per micro-batch
        x, eps = pairs["x"][idx].to(device), pairs["noise"][idx].to(device)
        label = pairs["labels"][idx].to(device) if "labels" in pairs and self.num_classes else None
        if self.cfg.one_step:
            t = fixed_times(1.0, n, x)
        else:
            t = sample_time(self.cfg.time, n, device=device).to(x.dtype)
        target = from_x_eps(self.path, self.cfg.target, t, x, eps)
        loss = mse(self.net(self.noised(x, t, eps), t, label), target).mean()
        return loss, {"loss": loss.detach()}
