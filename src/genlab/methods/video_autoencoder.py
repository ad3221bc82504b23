"""Video KL autoencoder (MovieGen's TAE, small): the image `autoencoder` method's losses on whole videos.

'model' group: z ~ q(z|x) of the causal video autoencoder (genlab.models.video_autoencoder, time compressed by
`model.temporal_factor`, space as the image autoencoder); loss = |x − D(z)| (or squared) per pixel of the video +
kl_weight·KL(q‖N(0,I)) per pixel + adv_weight·G-loss of a PatchGAN applied to every frame (from `disc_start`;
adv_weight 0 switches the discriminator off). 'disc' group: the PatchGAN on real vs reconstructed frames.
`method.init: RUN` inflates an image `autoencoder` run (as MovieGen starts its TAE from its image autoencoder): its
2-D layers are copied into the per-frame layers (same model.channels and latent_channels needed), the temporal
layers keep their start (identity, pair mean, frame repeat), so training starts from that per-frame autoencoder.
`calibrate` stores scale_factor = 1/std(μ) over the first `calibration_images` training videos, so `video_flow`
reads unit-scale latents (B, T/f, c, h, w). `genlab eval` reports the test videos' reconstruction PSNR (mean and per
frame index) and temporal flicker (genlab.metrics.video.reconstruction_scores).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from genlab.constraints import NonNegFloat, PositiveInt
from genlab.errors import GenlabError
from genlab.methods.autoencoder import AutoencoderMethod, AutoencoderMethodConfig
from genlab.models.autoencoder import latent_scale
from genlab.models.video_autoencoder import PerFrame, VideoAutoencoder
from genlab.settings import DEFAULT_SETTINGS, SampleSettings

EVAL_N = 200  # test videos `genlab eval` reconstructs by default


@dataclass
class VideoAutoencoderMethodConfig(AutoencoderMethodConfig):
    kind: str = "video_autoencoder"
    adv_weight: NonNegFloat = 0.0  # the per-frame PatchGAN is off by default (set > 0 and disc_start to use it)
    calibration_images: PositiveInt = 256  # training videos used for the latent scale factor
    init: str = ""  # an image `autoencoder` run to inflate (its 2-D layers copied into every frame's); "": random
    frozen: dict = field(default_factory=dict)  # the init run's recipe, recorded when the run is created


class VideoAutoencoderMethod(AutoencoderMethod):
    model_kind = "video_autoencoder"
    shows_reconstructions = True  # the trainer's grid: each video's frames over their reconstruction

    @classmethod
    def frozen_parts(cls, cfg: VideoAutoencoderMethodConfig) -> dict[str, tuple[str, str]]:
        return {"init": (cfg.init, "autoencoder")} if cfg.init else {}

    def __init__(self, cfg: VideoAutoencoderMethodConfig, model_cfg, parts: dict | None = None):
        super().__init__(cfg, model_cfg)
        self.disc = PerFrame(self.disc)  # the image PatchGAN on every frame: (B, T, 1, h, w) logits
        if parts and "init" in parts:
            self.inflate(parts["init"].ae)

    @torch.no_grad()
    def inflate(self, image_ae: nn.Module) -> None:
        """Copy an image autoencoder's layers into the per-frame layers, in order (module docstring)."""
        for ours, theirs in ((self.ae.encoder, image_ae.encoder), (self.ae.decoder, image_ae.decoder)):
            frame_layers = [m.module for m in ours if isinstance(m, PerFrame)]
            image_layers = [m for m in theirs if any(True for _ in m.parameters())]  # nn.Upsample has none
            frame_layers = [
                m[-1] if isinstance(m, nn.Sequential) and isinstance(m[0], nn.Upsample) else m for m in frame_layers
            ]  # (Upsample, conv) pairs: the conv
            shapes = [[p.shape for p in m.state_dict().values()] for m in frame_layers]
            if shapes != [[p.shape for p in m.state_dict().values()] for m in image_layers]:
                raise GenlabError(
                    f"method.init={self.cfg.init} is an image autoencoder of other model.channels or latent_channels "
                    "than this model: use its values"
                )
            for mine, image in zip(frame_layers, image_layers):
                mine.load_state_dict(image.state_dict())
        self.ae.scale_factor.copy_(image_ae.scale_factor)

    def build_autoencoder(self, model_cfg) -> nn.Module:
        return VideoAutoencoder(model_cfg)

    @torch.no_grad()
    def calibrate(self, data) -> None:
        """scale_factor = 1 / std of the latent means of the first `calibration_images` training videos."""
        x = data.x[: self.cfg.calibration_images].to(self.ae.scale_factor.device)
        self.ae.scale_factor.copy_(latent_scale(self.ae, x, batch=32))

    @torch.no_grad()
    def heldout_metrics(
        self, data, *, seed: int = 0, n: int | None = None, settings: SampleSettings = DEFAULT_SETTINGS
    ) -> dict[str, float]:
        """Reconstruction PSNR (dB; mean and per frame index) and flicker (8-bit levels) of the first n videos."""
        from genlab.metrics.video import reconstruction_scores

        x = data.x[: n or EVAL_N]
        recon = torch.cat([self.reconstruct(c.to(self.device)).cpu() for c in x.split(32)])
        return {**reconstruction_scores(recon, x), "n": len(x)}
