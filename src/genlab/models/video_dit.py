"""Video diffusion transformer: the image DiT's blocks over space-time patches (Latte / MovieGen style).

Patchify: x (B, T, C, H, W) -> each frame's S = (H/p)² patches of width W, tokens (B, T, S, W), plus fixed 3-D
sin-cos positions, per `positions`:
  split: 2-D sin-cos over the patch grid in the first ~2/3 of the channels, 1-D sin-cos of the frame index in the
    rest, added to the tokens;
  image: the image DiT's 2-D sin-cos over all channels added to the tokens (every frame sees exactly what an image
    DiT sees), and a 1-D sin-cos of the frame index added to each temporal block's input only (h + f(h + p_t)):
    the temporal attention knows the order of frames and the residual stream carries no time code. With the
    temporal blocks at identity (adaLN-Zero) this network is an image DiT applied to each frame, so it can start
    from a trained text-to-image DiT (`load_image_dit`, method.init of video_flow), as video models start from
    their image model (MovieGen, Latte). Factorized attention only.
With `frame_condition` the patch embedding reads 2C + 1 channels per frame: the noisy latent, the latent of a given
frame (zeros where none is given) and a mask channel (1 on given frames): image-to-video with the first frame given,
and plain text-to-video when nothing is (the mask is 0). Attention, per `attention`:
  factorized: each layer is a spatial DiTBlock over the S tokens of each frame ((B·T, S, W), with the text
    cross-attention), then a temporal DiTBlock over the T tokens of each patch position ((B·S, T, W));
  full: each layer is one DiTBlock over all T·S tokens ((B, T·S, W)).
Conditioning as the image DiT: c = MLP(sinusoid(t)) + Linear(pooled text), adaLN-Zero everywhere (every block
starts as the identity), text tokens by cross-attention; the output head is per frame, as in the image DiT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from torch import Tensor, nn

from genlab.constraints import OneOf, OptCount, OptPositiveInt, PositiveFloat, PositiveInt, Range
from genlab.errors import GenlabError
from genlab.models.dit import (
    DIT_PRESETS,
    DiTBlock,
    check_dims,
    dit_dims,
    init_dit,
    shift_scale,
    sincos_1d,
    sincos_2d,
)
from genlab.models.layers import ConditionEmbedding, run_block


@dataclass
class VideoDiTConfig:
    kind: str = "video_dit"
    in_channels: OptPositiveInt = None  # filled from the dataset (or the autoencoder's latent channels)
    image_size: OptPositiveInt = None  # frame side, filled from the dataset (or the latent size)
    frames: OptPositiveInt = None  # filled from the dataset
    num_classes: OptCount = None  # no class table: text conditioning only (0 or None)
    size: Annotated[str, OneOf(DIT_PRESETS)] = "micro"  # preset: S | XS | tiny | micro (width, depth, heads)
    width: OptPositiveInt = None  # overrides the preset
    depth: OptPositiveInt = None  # layers (factorized: each a spatial and a temporal block)
    heads: OptPositiveInt = None
    patch_size: PositiveInt = 2
    mlp_ratio: PositiveFloat = 4.0
    text_dim: Annotated[int, Range(0)] = 0  # width of the text encoder's tokens; 0 = no text
    attention: Literal["factorized", "full"] = "factorized"
    positions: Literal["split", "image"] = "split"  # 3-D positions: split channels, or image DiT's + temporal
    frame_condition: bool = False  # set by video_flow when method.first_frame > 0: reads given frames + a mask

    def __post_init__(self) -> None:
        check_dims(self)


def space_time_widths(width: int) -> tuple[int, int]:
    """Channels of the spatial (a multiple of 4, ~2/3) and the temporal part of a 3-D position embedding."""
    space = max(4, 2 * width // 3 // 4 * 4)
    return space, width - space


def _repeat(z: Tensor | None, n: int) -> Tensor | None:
    """Each row of z repeated n times in place (B, ...) -> (B·n, ...), matching h.flatten(0, 1) of (B, n, ...)."""
    return None if z is None else z.repeat_interleave(n, dim=0)


class FactorizedBlock(nn.Module):
    """A spatial DiTBlock within each frame, then a temporal DiTBlock along each patch position's frames."""

    def __init__(self, width: int, heads: int, *, mlp_ratio: float, cross: bool):
        super().__init__()
        self.space = DiTBlock(width, heads, mlp_ratio=mlp_ratio, cross=cross)
        self.time = DiTBlock(width, heads, mlp_ratio=mlp_ratio, cross=False)

    def spatial(self, h: Tensor, c: Tensor, ctx: Tensor | None, mask: Tensor | None) -> Tensor:
        b, t, s, w = h.shape
        out = self.space(h.flatten(0, 1), _repeat(c, t), _repeat(ctx, t), _repeat(mask, t))  # (B·T, S, W)
        return out.view(b, t, s, w)

    def temporal(self, h: Tensor, c: Tensor, pos: Tensor | None = None) -> Tensor:
        """The temporal block along each patch's frames; `pos` (1, T, 1, W): frame positions it alone sees (the
        block computes h + f(h + pos) + pos, so pos is subtracted again)."""
        b, t, s, w = h.shape
        x = h if pos is None else h + pos
        out = self.time(x.transpose(1, 2).flatten(0, 1), c.repeat_interleave(s, dim=0))  # (B·S, T, W)
        out = out.view(b, s, t, w).transpose(1, 2)  # (B, T, S, W)
        return out if pos is None else out - pos

    def forward(
        self, h: Tensor, c: Tensor, ctx: Tensor | None = None, mask: Tensor | None = None, pos: Tensor | None = None
    ) -> Tensor:
        return self.temporal(self.spatial(h, c, ctx, mask), c, pos)  # (B, T, S, W)


