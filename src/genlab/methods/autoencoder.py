"""KL-regularised autoencoder with a PatchGAN adversarial term (VAE + GAN, Esser et al. 2021's recipe).

'model' group: z = μ + σ·ε from q(z|x); loss = |x − D(z)| (or squared) per pixel + kl_weight·KL(q‖N(0,I))/pixels
+ adv_weight·G-loss of the PatchGAN on D(z), the last term only from step `disc_start` on.
'disc' group (from `disc_start`): hinge (or non-saturating) loss on real x vs reconstructions.
Before each checkpoint the trainer calls `calibrate(data)`, which stores scale_factor = 1/std(μ) on training
images, so latent methods read unit-scale latents μ·scale_factor from the saved weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from genlab.constraints import Count, NonNegFloat, PositiveInt
from genlab.errors import GenlabError
from genlab.methods.base import Method, randn
from genlab.methods.gan import disc_loss, frozen, gen_loss
from genlab.metrics.image import psnr
from genlab.models.autoencoder import Autoencoder, PatchDiscriminator, kl_to_standard, latent_scale
from genlab.settings import DEFAULT_SETTINGS, Callback, Samples, SampleSettings


@dataclass
class AutoencoderMethodConfig:
    kind: str = "autoencoder"
    reconstruction: Literal["l1", "l2"] = "l1"
    kl_weight: NonNegFloat = 1e-4  # on the KL in nats per pixel
    adv_weight: NonNegFloat = 0.05
    adv_loss: Literal["hinge", "non_saturating"] = "hinge"
    disc_start: Count = 500  # trainer step at which the adversarial terms switch on
    disc_channels: PositiveInt = 32
    disc_layers: PositiveInt = 2
    calibration_images: PositiveInt = 2048  # training images used for the latent scale factor


class AutoencoderMethod(Method):
    sampled_by = "decoding prior draws (one pass)"
    model_kind = "autoencoder"  # genlab.methods.video_autoencoder: "video_autoencoder"

    def __init__(self, cfg: AutoencoderMethodConfig, model_cfg):
        super().__init__()
        if model_cfg.kind != self.model_kind:
            raise GenlabError(f"method.kind={cfg.kind} needs model.kind={self.model_kind}, got {model_cfg.kind!r}")
        self.cfg = cfg
        self.ae = self.build_autoencoder(model_cfg)
        self.disc = PatchDiscriminator(model_cfg.in_channels, channels=cfg.disc_channels, layers=cfg.disc_layers)
        self.latent_shape = model_cfg.latent_shape()

    def build_autoencoder(self, model_cfg) -> nn.Module:
        return Autoencoder(model_cfg)

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"model": list(self.ae.parameters()), "disc": list(self.disc.parameters())}

    @property
    def adversarial(self) -> bool:
        return self.cfg.adv_weight > 0 and self.step >= self.cfg.disc_start

    def _posterior_sample(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mean, logvar = (v.float() for v in self.ae.encode(x))  # fp32 under bf16 autocast (noise, KL)
        return mean + (0.5 * logvar).exp() * torch.randn_like(mean), mean, logvar

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        x = batch["x"]
        if group == "disc":
            return self._disc_loss(x)
        z, mean, logvar = self._posterior_sample(x)
        xr = self.ae.decode(z)
        err = (xr - x).abs() if self.cfg.reconstruction == "l1" else (xr - x).pow(2)
        rec = err.mean()
        kl = kl_to_standard(mean, logvar).mean() / x[0].numel()
        loss = rec + self.cfg.kl_weight * kl
        logs = {
            "loss_rec": rec.detach(),
            "kl": kl.detach(),
            "psnr": psnr(xr.detach().flatten(0, -4), x.flatten(0, -4)).mean(),
        }
        if self.adversarial:
            with frozen(self.disc):
                g = gen_loss(self.cfg.adv_loss, self.disc(xr))
            loss = loss + self.cfg.adv_weight * g
            logs["gen"] = g.detach()
        logs["loss"] = loss.detach()
        return loss, logs

    def _disc_loss(self, x: Tensor) -> tuple[Tensor, dict]:
        if not self.adversarial:  # a zero loss keeps the group's optimizer state well defined
            return sum(p.sum() for p in self.disc.parameters()) * 0.0, {}
        with torch.no_grad():
            xr = self.ae.decode(self._posterior_sample(x)[0])
        d = disc_loss(self.cfg.adv_loss, self.disc(x), self.disc(xr))
        return d, {"disc": d.detach()}

    @torch.no_grad()
    def calibrate(self, data) -> None:
        """scale_factor = 1 / std of the latent means of the first `calibration_images` training images."""
        x = data.x[: self.cfg.calibration_images].to(self.ae.scale_factor.device)
        self.ae.scale_factor.copy_(latent_scale(self.ae, x))

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        return self.ae(x).clamp(-1, 1)

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
        """Decodes of z ~ N(0, I) / scale_factor (the latent prior a second stage is fitted to)."""
        z = randn((n, *self.latent_shape), generator=generator, device=self.device)
        return Samples(self.ae.decode(z / self.ae.scale_factor).clamp(-1, 1), 1, self.sampled_by)
