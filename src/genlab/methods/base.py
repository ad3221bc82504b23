"""The contract every family implements, so that one trainer serves them all.

A method owns its networks and says how they learn (`loss` per optimizer group, which the trainer
steps in turn) and how they sample. Randomness comes from torch's global generator, which the
trainer seeds from (seed, step, group, micro-batch) before each loss call.
"""

from __future__ import annotations

from torch import Tensor, nn


class Method(nn.Module):
    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        """{'model': [...]} or several groups (e.g. {'gen': ..., 'disc': ...}), stepped in order."""
        return {"model": [p for p in self.parameters() if p.requires_grad]}

    def loss(self, batch: dict, group: str) -> tuple[Tensor, dict]:
        """Scalar loss for `group` on one micro-batch, plus detached scalars to log."""
        raise NotImplementedError

    def sample(self, n: int, *, label: Tensor | None = None, **opts) -> Tensor:
        """n samples (images in [-1, 1] as (n, C, H, W), vectors as (n, D))."""
        raise NotImplementedError
