"""Text-to-video by rectified flow over per-frame latents: `latent_flow` with a video DiT (a first step towards
MovieGen's recipe).

Each frame is encoded alone by the frozen KL autoencoder of the images (no temporal compression yet):
z (B, T, c, h, w) = scale·μ(x_f) per frame. The video DiT (genlab.models.video_dit: space-time patches, factorized
or full attention, text cross-attention, adaLN-Zero on t) learns the flow on z exactly as latent_flow does: logit-
normal t (with shift), target eps − z, captions dropped to "" with probability `text_dropout` for classifier-free
guidance. Sampling integrates from noise with guidance and decodes every frame. `genlab eval` runs the motion
checker (genlab.metrics.video) on videos sampled for the test split's captions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.methods.latent import LatentFlowConfig, LatentFlowMethod, Prompts
from genlab.settings import DEFAULT_SETTINGS, SampleSettings

DEFAULT_VIDEO_PROMPTS = (
    "a red circle moving to the right",
    "a blue square falls",
    "a yellow triangle growing",
    "a white circle turns green",
    "a green square moving to the left while an orange circle rises",
    "a cyan triangle shrinks",
)
EVAL_N = 32  # videos `genlab eval` samples by default


@dataclass
class VideoFlowConfig(LatentFlowConfig):
    kind: str = "video_flow"


class VideoFlowMethod(LatentFlowMethod):
    model_kind = "video_dit"
    makes_video = True

    @torch.no_grad()
    def to_latent(self, x: Tensor) -> Tensor:
        """Videos (B, T, C, H, W) -> per-frame latents (B, T, c, h, w)."""
        return super().to_latent(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    @torch.no_grad()
    def from_latent(self, z: Tensor) -> Tensor:
        return super().from_latent(z.flatten(0, 1)).unflatten(0, z.shape[:2])  # (B, T, C, H, W)

    def guidance_inputs(self, n: int, cond, device):
        """As latent_flow; with no prompts, a fixed set of video captions, one per block of rows."""
        if cond is None:
            cond = [DEFAULT_VIDEO_PROMPTS[i * len(DEFAULT_VIDEO_PROMPTS) // n] for i in range(n)]
        elif isinstance(cond, Prompts) and cond.positive is None:
            cond = Prompts(
                [DEFAULT_VIDEO_PROMPTS[i * len(DEFAULT_VIDEO_PROMPTS) // n] for i in range(n)], cond.negative
            )
        return super().guidance_inputs(n, cond, device)

    @property
    def image_shape(self) -> tuple[int, ...]:
        cfg = self.autoencoder.cfg
        return (self.shape[0], cfg.in_channels, cfg.image_size, cfg.image_size)  # (T, C, H, W)

    @torch.no_grad()
    def heldout_metrics(
        self, data, *, seed: int = 0, n: int | None = None, settings: SampleSettings = DEFAULT_SETTINGS
    ) -> dict[str, float]:
        """The motion checker's scores (motion accuracy, per-frame attribute accuracy, consistency) of one video
        sampled for each of the first n captions of `data`, with the run's sample settings."""
        from genlab.metrics.video import video_scores

        captions = list(data.texts[: n or EVAL_N])
        gen = torch.Generator().manual_seed(seed)
        x = torch.cat(
            [
                self.sample(len(part), cond=part, settings=settings, generator=gen).x.cpu()
                for part in (captions[i : i + 64] for i in range(0, len(captions), 64))
            ]
        )
        return {**video_scores(x, captions), "n": len(captions)}
