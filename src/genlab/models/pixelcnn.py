"""Gated PixelCNN: p(x | y) = Π_pixels Π_channels p(x_{i,c} | x_{<i}, x_{i,<c}, y), a `levels`-way softmax each.

A vertical stack sees whole rows above (its output is shifted down one row before reaching the
horizontal stack); a horizontal stack sees the pixels left of the current one in its row, so no
blind spot remains. Channels (R, G, B) are ordered within a pixel: features are split into C groups,
and at the current pixel group c sees input channels < c (first layer, mask A) or feature groups ≤ c
(later layers, mask B). Every layer computes tanh(W_f * h + V_f y) ⊙ σ(W_g * h + V_g y).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.constraints import OptCount, OptPositiveInt, PositiveInt, Range, require
from genlab.errors import GenlabError


@dataclass
class PixelCNNConfig:
    kind: str = "pixelcnn"
    in_channels: OptPositiveInt = None
    image_size: OptPositiveInt = None
    num_classes: OptCount = None
    channels: PositiveInt = 64  # features per stack (split into in_channels groups)
    layers: PositiveInt = 6
    kernel_size: PositiveInt = 3  # odd
    levels: Annotated[int, Range(2)] = 256  # values per sub-pixel (256 = 8-bit)
    head_channels: PositiveInt = 128

    def __post_init__(self) -> None:
        require(self.kernel_size % 2 == 1, "kernel_size", f"must be odd, got {self.kernel_size}")
        if self.in_channels:
            require(
                self.channels >= self.in_channels,
                "channels",
                f"must be >= in_channels={self.in_channels}, got {self.channels}",
            )


def channel_groups(n: int, colors: int) -> Tensor:
    """Which colour group each of n channels belongs to: n channels split into `colors` contiguous blocks."""
    return torch.arange(n) * colors // n


class MaskedConv2d(nn.Conv2d):
    """A convolution whose weights are multiplied by a fixed 0/1 mask (a non-persistent buffer)."""

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int], *, mask: Tensor):
        super().__init__(c_in, c_out, kernel, padding=0)
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias)


def horizontal_mask(g_in: Tensor, g_out: Tensor, width: int, *, first: bool) -> Tensor:
    """Mask of a (1, width) kernel whose last tap is the current pixel: earlier taps are free; at the
    current pixel output group c sees input groups < c (first layer) or <= c (later layers)."""
    mask = torch.ones(len(g_out), len(g_in), 1, width)
    allowed = g_in[None, :] < g_out[:, None] if first else g_in[None, :] <= g_out[:, None]
    mask[:, :, 0, -1] = allowed.float()
    return mask


def gate(h: Tensor) -> Tensor:
    a, b = h.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    def __init__(self, c_in: int, p: int, colors: int, k: int, num_classes: int, *, first: bool):
        super().__init__()
        self.first, self.k = first, k
        g_in = torch.arange(c_in) if first else channel_groups(p, colors)
        g2 = channel_groups(p, colors).repeat(2)  # gate halves share groups
        self.v = nn.Conv2d(c_in, 2 * p, (k // 2 + 1, k))
        self.h = MaskedConv2d(c_in, 2 * p, (1, k // 2 + 1), mask=horizontal_mask(g_in, g2, k // 2 + 1, first=first))
        self.link = nn.Conv2d(2 * p, 2 * p, 1)
        self.h_out = MaskedConv2d(
            p, p, (1, 1), mask=horizontal_mask(channel_groups(p, colors), channel_groups(p, colors), 1, first=False)
        )
        self.cond = nn.Embedding(num_classes + 1, 4 * p)  # class bias for both stacks; row num_classes = null

    def forward(self, v: Tensor, h: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        k = self.k
        cv, ch = self.cond(cond)[:, :, None, None].chunk(2, dim=1)
        v_pre = self.v(F.pad(v, (k // 2, k // 2, k // 2, 0)))  # rows i-k//2..i, cols j-k//2..j+k//2
        v_down = F.pad(v_pre, (0, 0, 1, 0))[:, :, :-1]  # shift down: only rows strictly above
        h_pre = self.h(F.pad(h, (k // 2, 0, 0, 0))) + self.link(v_down)
        h_new = self.h_out(gate(h_pre + ch))
        return gate(v_pre + cv), h_new if self.first else h + h_new


class PixelCNN(nn.Module):
    """forward(x, cond) -> logits (B, C, levels, H, W); x (B, C, H, W) in [-1, 1]."""

    def __init__(self, cfg: PixelCNNConfig):
        super().__init__()
        if cfg.kernel_size % 2 == 0 or cfg.channels < cfg.in_channels or cfg.levels < 2:
            raise GenlabError("model: pixelcnn needs an odd kernel_size, channels >= in_channels and levels >= 2")
        self.cfg = cfg
        c, p = cfg.in_channels, cfg.channels
        self.num_classes = cfg.num_classes or 0
        self.layers = nn.ModuleList(
            GatedLayer(c if i == 0 else p, p, c, cfg.kernel_size, self.num_classes, first=i == 0)
            for i in range(cfg.layers)
        )
        g_p, g_hd = channel_groups(p, c), channel_groups(cfg.head_channels, c)
        g_out = torch.arange(c * cfg.levels) // cfg.levels
        self.head1 = MaskedConv2d(p, cfg.head_channels, (1, 1), mask=horizontal_mask(g_p, g_hd, 1, first=False))
        self.head2 = MaskedConv2d(
            cfg.head_channels, c * cfg.levels, (1, 1), mask=horizontal_mask(g_hd, g_out, 1, first=False)
        )

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        if cond is None:
            cond = torch.full((x.shape[0],), self.num_classes, device=x.device, dtype=torch.long)
        v = h = x
        for layer in self.layers:
            v, h = layer(v, h, cond)
        out = self.head2(F.elu(self.head1(F.elu(h))))  # (B, C*levels, H, W); ELU keeps every path alive
        return out.unflatten(1, (x.shape[1], self.cfg.levels))
