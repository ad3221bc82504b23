"""The contract every family implements, so that one trainer serves them all.

A method owns its networks and says how they learn (`loss` per optimizer group, which the trainer
steps in turn) and how they sample. Randomness comes from torch's global generator, which the
trainer seeds from (seed, step, group, micro-batch) before each loss call.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def drop_labels(label: Tensor | None, num_classes: int, p: float) -> Tensor | None:
    """Labels with each replaced by the null class `num_classes` with probability p (global RNG): the label
    dropout of classifier-free guidance training (Ho & Salimans 2022). None for unlabelled data."""
    if label is None or num_classes == 0:
        return None
    drop = torch.rand(label.shape, device=label.device) < p
    return torch.where(drop, torch.full_like(label, num_classes), label)


class Method(nn.Module):
    #: what `log_likelihood` returns: "exact", "bound" (a lower bound such as the ELBO) or None (undefined)
    likelihood: str | None = None
    #: False for auxiliary methods that make no data (a noisy classifier): the trainer writes no sample grid
    generates: bool = True
    #: the trainer's step, set before each step (warm-ups such as an adversarial term's start read it)
    step: int = 0

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        """{'model': [...]} or several groups (e.g. {'gen': ..., 'disc': ...}), stepped in order.

        {} marks a closed-form method (EM for a mixture): each step the trainer sums `statistics(micro-batch)`
        over micro-batches and processes and calls `update(sums, rate=learning rate)` instead of `loss`."""
        return {"model": [p for p in self.parameters() if p.requires_grad]}

    def statistics(self, batch: dict) -> dict[str, Tensor]:
        """Closed-form methods: additive statistics of one micro-batch (sums, so they add across processes)."""
        raise NotImplementedError

    def update(self, stats: dict[str, Tensor], *, rate: float) -> dict[str, float]:
        """Closed-form methods: update the buffers from the summed statistics (step size `rate`); logs."""
        raise NotImplementedError

    def loss(self, batch: dict, group: str) -> tuple[Tensor, dict]:
        """Scalar loss for `group` on one micro-batch, plus detached scalars to log."""
        raise NotImplementedError

    def sample(self, n: int, *, label: Tensor | None = None, **opts) -> Tensor:
        """n samples (images in [-1, 1] as (n, C, H, W), vectors as (n, D))."""
        raise NotImplementedError

    def log_likelihood(self, x: Tensor, label: Tensor | None = None) -> Tensor:
        """log p(x) in nats, one value per sample (a lower bound when `likelihood == "bound"`).

        Images (x in [-1, 1] on the 8-bit grid): the log-probability of x's 8-bit bin, so that
        bits/dim = -value / (D·ln 2) compares across families; a continuous density p adds
        D·log(2/255), the bin width of pixel u at x = u/127.5 − 1 (uniform dequantization). Vectors: the log-density.
        """
        raise NotImplementedError(f"{type(self).__name__} defines no likelihood")
