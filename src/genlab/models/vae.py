"""Encoder / decoder pairs for VAEs: q(z|x, y) = N(μ(x, y), diag σ²(x, y)) and p(x|z, y) with mean and log-scale.

`encode(x, cond) -> (mu, logvar)`, `decode(z, cond) -> (mean, log_scale)`; cond (B,) int64 where the value
`num_classes` is the null (unconditional) class, and None means null everywhere. ConvVAE (images): a stride-2 conv
encoder of ResBlocks modulated by a class embedding, a linear bottleneck, and a mirrored nearest-upsampling
decoder. MLPVAE (vectors): x or z concatenated with the class embedding through `depth` SiLU layers (depth 0 is
linear). decoder_scale: 'predicted' (one log-scale per output value from the decoder) or 'learned' (a free
log-scale per dimension, shared by all z).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.constraints import Count, OneOf, OptCount, OptPositiveInt, PositiveInt, require
from genlab.errors import GenlabError
from genlab.models.layers import ResBlock, group_norm, zero_init_

MIN_LOG_SCALE = -7.0  # decoder scale floor, e^-7 ≈ 1e-3: well below one 8-bit bin (2/255)
DECODER_SCALES = ("predicted", "learned")


@dataclass
class ConvVAEConfig:
    kind: str = "conv_vae"
    in_channels: OptPositiveInt = None  # filled from the dataset
    image_size: OptPositiveInt = None  # filled from the dataset
    num_classes: OptCount = None  # 0 = unconditional; filled from the dataset
    channels: PositiveInt = 32  # width of the first level
    channel_mults: tuple[PositiveInt, ...] = (1, 2)  # level i has size image_size / 2**i
    latent_dim: PositiveInt = 16
    class_dim: PositiveInt = 64  # class embedding width (drives every ResBlock's scale/shift)
    decoder_scale: Annotated[str, OneOf(DECODER_SCALES)] = "predicted"

    def __post_init__(self) -> None:
        require(len(self.channel_mults) >= 1, "channel_mults", "must list at least one level")


@dataclass
class MLPVAEConfig:
    kind: str = "mlp_vae"
    dim: OptPositiveInt = None  # filled from the dataset
    num_classes: OptCount = None  # filled from the dataset
    hidden: PositiveInt = 128
    depth: Count = 2  # hidden layers in the encoder and in the decoder; 0 = linear
    latent_dim: PositiveInt = 2
    class_dim: PositiveInt = 16
    decoder_scale: Annotated[str, OneOf(DECODER_SCALES)] = "learned"


def _check(cfg, names: tuple[str, ...]) -> None:
    for name in names:
        if getattr(cfg, name) is None:
            raise GenlabError(f"model.{name} is not set: set it in the recipe or let the dataset fill it")
    if cfg.decoder_scale not in DECODER_SCALES:
        raise GenlabError(f"model.decoder_scale={cfg.decoder_scale!r}: use one of {', '.join(DECODER_SCALES)}")


class _Labelled(nn.Module):
    """Shared by both pairs: the class tables (null row included) and the decoder scale."""

    def _init_labels(self, num_classes: int, class_dim: int) -> None:
        self.num_classes = num_classes
        self.enc_classes = nn.Embedding(num_classes + 1, class_dim)
        self.dec_classes = nn.Embedding(num_classes + 1, class_dim)
        for table in (self.enc_classes, self.dec_classes):
            nn.init.normal_(table.weight, std=0.02)

    def _labels(self, cond: Tensor | None, like: Tensor) -> Tensor:
        if cond is None:
            return torch.full((like.shape[0],), self.num_classes, dtype=torch.long, device=like.device)
        return cond

    def _scale(self, out: Tensor, learned: Tensor | None) -> tuple[Tensor, Tensor]:
        """(mean, log_scale) from the decoder output: halves of `out`, or `out` and the learned log-scale."""
        if learned is None:
            mean, log_scale = out.chunk(2, dim=1)
        else:
            mean, log_scale = out, learned.expand_as(out)
        return mean, log_scale.clamp(min=MIN_LOG_SCALE)


class ConvVAE(_Labelled):
    def __init__(self, cfg: ConvVAEConfig):
        super().__init__()
        _check(cfg, ("in_channels", "image_size", "num_classes"))
        factor = 2 ** (len(cfg.channel_mults) - 1)
        if cfg.image_size % factor:
            raise GenlabError(
                f"model.image_size={cfg.image_size} must be divisible by {factor}: use fewer "
                "channel_mults or resize the images"
            )
        self.cfg = cfg
        widths = [cfg.channels * m for m in cfg.channel_mults]
        self.bottom = (widths[-1], cfg.image_size // factor, cfg.image_size // factor)  # (C, s, s)
        flat = widths[-1] * self.bottom[1] ** 2
        self._init_labels(cfg.num_classes, cfg.class_dim)
        self.stem = nn.Conv2d(cfg.in_channels, widths[0], 3, padding=1)
        self.enc = nn.ModuleList(ResBlock(w_in, w, cfg.class_dim) for w_in, w in zip([widths[0], *widths], widths))
        self.down = nn.ModuleList(nn.Conv2d(w, w, 3, stride=2, padding=1) for w in widths[:-1])
        self.to_latent = nn.Linear(flat, 2 * cfg.latent_dim)
        self.from_latent = nn.Linear(cfg.latent_dim, flat)
        self.dec = nn.ModuleList(ResBlock(w, w, cfg.class_dim) for w in reversed(widths))
        self.up = nn.ModuleList(nn.Conv2d(w, w_out, 3, padding=1) for w, w_out in zip(widths[:0:-1], widths[-2::-1]))
        self.out_norm = group_norm(widths[0])
        learned = cfg.decoder_scale == "learned"
        self.out = nn.Conv2d(widths[0], cfg.in_channels * (1 if learned else 2), 3, padding=1)
        shape = (1, cfg.in_channels, cfg.image_size, cfg.image_size)
        self.log_scale = nn.Parameter(torch.zeros(shape)) if learned else None
        self.init_weights()

    def init_weights(self) -> None:
        """PyTorch defaults; zero output conv (a fresh decoder predicts mean 0, scale 1)."""
        zero_init_(self.out)

    def encode(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        emb = F.silu(self.enc_classes(self._labels(cond, x)))  # (B, E)
        h = self.stem(x)  # (B, C0, S, S)
        for i, block in enumerate(self.enc):
            h = block(h, emb)  # (B, C_i, S_i, S_i)
            if i < len(self.down):
                h = self.down[i](h)  # (B, C_i, S_i / 2, S_i / 2)
        mu, logvar = self.to_latent(h.flatten(1)).chunk(2, dim=1)  # each (B, latent)
        return mu, logvar

    def decode(self, z: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        emb = F.silu(self.dec_classes(self._labels(cond, z)))  # (B, E)
        h = self.from_latent(z).view(-1, *self.bottom)  # (B, C_last, s, s)
        for i, block in enumerate(self.dec):
            h = block(h, emb)  # (B, C, s', s')
            if i < len(self.up):
                h = self.up[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))  # (B, C_next, 2s', 2s')
        out = self.out(F.silu(self.out_norm(h)))  # (B, Cin or 2 Cin, S, S)
        return self._scale(out, self.log_scale)


class MLPVAE(_Labelled):
    def __init__(self, cfg: MLPVAEConfig):
        super().__init__()
        _check(cfg, ("dim", "num_classes"))
        self.cfg = cfg
        self._init_labels(cfg.num_classes, cfg.class_dim)
        learned = cfg.decoder_scale == "learned"
        self.enc = self._stack(cfg.dim + cfg.class_dim, 2 * cfg.latent_dim, cfg)
        self.dec = self._stack(cfg.latent_dim + cfg.class_dim, cfg.dim * (1 if learned else 2), cfg)
        self.log_scale = nn.Parameter(torch.zeros(1, cfg.dim)) if learned else None

    @staticmethod
    def _stack(d_in: int, d_out: int, cfg: MLPVAEConfig) -> nn.Sequential:
        layers: list[nn.Module] = []
        for i in range(cfg.depth):
            layers += [nn.Linear(d_in if i == 0 else cfg.hidden, cfg.hidden), nn.SiLU()]
        return nn.Sequential(*layers, nn.Linear(cfg.hidden if cfg.depth else d_in, d_out))

    def encode(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = torch.cat([x, self.enc_classes(self._labels(cond, x))], dim=1)  # (B, D + E)
        mu, logvar = self.enc(h).chunk(2, dim=1)  # each (B, latent)
        return mu, logvar

    def decode(self, z: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = torch.cat([z, self.dec_classes(self._labels(cond, z))], dim=1)  # (B, latent + E)
        return self._scale(self.dec(h), self.log_scale)  # each (B, D)
