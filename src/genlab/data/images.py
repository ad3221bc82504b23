"""Small Pillow/NumPy image helpers shared by the data builders and by sample grids.

On disk an image is uint8 (H, W, C); inside the library it is float (C, H, W) in [-1, 1]:
    x = u / 127.5 - 1        and back        u = round((x + 1) * 127.5), clipped to [0, 255].
Decoding is guarded: Pillow's decompression-bomb check (`Image.MAX_IMAGE_PIXELS`) is an error, not a
warning, and any decoder failure becomes a one-line `GenlabError` naming the file.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from genlab.errors import GenlabError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
GRID_MIN_SIDE = 64  # save_grid upscales tiles (nearest) until their longer side is at least this
PAD_VALUE = 128  # grey separators between grid tiles


def load_image(path: str | Path, *, channels: int = 3) -> np.ndarray:
    """Decode one image file into uint8 (H, W, channels); channels is 1 (grey) or 3 (RGB).

    EXIF orientation is applied; alpha is dropped (composited on black by Pillow's convert).
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.verify()  # cheap structural check (CRCs, truncation) before the full decode
            with Image.open(path) as im:
                im.load()
                im = ImageOps.exif_transpose(im)
                im = im.convert("L" if channels == 1 else "RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise GenlabError(
            f"{path}: image is larger than Image.MAX_IMAGE_PIXELS={Image.MAX_IMAGE_PIXELS} "
            "(decompression-bomb guard); shrink or remove the file"
        ) from None
    except UnidentifiedImageError:
        raise GenlabError(f"{path}: cannot decode image (unknown or corrupt format); re-export or delete it") from None
    except FileNotFoundError:
        raise GenlabError(f"{path}: image file not found; check the path") from None
    except Exception as e:  # Pillow raises many types (OSError, SyntaxError, struct.error, ...) on bad data
        raise GenlabError(
            f"{path}: cannot decode image ({type(e).__name__}: {str(e)[:80]}); the file is corrupt or "
            "truncated, re-export or delete it"
        ) from None
    arr = np.asarray(im, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def center_crop_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop uint8 (H, W, C) to a square of side min(H, W), then resize to (size, size, C).

    Resizing uses Pillow's antialiased bicubic filter, so downscaling does not alias.
    """
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(crop)
    im = Image.fromarray(crop[:, :, 0] if crop.shape[2] == 1 else crop)
    out = np.asarray(im.resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)
    return out[:, :, None] if out.ndim == 2 else out


def load_images(paths, *, channels: int, size: int) -> torch.Tensor:
    """Image files as (N, channels, size, size) in [-1, 1]: decoded, centre-cropped to a square and resized."""
    paths = list(paths)
    if not paths:
        raise GenlabError("no images given: pass one or more image files")
    return uint8_to_tensor(np.stack([center_crop_resize(load_image(p, channels=channels), size) for p in paths]))


def uint8_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)  # (N, C, H, W)
    return x.float().div_(127.5).sub_(1.0).contiguous()


def tensor_to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (N, C, H, W) in [-1, 1] -> uint8 (N, H, W, C); values outside the range are clipped."""
    u = ((x.detach().float().cpu() + 1.0) * 127.5).round().clamp(0, 255)
    return u.to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()  # (N, H, W, C)


def auto_scale(height: int, width: int) -> int:
    """Integer nearest-neighbour factor that brings a tile's longer side to >= GRID_MIN_SIDE."""
    return max(1, math.ceil(GRID_MIN_SIDE / max(height, width, 1)))


def save_grid(
    images: torch.Tensor,
    path: str | Path,
    nrow: int,
    *,
    scale: int | None = None,
    padding: int = 1,
    row_labels: list[str] | None = None,
) -> None:
    """Write images (N, C, H, W) in [-1, 1] as one PNG grid with `nrow` images per row.

    Tiles are upscaled by `scale` (default `auto_scale`) with nearest neighbour, separated by
    `padding` grey pixels. Without labels the PNG is (cols*(W*scale+padding)+padding) wide and
    (rows*(H*scale+padding)+padding) high; `row_labels` (one string per row) adds a left margin.
    """
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise GenlabError(f"save_grid({path}): images must be (N, 1|3, H, W), got {tuple(images.shape)}")
    n, c, h, w = images.shape
    cols = max(1, min(nrow, n))
    rows = max(1, math.ceil(n / cols))
    scale = scale or auto_scale(h, w)
    th, tw = h * scale, w * scale
    tiles = tensor_to_uint8(images)  # (N, H, W, C)
    tiles = tiles.repeat(scale, axis=1).repeat(scale, axis=2)  # (N, th, tw, C) nearest-neighbour
    canvas = np.full((rows * (th + padding) + padding, cols * (tw + padding) + padding, c), PAD_VALUE, np.uint8)
    for i in range(n):
        top = padding + (i // cols) * (th + padding)
        left = padding + (i % cols) * (tw + padding)
        canvas[top : top + th, left : left + tw] = tiles[i]
    im = Image.fromarray(canvas[:, :, 0] if c == 1 else canvas)
    if row_labels is not None:
        im = _add_row_labels(im, row_labels, row_height=th + padding, top=padding)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format="PNG")


def _add_row_labels(grid: Image.Image, labels: list[str], *, row_height: int, top: int) -> Image.Image:
    """Return `grid` with a white left margin holding one black text label per row."""
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(grid)
    margin = 8 + max((int(probe.textlength(str(t), font=font)) for t in labels), default=0)
    out = Image.new(grid.mode, (grid.width + margin, grid.height), 255 if grid.mode == "L" else (255,) * 3)
    out.paste(grid, (margin, 0))
    draw = ImageDraw.Draw(out)
    ink = 0 if grid.mode == "L" else (0, 0, 0)
    for r, text in enumerate(labels):
        _, t, _, b = draw.textbbox((0, 0), str(text), font=font)
        y = top + r * row_height + (row_height - (b - t)) // 2 - t  # vertically centred in the row
        draw.text((4, y), str(text), fill=ink, font=font)
    return out
