"""The degradations paired image-to-image tasks learn to undo, made on the fly from clean images in [-1, 1].

grey(x): luminance Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601), one channel (B, 1, H, W); it is affine,
so it maps [-1, 1] to [-1, 1] exactly.
downsample(x, f): antialiased bicubic to (H/f, W/f) (what a camera's smaller sensor or a thumbnail gives);
upsample(x, size): bicubic back to size × size, the input SR3 concatenates and the bicubic baseline itself.
Both clamp to [-1, 1] (bicubic overshoots).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from genlab.errors import GenlabError

LUMA = (0.299, 0.587, 0.114)


def grey(x: Tensor) -> Tensor:
    """(B, 3, H, W) colour -> (B, 1, H, W) luminance, both in [-1, 1]."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise GenlabError(f"colorization needs RGB images (B, 3, H, W), got {tuple(x.shape)}")
    w = x.new_tensor(LUMA).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def downsample(x: Tensor, factor: int) -> Tensor:
    """(B, C, H, W) -> (B, C, H/factor, W/factor) by antialiased bicubic, clamped to [-1, 1]."""
    h, w = x.shape[-2:]
    if h % factor or w % factor:
        raise GenlabError(f"a {h}x{w} image cannot be downsampled by {factor}: use a size divisible by {factor}")
    return F.interpolate(x, size=(h // factor, w // factor), mode="bicubic", antialias=True).clamp(-1, 1)


def upsample(x: Tensor, size: int) -> Tensor:
    """(B, C, h, w) -> (B, C, size, size) by bicubic interpolation, clamped to [-1, 1]."""
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)
