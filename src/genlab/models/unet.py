"""Small image U-Net denoiser, tuned for CPU training.

Encoder levels at sizes S, S/2, ..., each `num_res_blocks` ResBlocks (one adaptive GroupNorm each,
driven by emb = MLP(sinusoid(1000 t)) + class_table[cond]); one skip per level; a mid block;
a mirrored decoder that concatenates each level's skip. Downsampling is a stride-2 conv; upsampling
is a 1x1 conv at the coarse size then nearest x2. Self-attention only at the configured sizes.

Conditional image-to-image (SR3 / Palette): with `cond_channels` = k > 0 the stem reads [x, image] concatenated
on the channel axis, (B, C + k, S, S), where `image` is the task's input (an upsampled low-res image, a grey
image, a masked image and its mask); the output still has x's C channels. k = 0 builds exactly the plain model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.constraints import Count, Fraction, OptCount, OptPositiveInt, PositiveInt, require
from genlab.errors import GenlabError
from genlab.models.layers import ConditionEmbedding, ResBlock, SelfAttention2d, group_norm, run_block, zero_init_


@dataclass
class UNetConfig:
    kind: str = "unet"
    in_channels: OptPositiveInt = None  # filled from the dataset
    image_size: OptPositiveInt = None  # filled from the dataset
    num_classes: OptCount = None  # 0 = unconditional; filled from the dataset
    channels: PositiveInt = 64  # width of the first level
    channel_mults: tuple[PositiveInt, ...] = (1, 2)  # width multiplier per level; level i has size S / 2**i
    num_res_blocks: PositiveInt = 1  # ResBlocks per level (encoder and decoder each)
    attention_resolutions: tuple[PositiveInt, ...] = ()  # feature-map sizes that get self-attention
    dropout: Fraction = 0.0
    heads: PositiveInt = 4
    cond_channels: Count = 0  # extra input channels read beside x (forward's `image`); 0 = none

    def __post_init__(self) -> None:
        require(len(self.channel_mults) >= 1, "channel_mults", "must list at least one level")


UNET_PRESETS = {
    "tiny": UNetConfig(channels=32, channel_mults=(1, 2), num_res_blocks=1),  # 8x8 digits in seconds
    "small": UNetConfig(channels=64, channel_mults=(1, 2, 2), num_res_blocks=1, attention_resolutions=(8,)),
    "base": UNetConfig(channels=128, channel_mults=(1, 2, 2, 2), num_res_blocks=2, attention_resolutions=(16,)),
}


class Block(nn.Module):
    """A ResBlock, followed by self-attention when the feature map size asks for it."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, *, size: int, cfg: UNetConfig):
        super().__init__()
        self.res = ResBlock(in_ch, out_ch, emb_dim, dropout=cfg.dropout)
        self.attn = SelfAttention2d(out_ch, cfg.heads) if size in cfg.attention_resolutions else None

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        x = self.res(x, emb)  # (B, Cout, H, W)
        return x if self.attn is None else self.attn(x)  # (B, Cout, H, W)


