"""Text-to-video by rectified flow over video latents: `latent_flow` with a video DiT (a first step towards
MovieGen's recipe).

`method.autoencoder` names an image `autoencoder` run, which encodes each frame alone (no temporal compression):
z (B, T, c, h, w) = scale·μ(x_f) per frame, or a `video_autoencoder` run (genlab.models.video_autoencoder,
MovieGen's TAE), which encodes the whole video causally, time compressed by its factor f: z (B, T/f, c, h, w) =
scale·μ(x); the DiT then runs on T/f latent frames. The video DiT (genlab.models.video_dit: space-time patches,
factorized or full attention, text cross-attention, adaLN-Zero on t) learns the flow on z exactly as latent_flow
does: logit-normal t (with shift), target eps − z, captions dropped to "" with probability `text_dropout` for
classifier-free guidance. Sampling integrates from noise with guidance and decodes the latents to frames.
`genlab eval` runs the motion checker (genlab.metrics.video) on videos sampled for the test split's captions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.methods.latent import LatentFlowConfig, LatentFlowMethod, Prompts
from genlab.models.video_autoencoder import VideoAutoencoder
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
    autoencoder_kinds = "autoencoder|video_autoencoder"
    makes_video = True

    def __init__(self, cfg: VideoFlowConfig, model_cfg, parts: dict):
        ae = parts["autoencoder"].ae
        frames = model_cfg.frames  # video frames (the data's); the DiT runs on the latent frames
        temporal = isinstance(ae, VideoAutoencoder)
        if temporal and model_cfg.frames is not None:
            model_cfg = dataclasses.replace(model_cfg, frames=ae.cfg.latent_frames(model_cfg.frames))
        super().__init__(cfg, model_cfg, parts)
        self.frames, self.temporal = frames, temporal

    @torch.no_grad()
    def to_latent(self, x: Tensor) -> Tensor:
        """Videos (B, T, C, H, W) -> latents (B, T, c, h, w) per frame, or (B, T/f, c, h, w) by a video autoencoder."""
        if self.temporal:
            return super().to_latent(x)
        return super().to_latent(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    @torch.no_grad()
    def from_latent(self, z: Tensor) -> Tensor:
        if self.temporal:
            return super().from_latent(z)  # (B, T, C, H, W)
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
        return (self.frames, cfg.in_channels, cfg.image_size, cfg.image_size)  # (T, C, H, W)

    @torch.no_grad()
    def heldout_metrics(
        self, data, *, seed: int = 0, n: int | None = None, settings: SampleSettings = DEFAULT_SETTINGS
    ) -> dict[str, float]:
        """The motion checker's scores (motion accuracy, per-frame attribute accuracy, consistency, identity) of
        one video sampled for each of the first n captions of `data`, with the run's sample settings (when every
        caption is in the videos grammar), and 'fd': the Fréchet distance in the shipped video feature net
        (genlab.metrics.video_features) between those videos and data's first n (for 3-channel 32x32 videos)."""
        from genlab.data.videos import parse_video_caption
        from genlab.metrics.video import video_scores
        from genlab.metrics.video_features import load_video_net, video_fd

        captions = list(data.texts[: n or EVAL_N])
        gen = torch.Generator().manual_seed(seed)
        x = torch.cat(
            [
                self.sample(len(part), cond=part, settings=settings, generator=gen).x.cpu()
                for part in (captions[i : i + 64] for i in range(0, len(captions), 64))
            ]
        )
        out = video_scores(x, captions) if all(parse_video_caption(c) for c in captions) else {}
        net = load_video_net()
        if x.shape[2:] == (net.cfg.in_channels, net.cfg.image_size, net.cfg.image_size) and len(x) >= 2:
            out["fd"] = video_fd(data.x[: len(x)], x, net=net)
        return {**out, "n": len(captions)}
