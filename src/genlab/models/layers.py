"""Blocks shared by the networks: time/class embedding, modulated residual blocks, attention.

Time: emb(t) = [cos(1000 t w_k), sin(1000 t w_k)] with w_k = 10000^(-k/half), then an MLP.
Class: a table of num_classes + 1 rows, row `num_classes` being the null (unconditional) class.
Modulation (adaptive norm, as in DiT / ADM's scale-shift): h = norm(x) * (1 + scale) + shift,
with (scale, shift) = Linear(SiLU(emb)). Residual blocks use one norm each (cheaper on CPU).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn

from genlab.errors import GenlabError


def run_block(block: nn.Module, *args, checkpoint: bool) -> Any:
    """block(*args); with `checkpoint` (a network's `activation_checkpointing`, set by train.activation_checkpointing)
    and autograd on, its activations are not kept but recomputed in the backward pass (torch.utils.checkpoint,
    non-reentrant, the RNG state restored, so dropout draws the same mask): the same values and gradients for
    one block input of memory."""
    if checkpoint and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(block, *args, use_reentrant=False)
    return block(*args)


def timestep_embedding(t: Tensor, dim: int, *, scale: float = 1000.0, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal features of t (B,) in [0, 1] -> (B, dim); t is multiplied by `scale` first."""
    if t.dim() != 1:
        raise GenlabError(f"t must have shape (B,), got {tuple(t.shape)}")
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * (-math.log(max_period) / half))
    args = (t.float() * scale)[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)  # (B, 2 * half)
    if dim % 2:
        emb = F.pad(emb, (0, 1))  # (B, dim)
    return emb


class ConditionEmbedding(nn.Module):
    """emb = MLP(sinusoid(t)) + class_table[cond]; cond None means the null class everywhere."""

    def __init__(self, freq_dim: int, emb_dim: int, num_classes: int = 0):
        super().__init__()
        self.freq_dim = freq_dim
        self.num_classes = num_classes
        self.mlp = nn.Sequential(nn.Linear(freq_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.classes = nn.Embedding(num_classes + 1, emb_dim) if num_classes > 0 else None

    def forward(self, t: Tensor, cond: Tensor | None = None) -> Tensor:
        freqs = timestep_embedding(t, self.freq_dim).to(self.mlp[0].weight.dtype)  # (B, freq_dim)
        emb = self.mlp(freqs)  # (B, E)
        if self.classes is None:
            return emb
        if cond is None:
            cond = torch.full_like(t, self.num_classes, dtype=torch.long)  # (B,) all null
        return emb + self.classes(cond)  # (B, E)


def group_norm(channels: int, *, max_groups: int = 32, affine: bool = True) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= max_groups that divides `channels`."""
    groups = next(g for g in range(min(max_groups, channels), 0, -1) if channels % g == 0)
    return nn.GroupNorm(groups, channels, affine=affine)


def zero_init_(module: nn.Module) -> nn.Module:
    """Zero every parameter of `module` (used on output layers so a fresh model outputs 0)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def modulate(h: Tensor, scale_shift: Tensor) -> Tensor:
    """h * (1 + scale) + shift; scale_shift is (B, 2C) and broadcasts over h's trailing dims."""
    scale, shift = scale_shift.view(*scale_shift.shape, *([1] * (h.dim() - 2))).chunk(2, dim=1)
    return torch.addcmul(shift, h, scale + 1.0)  # same shape as h


class ResBlock(nn.Module):
    """skip(x) + conv(SiLU(conv(SiLU(modulate(GroupNorm(x), emb))))); skip is 1x1 if channels change.

    `emb` is the already-activated embedding SiLU(ConditionEmbedding(...)), computed once per forward.
    """

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, *, dropout: float = 0.0):
        super().__init__()
        self.norm = group_norm(in_ch, affine=False)  # the modulation's bias is the affine part
        self.emb = nn.Linear(emb_dim, 2 * in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = modulate(self.norm(x), self.emb(emb))  # (B, Cin, H, W)
        h = self.conv1(F.silu(h))  # (B, Cout, H, W)
        h = self.conv2(self.dropout(F.silu(h)))  # (B, Cout, H, W)
        return self.skip(x) + h  # (B, Cout, H, W)


class SelfAttention2d(nn.Module):
    """x + proj(softmax(q k^T / sqrt(d)) v) over the H*W positions, multi-head, pre-GroupNorm."""

    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        if channels % heads:
            raise GenlabError(f"attention width {channels} is not divisible by model.heads={heads}: pick a divisor")
        self.heads = heads
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)  # (B, 3, nh, d, HW)
        q, k, v = qkv.transpose(-1, -2).contiguous().unbind(1)  # each (B, nh, HW, d), d contiguous
        out = F.scaled_dot_product_attention(q, k, v)  # (B, nh, HW, d)
        out = out.transpose(-1, -2).reshape(b, c, h, w)  # (B, C, H, W)
        return x + self.proj(out)  # (B, C, H, W)


class ScalarConditionEmbedding(nn.Module):
    """A ConditionEmbedding that also reads one extra scalar per example: emb(t, cond) + MLP(sinusoid(s)).

    It replaces a trained network's `embed` (the U-Net's and the MLP's) so that a student can take a guidance scale
    (guidance distillation) or an interval length (MeanFlow's t − r) as an input without a new network class: the
    network is called with t of shape (B, 2) holding (t, s), and passes it here unchanged. The extra MLP's last layer
    starts at zero, so the wrapped network starts as exactly the network it wraps."""

    def __init__(self, base: nn.Module, *, scale: float = 1000.0):
        super().__init__()
        self.base = base
        self.scale = scale
        emb_dim = base.mlp[-1].out_features
        self.extra = nn.Sequential(
            nn.Linear(base.freq_dim, emb_dim), nn.SiLU(), zero_init_(nn.Linear(emb_dim, emb_dim))
        )

    def forward(self, ts: Tensor, cond: Tensor | None = None) -> Tensor:
        if ts.dim() != 2 or ts.shape[1] != 2:
            raise GenlabError(f"this network reads (t, s) pairs of shape (B, 2), got {tuple(ts.shape)}")
        t, s = ts[:, 0], ts[:, 1]
        freqs = timestep_embedding(s, self.base.freq_dim, scale=self.scale).to(self.extra[0].weight.dtype)
        return self.base(t, cond) + self.extra(freqs)  # (B, E)


def add_scalar_input(model: nn.Module, *, scale: float = 1000.0) -> nn.Module:
    """`model` (a network whose `embed` is a ConditionEmbedding) made to read t as (B, 2) pairs (t, s); in place."""
    if not isinstance(getattr(model, "embed", None), ConditionEmbedding):
        raise GenlabError(f"{type(model).__name__} cannot take an extra scalar input: use model.kind unet or mlp")
    model.embed = ScalarConditionEmbedding(model.embed, scale=scale)
    return model
