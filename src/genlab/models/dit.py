"""Diffusion transformer (DiT, Peebles & Xie 2023) with text conditioning, and its MM-DiT variant.

Patchify: x (B,C,H,W) -> N = (H/p)² tokens of width W, plus fixed 2-D sin-cos positions.
Conditioning vector c = MLP(sinusoid(t)) + class_table[cond] + Linear(pooled text).
adaLN-Zero block: (shift, scale, gate) x 2 = Linear(SiLU(c)), zero-initialised, so every block starts as
the identity: h += gate1·attn(LN(h)·(1+scale1)+shift1); h += xattn(LN(h), text | mask); h += gate2·mlp(...).
MM-DiT (Esser et al. 2024): image and text streams with their own weights and adaLN, one joint attention
over the concatenated tokens; padded text tokens are masked out as keys everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.constraints import OneOf, OptCount, OptPositiveInt, PositiveFloat, PositiveInt, Range, require
from genlab.errors import GenlabError
from genlab.models.layers import ConditionEmbedding, run_block


@dataclass
class DiTConfig:
    kind: str = "dit"
    in_channels: OptPositiveInt = None  # filled from the dataset (or the autoencoder's latent channels)
    image_size: OptPositiveInt = None  # filled from the dataset (or the latent size)
    num_classes: OptCount = None  # 0 = no class table; filled from the dataset
    size: Annotated[str, OneOf(DIT_PRESETS)] = "tiny"  # preset: S | XS | tiny | micro (width, depth, heads)
    width: OptPositiveInt = None  # overrides the preset
    depth: OptPositiveInt = None
    heads: OptPositiveInt = None
    patch_size: PositiveInt = 2
    mlp_ratio: PositiveFloat = 4.0
    text_dim: Annotated[int, Range(0)] = 0  # width of the text encoder's tokens; 0 = no text (a text method fills it)
    text_mode: Literal["cross", "mmdit"] = "cross"  # cross (adaLN-Zero + cross-attention) | mmdit (joint attention)
    # add fixed 1-D sin-cos positions (the word order) to the text tokens; off in runs trained before it existed
    text_positions: bool = False
    text_pooled: bool = True  # the pooled text vector joins the timestep in adaLN; False: the tokens alone condition

    def __post_init__(self) -> None:
        check_dims(self)


def check_dims(cfg) -> None:
    """A DiT-like config's heads divide its width and its patch size divides its image size (errors name the key)."""
    if cfg.size in DIT_PRESETS and (cfg.width or 1) >= 1 and (cfg.heads or 1) >= 1:
        width, _, heads = dit_dims(cfg)
        require(width % heads == 0, "heads", f"must divide the width {width}, got {heads}")
    if cfg.image_size and cfg.patch_size >= 1:
        require(
            cfg.image_size % cfg.patch_size == 0,
            "patch_size",
            f"must divide image_size={cfg.image_size}, got {cfg.patch_size}",
        )


DIT_PRESETS = {  # (width, depth, heads)
    "S": (384, 12, 6),
    "XS": (256, 8, 4),
    "tiny": (128, 4, 4),
    "micro": (64, 2, 2),
}


def dit_dims(cfg: DiTConfig) -> tuple[int, int, int]:
    """(width, depth, heads) of a config: the preset, with explicit fields taking precedence."""
    if cfg.size not in DIT_PRESETS:
        raise GenlabError(f"model.size={cfg.size!r} is not a DiT preset: use one of {', '.join(DIT_PRESETS)}")
    width, depth, heads = DIT_PRESETS[cfg.size]
    return cfg.width or width, cfg.depth or depth, cfg.heads or heads


def sincos_1d(length: int, width: int) -> Tensor:
    """Fixed 1-D sin-cos embedding (length, width) of the positions 0 .. length − 1."""
    half = width // 2
    freqs = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float64) / max(half, 1))
    ang = torch.arange(length, dtype=torch.float64)[:, None] * freqs[None]  # (length, half)
    return F.pad(torch.cat([ang.sin(), ang.cos()], dim=1), (0, width - 2 * half)).float()


