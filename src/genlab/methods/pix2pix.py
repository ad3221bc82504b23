"""pix2pix (Isola et al. 2017): a conditional GAN with an L1 term, on a paired task made from clean photos.

Task `colorize`: the source is the luminance s = grey(y) of the colour image y (genlab.edit.degrade.grey), and the
U-Net G(s) predicts y. Objective (paper eq. 4), by the `objective` switch of its ablation (Table 1):
    G* = arg min_G max_D  L_cGAN(G, D) + λ L_L1(G),      L_L1 = E |y − G(s)|  (mean over pixels),  λ = 100
'l1' keeps only λ·L_L1 (no D is trained: regression, blurry and desaturated where colour is ambiguous), 'cgan'
only the adversarial term, 'l1+cgan' both. The PatchGAN D sees [s, y] (input concatenated) and gives one logit l
per patch; `gan_loss` 'bce' (the paper's): D minimises ½[softplus(−l_real) + softplus(l_fake)] (the ½ slows D
down relative to G, as in the paper), G the non-saturating softplus(−l_fake); 'lsgan' (Mao et al. 2017):
D ½[(l_real − 1)² + l_fake²], G (l_fake − 1)². Noise: dropout in G, also when translating (see models.patchgan).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from genlab.constraints import NonNegFloat
from genlab.edit.degrade import grey
from genlab.errors import GenlabError
from genlab.methods.base import Method
from genlab.methods.gan import disc_loss, frozen, gen_loss
from genlab.models.patchgan import PatchGAN
from genlab.settings import DEFAULT_SETTINGS, Samples, SampleSettings

GanLoss = Literal["bce", "lsgan"]


@dataclass
class Pix2PixConfig:
    kind: str = "pix2pix"
    task: Literal["colorize"] = "colorize"  # grey -> colour
    objective: Literal["l1", "cgan", "l1+cgan"] = "l1+cgan"  # the paper's ablation switch
    gan_loss: GanLoss = "bce"
    l1_weight: NonNegFloat = 100.0  # λ
    conditional: bool = True  # D sees the source concatenated to the image (False: an unconditional GAN term)


def adversarial_d_loss(kind: str, real: Tensor, fake: Tensor) -> Tensor:
    """D's loss from its logits (any shape, e.g. patch maps) on real and fake images, halved as in pix2pix."""
    if kind == "lsgan":
        return 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean())
    return 0.5 * disc_loss("non_saturating", real, fake)


def adversarial_g_loss(kind: str, fake: Tensor) -> Tensor:
    """G's loss from D's logits on its fakes."""
    if kind == "lsgan":
        return (fake - 1).pow(2).mean()
    return gen_loss("non_saturating", fake)


class Pix2PixMethod(Method):
    sampled_by = "translating an input image (one U-Net pass)"
    image_task = "colorize"

    def __init__(self, cfg: Pix2PixConfig, model_cfg):
        super().__init__()
        if model_cfg.kind != "patchgan":
            raise GenlabError(f"method.kind=pix2pix needs model.kind=patchgan, got {model_cfg.kind!r}")
        if model_cfg.in_channels != 3:
            raise GenlabError(
                f"pix2pix colorize needs RGB data, got {model_cfg.in_channels} channels: use data.kind photos"
            )
        self.cfg = cfg
        self.nets = PatchGAN(model_cfg, source_channels=1, conditional=cfg.conditional)
        self.shape = (model_cfg.in_channels, model_cfg.image_size, model_cfg.image_size)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """The shape of one output image (C, H, W)."""
        return self.shape

    @property
    def source_shape(self) -> tuple[int, ...]:
        """The shape of one input image (1, H, W): grey."""
        return (1, *self.shape[1:])

    @property
    def adversarial(self) -> bool:
        return self.cfg.objective != "l1"

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        gen = {"gen": list(self.nets.generator.parameters())}
        return {"disc": list(self.nets.discriminator.parameters()), **gen} if self.adversarial else gen

    def _critic(self, image: Tensor, source: Tensor) -> Tensor:
        return self.nets.discriminator(image, source if self.cfg.conditional else None)  # (B, 1, h, w)

    def loss(self, batch: dict, group: str) -> tuple[Tensor, dict]:
        y = batch["x"]
        source = self.degrade(y)["source"]  # (B, 1, H, W)
        if group == "disc":
            with torch.no_grad():
                fake = self.nets.generator(source)  # (B, 3, H, W), no graph into G
            real_l, fake_l = self._critic(y, source), self._critic(fake, source)
            loss = adversarial_d_loss(self.cfg.gan_loss, real_l, fake_l)
            return loss, {
                "loss/disc": loss.detach(),
                "d_real": real_l.mean().detach(),
                "d_fake": fake_l.mean().detach(),
            }
        if group != "gen":
            raise GenlabError(f"pix2pix has optimizer groups 'disc' and 'gen', not {group!r}")
        fake = self.nets.generator(source)  # (B, 3, H, W)
        l1 = (fake - y).abs().mean()
        logs = {"l1": l1.detach()}
        loss = self.cfg.l1_weight * l1 if self.cfg.objective != "cgan" else fake.new_zeros(())
        if self.adversarial:
            with frozen(self.nets.discriminator):
                adv = adversarial_g_loss(self.cfg.gan_loss, self._critic(fake, source))
            loss = loss + adv
            logs["gan"] = adv.detach()
        logs["loss/gen"] = loss.detach()
        return loss, logs

    # -- image-to-image

    def degrade(self, x: Tensor, *, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """{"source": grey(x)} (B, 1, H, W): the luminance of the colour images x (B, 3, H, W)."""
        return {"source": grey(x)}

    @torch.no_grad()
    def translate(
        self,
        source: Tensor,
        *,
        mask: Tensor | None = None,
        settings: SampleSettings = DEFAULT_SETTINGS,
        generator: torch.Generator | None = None,
    ) -> Samples:
        """Colour images (B, 3, H, W) for grey ones (B, 1, H, W) in [-1, 1] (a colour input is replaced by its
        luminance first); dropout masks from `generator`."""
        if mask is not None:
            raise GenlabError("colorize takes no mask: drop --mask")
        _, h, w = self.shape
        if source.dim() != 4 or source.shape[1] not in (1, 3) or tuple(source.shape[2:]) != (h, w):
            raise GenlabError(
                f"colorize needs grey images (B, 1, {h}, {w}) in [-1, 1], got {tuple(source.shape)}: pass --resize"
            )
        source = source.to(self.device)
        source = grey(source) if source.shape[1] == 3 else source  # (B, 1, H, W)
        out = self.nets.generator(source, generator=generator)
        return Samples(out, 1, self.sampled_by)
