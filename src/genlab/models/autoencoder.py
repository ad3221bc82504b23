"""Convolutional KL autoencoder (the first stage of latent diffusion) and a PatchGAN discriminator.

Encoder: x (B,C,S,S) -> residual conv levels with stride-2 downsampling -> (mean, log σ²) of a diagonal
Gaussian q(z|x) over (B, latent_channels, S/2^k, S/2^k). Decoder mirrors it (nearest x2 + conv).
`scale_factor` (a buffer, saved with the weights) is 1/std of the latent means on training data, so the
second stage works with unit-scale latents z·scale_factor (Rombach et al. 2022).
PatchGAN (Isola et al. 2017): a conv net whose output is one real/fake logit per receptive-field patch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from genlab.constraints import OptPositiveInt, PositiveInt, require
from genlab.errors import GenlabError
from genlab.models.layers import group_norm


@dataclass
class AutoencoderConfig:
    kind: str = "autoencoder"
    in_channels: OptPositiveInt = None  # filled from the dataset
    image_size: OptPositiveInt = None  # filled from the dataset
    channels: tuple[PositiveInt, ...] = (32, 64, 64)  # width per level; len - 1 downsamplings (32x32 -> 8x8)
    latent_channels: PositiveInt = 4

    def __post_init__(self) -> None:
        require(len(self.channels) >= 1, "channels", "must list at least one width")

    def latent_shape(self) -> tuple[int, int, int]:
        factor = 2 ** (len(self.channels) - 1)
        return (self.latent_channels, self.image_size // factor, self.image_size // factor)


def _norm(ch: int) -> nn.GroupNorm:
    """GroupNorm with at most 4 groups: one channel per group (instance norm) would erase each image's colours."""
    return group_norm(ch, max_groups=4)


class ConvBlock(nn.Module):
    """x + conv(SiLU(GN(conv(SiLU(GN(x)))))), with a 1x1 skip when the width changes."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.body = nn.Sequential(
            _norm(in_ch),
            nn.SiLU(),
            nn.Conv2d(in_ch, out_ch, 3, padding=1),
            _norm(out_ch),
            nn.SiLU(),
            nn.Conv2d(out_ch, out_ch, 3, padding=1),
        )
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x) + self.body(x)  # (B, out_ch, H, W)


def _head(ch: int, out: int) -> nn.Sequential:
    return nn.Sequential(_norm(ch), nn.SiLU(), nn.Conv2d(ch, out, 3, padding=1))


class Autoencoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        if cfg.in_channels is None or cfg.image_size is None:
            raise GenlabError("model.in_channels / image_size are not set: let the dataset fill them")
        factor = 2 ** (len(cfg.channels) - 1)
        if cfg.image_size % factor:
            raise GenlabError(f"model.image_size={cfg.image_size} must be divisible by {factor}: use fewer channels")
        self.cfg = cfg
        ch = cfg.channels
        enc: list[nn.Module] = [nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)]
        for i in range(len(ch)):
            enc.append(ConvBlock(ch[max(i - 1, 0)], ch[i]))
            if i < len(ch) - 1:
                enc.append(nn.Conv2d(ch[i], ch[i], 3, stride=2, padding=1))
        enc += [ConvBlock(ch[-1], ch[-1]), _head(ch[-1], 2 * cfg.latent_channels)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, ch[-1], 3, padding=1), ConvBlock(ch[-1], ch[-1])]
        for i in reversed(range(len(ch))):
            dec.append(ConvBlock(ch[min(i + 1, len(ch) - 1)], ch[i]))
            if i > 0:
                dec += [nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(ch[i], ch[i], 3, padding=1)]
        dec.append(_head(ch[0], cfg.in_channels))
        self.decoder = nn.Sequential(*dec)
        self.register_buffer("scale_factor", torch.ones(()))
        self.init_weights()

    def init_weights(self) -> None:
        """PyTorch's default init, except log σ² starts at -6: with σ = 1 the decoder would first see mostly noise."""
        nn.init.constant_(self.encoder[-1][-1].bias[self.cfg.latent_channels :], -6.0)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, logvar) of q(z|x), each (B, latent_channels, h, w); logvar clamped to [-30, 20]."""
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)  # (B, C, S, S), unbounded (trained towards [-1, 1])

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction through the posterior mean."""
        return self.decode(self.encode(x)[0])


class PatchDiscriminator(nn.Module):
    """Stride-2 convs then a 1-channel conv: (B, C, S, S) -> (B, 1, S/2^layers, S/2^layers) logits."""

    def __init__(self, in_channels: int, *, channels: int = 32, layers: int = 2):
        super().__init__()
        mods: list[nn.Module] = []
        ch_in = in_channels
        for i in range(layers):
            ch = channels * 2**i
            mods += [
                nn.Conv2d(ch_in, ch, 4, stride=2, padding=1),
                group_norm(ch) if i else nn.Identity(),
                nn.LeakyReLU(0.2),
            ]
            ch_in = ch
        mods += [
            nn.Conv2d(ch_in, ch_in, 3, padding=1),
            group_norm(ch_in),
            nn.LeakyReLU(0.2),
            nn.Conv2d(ch_in, 1, 3, padding=1),
        ]
        self.net = nn.Sequential(*mods)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (B, 1, h, w) patch logits


def kl_to_standard(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, e^logvar) || N(0, I)) summed over latent dims: (B,)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).flatten(1).sum(1)


def psnr_db(mse: Tensor) -> Tensor:
    """PSNR in dB of a mean squared error between images in [-1, 1] (peak-to-peak 2): 10·log10(4 / MSE)."""
    return 10 * torch.log10(4.0 / mse.clamp_min(1e-12))


@torch.no_grad()
def latent_scale(model: Autoencoder, x: Tensor, *, batch: int = 256) -> Tensor:
    """1 / std of the posterior means of x (all latent entries pooled)."""
    means = torch.cat([model.encode(x[i : i + batch])[0] for i in range(0, len(x), batch)])
    return 1.0 / means.float().std().clamp_min(1e-8)


__all__ = ["Autoencoder", "AutoencoderConfig", "PatchDiscriminator", "kl_to_standard", "latent_scale", "psnr_db"]
