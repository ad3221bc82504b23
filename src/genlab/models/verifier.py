"""A verifier network: one transformer over an image's patches and a text's token states, read out as one logit.

A cross-encoder (every image patch attends to every word and back), not CLIP's two towers: CLIP compares one image
vector with one text vector, which cannot tell "a red circle left of a blue square" from the same words swapped as
well as joint attention can. Image (B, C, H, W) → patchify (conv p×p, stride p) + learned positions; text: a frozen
encoder's per-token states (B, L, text_dim) → linear + a learned type vector (the patches carry a fixed 2-D sin-cos
position plus a learned one: relations are read from positions from the first step); [CLS] + patches + words → pre-LN
blocks (padding masked) → LN → linear on [CLS] → (B,) log-odds that the text is true of the image. Built by
method.kind `verifier`, which fills in_channels, image_size and text_dim.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from genlab.constraints import OptPositiveInt, PositiveInt, require
from genlab.errors import GenlabError
from genlab.models.clip import Block
from genlab.models.dit import sincos_2d


@dataclass
class VerifierConfig:
    kind: str = "verifier"
    in_channels: OptPositiveInt = None  # filled from the data
    image_size: OptPositiveInt = None  # filled from the data
    text_dim: int = 0  # filled from the text encoder
    patch: PositiveInt = 4
    width: PositiveInt = 96
    depth: PositiveInt = 4
    heads: PositiveInt = 4
    mlp_ratio: PositiveInt = 4

    def __post_init__(self) -> None:
        if self.width >= 1 and self.heads >= 1:
            require(self.width % self.heads == 0, "width", f"must be divisible by heads={self.heads}, got {self.width}")


class VerifierNet(nn.Module):
    def __init__(self, cfg: VerifierConfig):
        super().__init__()
        if cfg.image_size % cfg.patch:
            raise GenlabError(f"model.patch={cfg.patch} must divide the image size {cfg.image_size}")
        if cfg.text_dim < 1:
            raise GenlabError("model.kind=verifier is built by method.kind verifier, which sets its text_dim: use it")
        self.cfg = cfg
        self.patchify = nn.Conv2d(cfg.in_channels, cfg.width, cfg.patch, stride=cfg.patch)
        side = cfg.image_size // cfg.patch
        self.register_buffer("grid", sincos_2d(side, cfg.width).float(), persistent=False)  # (1, P, D), fixed
        self.image_pos = nn.Parameter(torch.zeros(1, side * side, cfg.width))  # learned on top of the fixed grid
        self.words = nn.Linear(cfg.text_dim, cfg.width)
        self.word_type = nn.Parameter(torch.randn(1, 1, cfg.width) * 0.02)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.ln = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, 1)

    def forward(self, x: Tensor, tokens: Tensor, mask: Tensor) -> Tensor:
        """Log-odds (B,) for images x (B, C, H, W) in [-1, 1] and text states tokens (B, L, text_dim) with real-token
        mask (B, L)."""
        image = self.patchify(x).flatten(2).transpose(1, 2) + self.grid + self.image_pos  # (B, P, D)
        words = self.words(tokens) + self.word_type  # (B, L, D)
        h = torch.cat([self.cls.expand(len(x), -1, -1), image, words], 1)  # (B, 1 + P + L, D)
        keep = torch.cat([torch.ones(len(x), 1 + image.shape[1], dtype=torch.bool, device=x.device), mask], 1)
        for block in self.blocks:
            h = block(h, keep)
        return self.head(self.ln(h[:, 0])).squeeze(-1)  # (B,)
