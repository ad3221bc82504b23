"""CLIP's two towers (Radford et al. 2021, small): a ViT image encoder and a transformer text encoder.

Image: patchify (conv p×p, stride p) → + learned positions, [CLS] prepended → pre-LN transformer →
LN → mean of [CLS] and the patch tokens → linear → u (B, width). Text: word tokens [BOS] w_1 … w_n from a
fixed vocabulary (stored in the recipe, so the checkpoint's config.json carries it) → + positions →
pre-LN transformer (padding masked) → LN → per-token states h (B, L, width); pooled = linear(mean of real
h). Both embeddings are L2-normalised by the method, which scores pairs by exp(logit_scale)·cos.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.constraints import OptPositiveInt, PositiveInt, Range, require
from genlab.data.shapes import COLOURS, KINDS, RELATIONS, SIZES, Scene, Shape, caption
from genlab.errors import GenlabError
from genlab.models.dit import heads_merge, heads_split, key_mask

SPECIALS = ("<pad>", "<unk>", "<bos>")  # ids 0, 1, 2
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def words(text: str) -> list[str]:
    """Lower-case words and single punctuation marks: "Two shapes: a red" → [two, shapes, :, a, red]."""
    return _WORD.findall(text.lower())


def shapes_vocabulary() -> list[str]:
    """Every word the shapes caption grammar can produce, sorted (a deterministic default vocabulary)."""
    one = Scene((Shape("red", "circle", "small"),))
    two = [Scene((Shape("red", "circle", "small"), Shape("blue", "square")), r) for r in (*RELATIONS, None)]
    texts = [caption(s, template=t) for s in (one, *two) for t in range(4)]
    texts += [" ".join((*COLOURS, *KINDS, *SIZES)), "a an one orange"]
    return sorted({w for t in texts for w in words(t)})


@dataclass
class ClipConfig:
    kind: str = "clip"
    in_channels: OptPositiveInt = None  # filled from the data
    image_size: OptPositiveInt = None  # filled from the data
    patch: PositiveInt = 4
    width: PositiveInt = 128  # token width of both towers and of the joint embedding
    image_depth: PositiveInt = 4
    text_depth: PositiveInt = 3
    heads: PositiveInt = 4
    mlp_ratio: PositiveInt = 4
    max_length: Annotated[int, Range(2)] = 24  # text tokens including [BOS]; longer captions are truncated
    vocab: list[str] = field(default_factory=shapes_vocabulary)  # words; unknown words map to <unk>

    def __post_init__(self) -> None:
        if self.width >= 1 and self.heads >= 1:
            require(self.width % self.heads == 0, "width", f"must be divisible by heads={self.heads}, got {self.width}")


class Block(nn.Module):
    """Pre-LN transformer block: h += Attn(LN(h)) (keys masked by `keep`), h += MLP(LN(h))."""

    def __init__(self, width: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))

    def forward(self, h: Tensor, keep: Tensor | None = None) -> Tensor:
        q, k, v = (heads_split(z, self.heads) for z in self.qkv(self.ln1(h)).chunk(3, dim=-1))  # (B, heads, N, d)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask(keep))  # (B, heads, N, d)
        h = h + self.proj(heads_merge(y))  # (B, N, D)
        return h + self.mlp(self.ln2(h))


class ImageTower(nn.Module):
    def __init__(self, cfg: ClipConfig):
        super().__init__()
        if cfg.image_size % cfg.patch:
            raise GenlabError(f"model.patch={cfg.patch} must divide the image size {cfg.image_size}")
        self.patchify = nn.Conv2d(cfg.in_channels, cfg.width, cfg.patch, stride=cfg.patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos = nn.Parameter(torch.randn(1, (cfg.image_size // cfg.patch) ** 2 + 1, cfg.width) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.image_depth))
        self.ln = nn.LayerNorm(cfg.width)
        self.out = nn.Linear(cfg.width, cfg.width)

    def forward(self, x: Tensor) -> Tensor:
        h = self.patchify(x).flatten(2).transpose(1, 2)  # (B, P, D)
        h = torch.cat([self.cls.expand(len(h), -1, -1), h], 1) + self.pos  # (B, P + 1, D)
        for block in self.blocks:
            h = block(h)
        return self.out(self.ln(h).mean(1))  # (B, D)


class TextTower(nn.Module):
    def __init__(self, cfg: ClipConfig):
        super().__init__()
        self.vocab = {w: i for i, w in enumerate((*SPECIALS, *cfg.vocab))}
        if len(self.vocab) != len(SPECIALS) + len(cfg.vocab):
            raise GenlabError("model.vocab has repeated words or special tokens: list each word once")
        self.max_length = cfg.max_length
        self.embed = nn.Embedding(len(self.vocab), cfg.width)
        self.pos = nn.Parameter(torch.randn(1, cfg.max_length, cfg.width) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.text_depth))
        self.ln = nn.LayerNorm(cfg.width)
        self.out = nn.Linear(cfg.width, cfg.width)

    def token_ids(self, text: str) -> list[int]:
        """[BOS] + word ids (unknown words → <unk>), truncated to max_length."""
        return [2, *(self.vocab.get(w, 1) for w in words(text))][: self.max_length]

    def tokenize(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        """(ids (B, L), keep (B, L) bool) padded to the longest text, on the tower's device."""
        ids = [self.token_ids(t) for t in texts]
        length = max(map(len, ids))
        device = self.pos.device
        padded = torch.tensor([i + [0] * (length - len(i)) for i in ids], device=device)  # (B, L)
        return padded, padded != 0

    def forward(self, ids: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
        """(per-token states (B, L, D), pooled (B, D)) of token ids with real-token mask `keep`."""
        h = self.embed(ids) + self.pos[:, : ids.shape[1]]  # (B, L, D)
        for block in self.blocks:
            h = block(h, keep)
        h = self.ln(h)  # (B, L, D)
        w = keep.unsqueeze(-1).to(h.dtype)  # (B, L, 1)
        return h, self.out((h * w).sum(1) / w.sum(1).clamp_min(1.0))  # (B, L, D), (B, D)


class CLIP(nn.Module):
    def __init__(self, cfg: ClipConfig):
        super().__init__()
        if cfg.width % cfg.heads:
            raise GenlabError(f"model.width={cfg.width} must be divisible by model.heads={cfg.heads}")
        self.cfg = cfg
        self.image = ImageTower(cfg)
        self.text = TextTower(cfg)
