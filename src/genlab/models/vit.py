"""Vision Transformer classifier (ViT, Dosovitskiy et al. 2021), small.

x (B, C, H, W) → patchify into N = (H/p)² non-overlapping p×p patches, each flattened to p·p·C values
(row-major over patches, (py, px, c) inside a patch; `unpatchify` inverts it exactly) → linear to `dim`
→ [CLS] prepended (pool: cls) → + learned positions → pre-LN bidirectional blocks (genlab.models.transformer's
Block) → LN → the [CLS] state (pool: cls) or the mean of the patch states (pool: mean) → linear →
logits (B, num_classes). Used by method.kind classifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from genlab.constraints import Fraction, OptCount, OptPositiveInt, PositiveInt, require
from genlab.errors import GenlabError
from genlab.models.transformer import Block


@dataclass
class ViTConfig:
    kind: str = "vit"
    in_channels: OptPositiveInt = None  # filled from the data
    image_size: OptPositiveInt = None  # filled from the data
    num_classes: OptCount = None  # the outputs; filled from the data's labels
    patch: PositiveInt = 2
    dim: PositiveInt = 64
    depth: PositiveInt = 4
    heads: PositiveInt = 4
    mlp_ratio: PositiveInt = 4
    dropout: Fraction = 0.0
    pool: Literal["cls", "mean"] = "cls"  # cls: the class token's state; mean: the mean of the patch states

    def __post_init__(self) -> None:
        if self.dim >= 1 and self.heads >= 1:
            require(self.dim % self.heads == 0, "dim", f"must be divisible by heads={self.heads}, got {self.dim}")


def patchify(x: Tensor, patch: int) -> Tensor:
    """(B, C, H, W) → (B, (H/p)·(W/p), p·p·C): patches row-major, each flattened in (py, px, c) order."""
    b, c, h, w = x.shape
    if h % patch or w % patch:
        raise GenlabError(f"patch={patch} must divide the image size {h}x{w}: pick a divisor")
    x = x.reshape(b, c, h // patch, patch, w // patch, patch)  # (B, C, gh, py, gw, px)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def unpatchify(tokens: Tensor, patch: int, channels: int) -> Tensor:
    """The inverse of `patchify` for square images: (B, N, p·p·C) → (B, C, √N·p, √N·p)."""
    b, n, d = tokens.shape
    side = int(round(n**0.5))
    if side * side != n or d != patch * patch * channels:
        raise GenlabError(f"cannot unpatchify {n} tokens of width {d} with patch={patch}, channels={channels}")
    x = tokens.reshape(b, side, side, patch, patch, channels)  # (B, gh, gw, py, px, C)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, channels, side * patch, side * patch)


class ViT(nn.Module):
    """forward(x) → logits (B, num_classes); `features(x)` → the pooled, normalised state (B, dim)."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        for name in ("in_channels", "image_size"):
            if getattr(cfg, name) is None:
                raise GenlabError(f"model.{name} is not set: set it in the recipe or let the dataset fill it")
        if not cfg.num_classes:
            raise GenlabError("model.kind=vit is a classifier: it needs labelled data (model.num_classes > 0)")
        if cfg.image_size % cfg.patch:
            raise GenlabError(f"model.patch={cfg.patch} must divide the image size {cfg.image_size}: pick a divisor")
        if cfg.dim % cfg.heads:
            raise GenlabError(f"model.dim={cfg.dim} must be divisible by model.heads={cfg.heads}")
        if cfg.pool not in ("cls", "mean"):
            raise GenlabError(f"model.pool={cfg.pool!r}: use 'cls' or 'mean'")
        self.cfg = cfg
        patches = (cfg.image_size // cfg.patch) ** 2
        self.embed = nn.Linear(cfg.patch * cfg.patch * cfg.in_channels, cfg.dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.dim)) if cfg.pool == "cls" else None
        self.pos = nn.Parameter(torch.randn(1, patches + (cfg.pool == "cls"), cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg, i, causal=False) for i in range(cfg.depth))
        self.ln = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.num_classes)

    def tokens(self, x: Tensor) -> Tensor:
        """The final normalised token states (B, [1 +] N, dim)."""
        h = self.embed(patchify(x, self.cfg.patch))  # (B, N, dim)
        if self.cls is not None:
            h = torch.cat([self.cls.expand(len(h), -1, -1).to(h.dtype), h], 1)  # (B, 1 + N, dim)
        h = h + self.pos.to(h.dtype)
        for block in self.blocks:
            h = block(h, None)
        return self.ln(h)

    def features(self, x: Tensor) -> Tensor:
        h = self.tokens(x)
        return h[:, 0] if self.cls is not None else h.mean(1)  # (B, dim)

    def forward(self, x: Tensor, t: Tensor | None = None) -> Tensor:
        """Logits (B, num_classes) of images x (B, C, H, W) in [-1, 1]; `t` is ignored (clean images)."""
        return self.head(self.features(x))