class Upsample(nn.Module):
    """1x1 conv to the finer level's width at the coarse size (4x cheaper than after), then nearest x2."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.proj = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(self.proj(x), scale_factor=2.0, mode="nearest")  # (B, Cout, 2H, 2W)


def _check(cfg: UNetConfig) -> None:
    for name in ("in_channels", "image_size", "num_classes"):
        if getattr(cfg, name) is None:
            raise GenlabError(f"model.{name} is not set: set it in the recipe or let the dataset fill it")
    factor = 2 ** (len(cfg.channel_mults) - 1)
    if cfg.image_size % factor:
        raise GenlabError(
            f"model.image_size={cfg.image_size} must be divisible by {factor} = 2**(len(channel_mults)-1); "
            f"use fewer channel_mults or resize the images"
        )


class UNet(nn.Module):
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        _check(cfg)
        self.cfg = cfg
        widths = [cfg.channels * m for m in cfg.channel_mults]  # level i has size image_size / 2**i
        sizes = [cfg.image_size // 2**i for i in range(len(widths))]
        emb_dim, n = 4 * cfg.channels, cfg.num_res_blocks
        self.embed = ConditionEmbedding(cfg.channels, emb_dim, cfg.num_classes)
        self.stem = nn.Conv2d(cfg.in_channels + cfg.cond_channels, widths[0], 3, padding=1)
        ins = [widths[0], *widths[:-1]]  # encoder input width per level
        self.down = nn.ModuleList(
            nn.ModuleList(Block(c_in if j == 0 else w, w, emb_dim, size=s, cfg=cfg) for j in range(n))
            for c_in, w, s in zip(ins, widths, sizes)
        )
        self.downsample = nn.ModuleList(nn.Conv2d(w, w, 3, stride=2, padding=1) for w in widths[:-1])
        w_mid = widths[-1]
        self.mid = nn.ModuleList(
            [
                Block(w_mid, w_mid, emb_dim, size=sizes[-1], cfg=cfg),
                ResBlock(w_mid, w_mid, emb_dim, dropout=cfg.dropout),
            ]
        )
        self.upsample = nn.ModuleList(Upsample(w_coarse, w) for w, w_coarse in zip(widths, widths[1:]))
        self.up = nn.ModuleList(  # the first block of each level takes [h, skip] concatenated: 2w channels
            nn.ModuleList(Block(2 * w if j == 0 else w, w, emb_dim, size=s, cfg=cfg) for j in range(n))
            for w, s in zip(widths, sizes)
        )
        self.out_norm = group_norm(widths[0])
        self.out = nn.Conv2d(widths[0], cfg.in_channels, 3, padding=1)
        self.activation_checkpointing = False  # recompute each block in the backward pass (genlab.parallel)
        self.init_weights()

    def init_weights(self) -> None:
        """PyTorch defaults for convs and linears; small class table; zero output conv."""
        if self.embed.classes is not None:
            nn.init.normal_(self.embed.classes.weight, std=0.02)
        zero_init_(self.out)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None, image: Tensor | None = None) -> Tensor:
        """x (B, C, S, S), t (B,), cond (B,) labels or None, image (B, cond_channels, S, S) when cond_channels > 0."""
        emb = F.silu(self.embed(t, cond))  # (B, E)
        h = self.stem(self._with_image(x, image))  # (B, C0, S, S)
        skips = []
        for i, level in enumerate(self.down):
            if i > 0:
                h = self.downsample[i - 1](h)  # (B, C_{i-1}, S_i, S_i)
            for block in level:
                h = run_block(block, h, emb, checkpoint=self.activation_checkpointing)  # (B, C_i, S_i, S_i)
            skips.append(h)
        for block in self.mid:
            h = run_block(block, h, emb, checkpoint=self.activation_checkpointing)  # (B, C_last, S_last, S_last)
        for i in reversed(range(len(self.up))):
            if i < len(self.upsample):
                h = self.upsample[i](h)  # (B, C_i, S_i, S_i)
            h = torch.cat([h, skips[i]], dim=1)  # (B, 2 C_i, S_i, S_i)
            for block in self.up[i]:
                h = run_block(block, h, emb, checkpoint=self.activation_checkpointing)  # (B, C_i, S_i, S_i)
        return self.out(F.silu(self.out_norm(h)))  # (B, in_channels, S, S)

    def _with_image(self, x: Tensor, image: Tensor | None) -> Tensor:
        """x, or [x, image] concatenated on the channel axis (B, C + cond_channels, S, S)."""
        k = self.cfg.cond_channels
        if k == 0:
            if image is not None:
                raise GenlabError("this U-Net has cond_channels=0: it takes no input image")
            return x
        if image is None or image.dim() != 4 or image.shape[1] != k or image.shape[-2:] != x.shape[-2:]:
            got = "None" if image is None else tuple(image.shape)
            raise GenlabError(f"the U-Net needs an input image (B, {k}, {x.shape[-2]}, {x.shape[-1]}), got {got}")
        return torch.cat([x, image.to(x.dtype)], dim=1)
