"""Pixel autoregression with a gated PixelCNN: exact discrete likelihood, pixel-by-pixel sampling.

x ∈ [-1, 1] on the 8-bit grid maps to u = round((x + 1)/2 · (L − 1)) ∈ {0, …, L−1} (L = levels = 256:
genlab.data.images' uint8 mapping). log p(x | y) = Σ_{i,c} log softmax(f(x, y)_{i,c})[u_{i,c}] is the
exact log-probability of x's bin (nats); the loss is its negative mean, divided by D·ln 2 it is bits/dim.
Labels become the null class with probability `label_dropout` so that unconditional sampling works.
Sampling fills pixels in raster order (channels in order within a pixel), one network call each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.constraints import Count, PositiveFloat, Probability, TopP
from genlab.methods.base import AR_SETTINGS, Method, drop_labels, no_options
from genlab.models import build_model
from genlab.models.transformer import sample_logits
from genlab.settings import DEFAULT_SETTINGS, Callback, Samples, SampleSettings, StepInfo


@dataclass
class PixelCNNMethodConfig:
    kind: str = "pixelcnn"
    label_dropout: Probability = 0.1
    temperature: PositiveFloat = 1.0  # sampling defaults
    top_k: Count = 0  # 0: all levels
    top_p: TopP = 1.0


class PixelCNNMethod(Method):
    likelihood = "exact"
    sample_settings = AR_SETTINGS
    sampled_by = "ancestral sampling (one sub-pixel per pass)"

    def __init__(self, cfg: PixelCNNMethodConfig, model_cfg):
        super().__init__()
        self.cfg = cfg
        self.model = build_model(model_cfg)
        self.levels = model_cfg.levels
        self.shape = (model_cfg.in_channels, model_cfg.image_size, model_cfg.image_size)
        self.num_classes = model_cfg.num_classes or 0

    def to_index(self, x: Tensor) -> Tensor:
        return ((x.clamp(-1, 1) + 1) * (self.levels - 1) / 2).round().long()

    def to_image(self, u: Tensor) -> Tensor:
        return u.float() / ((self.levels - 1) / 2) - 1  # for 256 levels exactly uint8_to_tensor

    @torch.no_grad()
    def log_likelihood(self, x: Tensor, cond: Tensor | None = None, *, stats: dict | None = None, **opts) -> Tensor:
        no_options(self, opts)
        return self.log_prob(x.to(self.device), None if cond is None else cond.to(self.device))

    def log_prob(self, x: Tensor, label: Tensor | None = None) -> Tensor:
        """Differentiable log p(x | label) in nats, (B,): the 8-bit bin's exact probability."""
        u = self.to_index(x)
        logits = self.model(self.to_image(u).to(x.dtype), label)  # (B, C, L, H, W)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 autocast -> float32
        logp = logits.log_softmax(2).gather(2, u[:, :, None]).squeeze(2)  # (B, C, H, W)
        return logp.flatten(1).sum(1)

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        x = batch["x"]
        label = drop_labels(batch.get("label"), self.num_classes, self.cfg.label_dropout)
        nll = -self.log_prob(x, label).mean()
        bpd = nll / (x[0].numel() * math.log(2))
        return bpd, {"loss": bpd.detach(), "bits_per_dim": bpd.detach(), "nll_nats": nll.detach()}

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        cond: Tensor | None = None,
        settings: SampleSettings = DEFAULT_SETTINGS,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
    ) -> Samples:
        """n images, pixel by pixel (None settings: the recipe's temperature / top_k / top_p)."""
        device = self.device
        c, h, w = self.shape
        label = None if cond is None else cond.to(device)
        opts = {k: getattr(self.cfg, k) if v is None else v for k, v in settings.as_dict(AR_SETTINGS).items()}
        u = torch.zeros(n, c, h, w, dtype=torch.long, device=device)
        for i in range(h):
            for j in range(w):
                for ch in range(c):
                    logits = self.model(self.to_image(u), label)[:, ch, :, i, j]  # (n, L)
                    u[:, ch, i, j] = sample_logits(logits, generator=generator, **opts)
            if callback is not None:
                callback(StepInfo(step=i, total=h, t=None, x_t=None, x_hat=self.to_image(u)))
        return Samples(self.to_image(u), h * w * c, self.sampled_by)