def sincos_2d(side: int, width: int) -> Tensor:
    """Fixed 2-D sin-cos position embedding (1, side², width): half the channels per axis."""
    quarter = width // 4
    freqs = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    pos = torch.arange(side, dtype=torch.float64)
    ang = pos[:, None] * freqs[None]  # (side, quarter)
    axis = torch.cat([ang.sin(), ang.cos()], dim=1)  # (side, 2·quarter)
    rows = axis[:, None].expand(side, side, -1)  # (side, side, 2q): varies with the row
    cols = axis[None].expand(side, side, -1)  # varies with the column
    emb = torch.cat([rows, cols], dim=-1).reshape(side * side, -1)  # (N, 4q)
    return F.pad(emb, (0, width - emb.shape[1])).float()[None]  # (1, N, width)


TEXT_POSITIONS = 77  # text-token positions kept in a buffer (a longer prompt's are built for its call)
FUSED = True  # fused modulation/gating (addcmul); benchmarks/t2i_speed.py turns it off for its ablation


def shift_scale(h: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """h (B, N, W) modulated per sample by shift, scale (B, W)."""
    if FUSED:
        return torch.addcmul(shift[:, None], h, 1 + scale[:, None])  # one kernel instead of mul + add
    return h * (1 + scale[:, None]) + shift[:, None]


def gated(h: Tensor, gate: Tensor, update: Tensor) -> Tensor:
    """Residual h + gate[:, None] * update (B, N, W)."""
    if FUSED:
        return torch.addcmul(h, gate[:, None], update)
    return h + gate[:, None] * update


def key_mask(mask: Tensor | None) -> Tensor | None:
    """(B, L) bool key mask (True = attend) -> SDPA's (B, 1, 1, L); a fully padded row attends everywhere."""
    if mask is None:
        return None
    mask = mask | ~mask.any(dim=1, keepdim=True)  # avoids NaN rows (softmax over nothing)
    return mask[:, None, None, :]


def heads_split(x: Tensor, heads: int) -> Tensor:
    b, n, w = x.shape
    return x.view(b, n, heads, w // heads).transpose(1, 2)  # (B, heads, N, d)


def heads_merge(x: Tensor) -> Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)  # (B, N, W)


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, control=None, image_tokens=None) -> Tensor:
    """SDPA over (B, nh, N, d) heads. With an attention `control` (genlab.edit.prompt2prompt) the probabilities
    softmax(q·kᵀ/√d) (B, nh, Nq, Nk) are formed explicitly and passed through control(probs, image_tokens) first;
    image_tokens is None for cross-attention, the image tokens' count for joint attention (MM-DiT)."""
    if control is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5  # (B, nh, Nq, Nk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return control(scores.softmax(dim=-1), image_tokens) @ v


def mlp(width: int, ratio: float) -> nn.Sequential:
    hidden = int(width * ratio)
    return nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))


class CrossAttention(nn.Module):
    """Image tokens (queries) attend to text tokens (keys/values); padded text tokens are masked."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)
        self.control = None  # an attention controller (genlab.edit.prompt2prompt); None: plain SDPA

    def forward(self, h: Tensor, ctx: Tensor, mask: Tensor | None) -> Tensor:
        q = heads_split(self.q(self.norm(h)), self.heads)  # (B, nh, N, d)
        k, v = (heads_split(z, self.heads) for z in self.kv(ctx).chunk(2, dim=-1))  # (B, nh, L, d)
        out = attention(q, k, v, key_mask(mask), self.control)
        return self.out(heads_merge(out))  # (B, N, W)


class DiTBlock(nn.Module):
    """adaLN-Zero self-attention + MLP block, with an optional cross-attention to text tokens."""

    def __init__(self, width: int, heads: int, *, mlp_ratio: float, cross: bool):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.cross = CrossAttention(width, heads) if cross else None
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = mlp(width, mlp_ratio)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        # insertion points of adapters trained on a frozen model (genlab.methods.adapters), held outside the module
        # tree: `after_attention` maps h -> h after self-attention (GLIGEN's gated self-attention);
        # `cross_extras` each add f(block, h) to the cross-attention's update (IP-Adapter). Empty: the plain block.
        self.after_attention: list = []
        self.cross_extras: list = []

    def attend(self, h: Tensor) -> Tensor:
        q, k, v = (heads_split(z, self.heads) for z in self.qkv(h).chunk(3, dim=-1))  # (B, nh, N, d)
        return self.proj(heads_merge(F.scaled_dot_product_attention(q, k, v)))  # (B, N, W)

    def forward(self, h: Tensor, c: Tensor, ctx: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(c).chunk(6, dim=-1)  # each (B, W)
        h = gated(h, g1, self.attend(shift_scale(self.norm1(h), sh1, sc1)))
        for extra in self.after_attention:
            h = extra(h)
        if self.cross is not None:
            update = self.cross(h, ctx, mask)
            for extra in self.cross_extras:
                update = update + extra(self, h)
            h = h + update
        return gated(h, g2, self.mlp(shift_scale(self.norm2(h), sh2, sc2)))  # (B, N, W)


class Stream(nn.Module):
    """One modality's weights in an MM-DiT block: adaLN, qkv, output projection, MLP."""

    def __init__(self, width: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = mlp(width, mlp_ratio)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))