class FullBlock(nn.Module):
    """One DiTBlock over all T·S space-time tokens."""

    def __init__(self, width: int, heads: int, *, mlp_ratio: float, cross: bool):
        super().__init__()
        self.block = DiTBlock(width, heads, mlp_ratio=mlp_ratio, cross=cross)

    def forward(self, h: Tensor, c: Tensor, ctx: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        return self.block(h.flatten(1, 2), c, ctx, mask).view(h.shape)  # (B, T, S, W)


class VideoDiT(nn.Module):
    def __init__(self, cfg: VideoDiTConfig):
        super().__init__()
        for name in ("in_channels", "image_size", "frames"):
            if getattr(cfg, name) is None:
                raise GenlabError(f"model.{name} is not set: set it in the recipe or let the dataset fill it")
        if cfg.image_size % cfg.patch_size:
            raise GenlabError(f"model.image_size={cfg.image_size} is not divisible by patch_size={cfg.patch_size}")
        if cfg.num_classes:
            raise GenlabError(
                f"model.num_classes={cfg.num_classes}: the video DiT has no class table; condition on text"
            )
        if cfg.attention not in ("factorized", "full"):
            raise GenlabError(f"model.attention={cfg.attention!r}: use 'factorized' or 'full'")
        if cfg.positions not in ("split", "image"):
            raise GenlabError(f"model.positions={cfg.positions!r}: use 'split' or 'image'")
        if cfg.positions == "image" and cfg.attention != "factorized":
            raise GenlabError(
                "model.positions=image gives frame positions to temporal blocks: use attention=factorized"
            )
        width, depth, heads = dit_dims(cfg)
        if width % heads:
            raise GenlabError(f"video DiT width {width} is not divisible by heads={heads}: pick a divisor")
        self.cfg, self.p, self.side = cfg, cfg.patch_size, cfg.image_size // cfg.patch_size
        self.inputs = 2 * cfg.in_channels + 1 if cfg.frame_condition else cfg.in_channels  # channels per frame read
        self.patch = nn.Conv2d(self.inputs, width, cfg.patch_size, stride=cfg.patch_size)
        ws, wt = space_time_widths(width) if cfg.positions == "split" else (width, width)
        self.register_buffer("pos_space", sincos_2d(self.side, ws)[:, None], persistent=False)  # (1, 1, S, ws)
        self.register_buffer("pos_time", sincos_1d(cfg.frames, wt)[None, :, None], persistent=False)  # (1, T, 1, wt)
        self.cond = ConditionEmbedding(256, width, 0)
        text = cfg.text_dim > 0
        self.text_in = nn.Linear(cfg.text_dim, width) if text else None  # tokens -> width
        self.pooled_in = nn.Linear(cfg.text_dim, width) if text else None  # pooled -> conditioning vector
        block = FactorizedBlock if cfg.attention == "factorized" else FullBlock
        self.blocks = nn.ModuleList(block(width, heads, mlp_ratio=cfg.mlp_ratio, cross=text) for _ in range(depth))
        self.norm_out = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.out = nn.Linear(width, cfg.patch_size**2 * cfg.in_channels)
        self.activation_checkpointing = False  # recompute each block in the backward pass (genlab.parallel)
        self.init_weights()

    def init_weights(self) -> None:
        init_dit(self)
        if self.cfg.frame_condition:  # the given frames and the mask start with no effect
            nn.init.zeros_(self.patch.weight[:, self.cfg.in_channels :])

    @torch.no_grad()
    def load_image_dit(self, dit: nn.Module) -> None:
        """Start from a trained image DiT (genlab.models.dit.DiT, cross-attention text): its patch embedding (on the
        noisy latent's channels), conditioning, text projections, blocks (as the spatial blocks) and head; the
        temporal blocks stay at identity, so every frame is first denoised exactly as the image DiT would."""
        if self.cfg.positions != "image" or self.cfg.attention != "factorized":
            raise GenlabError("starting from an image DiT needs model.positions=image and attention=factorized")
        blocks = list(getattr(dit, "blocks", []))
        if not all(isinstance(b, DiTBlock) and b.cross is not None for b in blocks) or self.text_in is None:
            raise GenlabError("the image DiT to start from must read text by cross-attention (model.text_mode cross)")
        if dit.pooled_in is None or dit.cfg.text_positions:
            raise GenlabError(
                "the image DiT to start from must read text as the video DiT does: model.text_pooled true and "
                "model.text_positions false"
            )
        mine = (self.patch.weight.shape[0], len(self.blocks), self.p, self.side, self.cfg.in_channels)
        theirs = (dit.patch.weight.shape[0], len(blocks), dit.p, dit.side, dit.cfg.in_channels)
        if (
            mine != theirs
            or self.cfg.mlp_ratio != dit.cfg.mlp_ratio
            or self.text_in.in_features != dit.text_in.in_features
        ):
            raise GenlabError(
                f"the image DiT (width, depth, patch, grid, channels) = {theirs} differs from this video DiT's {mine}: "
                "give the video DiT its size, patch_size and mlp_ratio"
            )
        c = self.cfg.in_channels
        self.patch.weight.zero_()
        self.patch.weight[:, :c].copy_(dit.patch.weight)
        self.patch.bias.copy_(dit.patch.bias)
        for name in ("cond", "text_in", "pooled_in", "ada_out", "out"):
            getattr(self, name).load_state_dict(getattr(dit, name).state_dict())
        for block, image_block in zip(self.blocks, blocks):
            block.space.load_state_dict(image_block.state_dict())

    def positions(self) -> Tensor:
        """The position embedding added to the tokens (1, T, S, W) ("image": the same 2-D one in every frame)."""
        t, s = self.pos_time.shape[1], self.pos_space.shape[2]
        if self.cfg.positions == "image":
            return self.pos_space.expand(1, t, s, -1)
        return torch.cat([self.pos_space.expand(1, t, s, -1), self.pos_time.expand(1, t, s, -1)], dim=-1)

    def embed(self, x: Tensor) -> Tensor:
        """Patch tokens with positions: x (B, T, C, H, W) -> (B, T, S, W); with frame_condition C is 2c + 1."""
        if x.dim() != 5 or x.shape[1] != self.cfg.frames or x.shape[2] != self.inputs:
            raise GenlabError(
                f"video DiT expects x (B, {self.cfg.frames}, {self.inputs}, H, W), got {tuple(x.shape)}"
                + (" (noisy latent, given frames, mask)" if self.cfg.frame_condition else "")
            )
        h = self.patch(x.flatten(0, 1)).flatten(2).transpose(1, 2)  # (B·T, S, W)
        return h.unflatten(0, x.shape[:2]) + self.positions()  # (B, T, S, W)

    def forward(self, x: Tensor, t: Tensor, cond=None) -> Tensor:
        """x (B, T, C, H, W) (with frame_condition (B, T, 2C + 1, H, W)), t (B,); cond: text with .tokens
        (B, L, text_dim), .mask (B, L) bool and .pooled (B, text_dim) for a text model, None for an unconditional
        one. Output (B, T, C, H, W)."""
        if (cond is not None) != (self.text_in is not None):
            want = "pass encoded text" if self.text_in is not None else "set model.text_dim to condition on text"
            raise GenlabError(f"this video DiT is {'' if self.text_in is not None else 'not '}text-conditioned: {want}")
        b, frames = x.shape[:2]
        h = self.embed(x)  # (B, T, S, W)
        c, ctx, mask = self.cond(t), None, None  # (B, W)
        if cond is not None:
            c = c + self.pooled_in(cond.pooled)
            ctx, mask = self.text_in(cond.tokens), cond.mask  # (B, L, W), (B, L)
        pos = self.pos_time if self.cfg.positions == "image" else None  # the temporal blocks' frame positions
        for block in self.blocks:
            extra = (pos,) if pos is not None else ()
            h = run_block(block, h, c, ctx, mask, *extra, checkpoint=self.activation_checkpointing)
        shift, scale = self.ada_out(c).chunk(2, dim=-1)
        h = self.out(shift_scale(self.norm_out(h.flatten(1, 2)), shift, scale))  # (B, T·S, p·p·C)
        h = h.view(b * frames, self.side, self.side, self.p, self.p, -1)  # (B·T, s, s, p, p, C)
        h = h.permute(0, 5, 1, 3, 2, 4).reshape(b, frames, -1, self.side * self.p, self.side * self.p)
        return h  # (B, T, C, H, W)