class MMDiTBlock(nn.Module):
    """Joint attention over [image tokens, text tokens], separate weights per modality (SD3)."""

    def __init__(self, width: int, heads: int, *, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.img, self.txt = Stream(width, mlp_ratio), Stream(width, mlp_ratio)
        self.control = None  # an attention controller (genlab.edit.prompt2prompt); None: plain SDPA

    def forward(self, h: Tensor, c: Tensor, ctx: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        mods = [s.ada(c).chunk(6, dim=-1) for s in (self.img, self.txt)]  # per stream: 6 x (B, W)
        qkvs = [s.qkv(shift_scale(s.norm1(z), m[0], m[1])) for s, z, m in zip((self.img, self.txt), (h, ctx), mods)]
        q, k, v = (
            heads_split(torch.cat(parts, dim=1), self.heads) for parts in zip(*(z.chunk(3, dim=-1) for z in qkvs))
        )  # (B, nh, N + L, d)
        full = None if mask is None else torch.cat([mask.new_ones(h.shape[0], h.shape[1]), mask], dim=1)
        out = heads_merge(attention(q, k, v, key_mask(full), self.control, image_tokens=h.shape[1]))
        outs = out.split([h.shape[1], ctx.shape[1]], dim=1)  # (B, N, W), (B, L, W)
        new = []
        for s, z, o, m in zip((self.img, self.txt), (h, ctx), outs, mods):
            z = z + m[2][:, None] * s.proj(o)
            new.append(z + m[5][:, None] * s.mlp(shift_scale(s.norm2(z), m[3], m[4])))
        return new[0], new[1]


def init_dit(model: nn.Module) -> None:
    """adaLN-Zero initialisation of a DiT-like model (attributes patch, cond, ada_out, out; DiT / MM-DiT blocks
    anywhere in it): Xavier linears, the patch embedding like a linear, every block's adaLN modulation, every
    cross-attention output and the head zeroed, so each block starts as the identity."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    nn.init.xavier_uniform_(model.patch.weight.view(model.patch.weight.shape[0], -1))
    nn.init.zeros_(model.patch.bias)
    for m in model.cond.mlp:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
    blocks = list(model.modules())
    zero = [b.ada[-1] for b in blocks if isinstance(b, DiTBlock)]
    zero += [s.ada[-1] for b in blocks if isinstance(b, MMDiTBlock) for s in (b.img, b.txt)]
    zero += [b.cross.out for b in blocks if isinstance(b, DiTBlock) and b.cross is not None]
    for m in [*zero, model.ada_out[-1], model.out]:
        nn.init.zeros_(m.weight)
        nn.init.zeros_(m.bias)


class DiT(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        for name in ("in_channels", "image_size"):
            if getattr(cfg, name) is None:
                raise GenlabError(f"model.{name} is not set: set it in the recipe or let the dataset fill it")
        if cfg.image_size % cfg.patch_size:
            raise GenlabError(f"model.image_size={cfg.image_size} is not divisible by patch_size={cfg.patch_size}")
        if cfg.text_mode not in ("cross", "mmdit"):
            raise GenlabError(f"model.text_mode={cfg.text_mode!r}: use 'cross' or 'mmdit'")
        width, depth, heads = dit_dims(cfg)
        if width % heads:
            raise GenlabError(f"DiT width {width} is not divisible by heads={heads}: pick a divisor")
        self.cfg, self.p, self.side = cfg, cfg.patch_size, cfg.image_size // cfg.patch_size
        self.patch = nn.Conv2d(cfg.in_channels, width, cfg.patch_size, stride=cfg.patch_size)
        self.register_buffer("pos", sincos_2d(self.side, width), persistent=False)
        # (TEXT_POSITIONS, W) word-order positions of the text tokens, only where model.text_positions asks for them
        self.register_buffer(
            "text_pos", sincos_1d(TEXT_POSITIONS, width) if cfg.text_positions else None, persistent=False
        )
        self.cond = ConditionEmbedding(256, width, cfg.num_classes or 0)
        text, mm = cfg.text_dim > 0, cfg.text_mode == "mmdit"
        self.text_in = nn.Linear(cfg.text_dim, width) if text else None  # tokens -> width
        # pooled -> conditioning vector
        self.pooled_in = nn.Linear(cfg.text_dim, width) if text and cfg.text_pooled else None
        self.blocks = nn.ModuleList(
            MMDiTBlock(width, heads, mlp_ratio=cfg.mlp_ratio)
            if text and mm
            else DiTBlock(width, heads, mlp_ratio=cfg.mlp_ratio, cross=text)
            for _ in range(depth)
        )
        self.norm_out = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.out = nn.Linear(width, cfg.patch_size**2 * cfg.in_channels)
        self.activation_checkpointing = False  # recompute each block in the backward pass (genlab.parallel)
        self.init_weights()

    def init_weights(self) -> None:
        init_dit(self)

    def text_positions(self, length: int) -> Tensor:
        """(length, width) sin-cos positions of the text tokens on the model's device (the buffer is never
        resized, so processes stay alike: longer prompts get theirs built for the call)."""
        if length <= self.text_pos.shape[0]:
            return self.text_pos[:length]
        return sincos_1d(length, self.text_pos.shape[1]).to(self.text_pos.device)

    def forward(self, x: Tensor, t: Tensor, cond=None) -> Tensor:
        """x (B,C,H,W), t (B,); cond: class labels (B,) int, or text with .tokens (B,L,text_dim),
        .mask (B,L) bool (True = real token) and .pooled (B,text_dim); None = unconditional."""
        b = x.shape[0]
        h = self.patch(x).flatten(2).transpose(1, 2) + self.pos  # (B, N, W)
        text = cond is not None and not isinstance(cond, Tensor)
        if text != (self.text_in is not None):
            raise GenlabError(
                "this DiT is "
                + (
                    "text-conditioned: pass encoded text"
                    if self.text_in is not None
                    else "not text-conditioned: set model.text_dim"
                )
            )
        c = self.cond(t, None if text else cond)  # (B, W)
        ctx = mask = None
        if text:
            if self.pooled_in is not None:
                c = c + self.pooled_in(cond.pooled)
            ctx, mask = self.text_in(cond.tokens), cond.mask  # (B, L, W), (B, L)
            if self.text_pos is not None:
                ctx = ctx + self.text_positions(ctx.shape[1]).to(ctx.dtype)
        for block in self.blocks:
            if isinstance(block, MMDiTBlock):
                h, ctx = run_block(block, h, c, ctx, mask, checkpoint=self.activation_checkpointing)
            else:
                h = run_block(block, h, c, ctx, mask, checkpoint=self.activation_checkpointing)
        shift, scale = self.ada_out(c).chunk(2, dim=-1)
        h = self.out(shift_scale(self.norm_out(h), shift, scale))  # (B, N, p·p·C)
        h = h.view(b, self.side, self.side, self.p, self.p, -1)  # (B, s, s, p, p, C)
        return h.permute(0, 5, 1, 3, 2, 4).reshape(b, -1, self.side * self.p, self.side * self.p)  # (B,C,H,W)
