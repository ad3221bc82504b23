"""Videos out: `genlab generate --video` samples a text-to-video run and writes an animated GIF (Pillow).

A GIF holds n videos side by side: frame f of the file is the row [video_1[f], ..., video_n[f]] with a 2-pixel
black gap, shown `frame_ms` milliseconds each, looping. GIF stores a palette of 256 colours per frame, enough for
the shapes domain's named colours; the file is written atomically (genlab.atomic).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genlab.atomic import atomic_path
from genlab.data.images import tensor_to_uint8
from genlab.errors import GenlabError

FRAME_MS = 125  # 8 frames per second
GAP = 2  # black pixels between videos side by side


def video_strip(videos: torch.Tensor) -> np.ndarray:
    """uint8 (T, H, n·W + (n−1)·GAP, 3): videos (n, T, C, H, W) in [-1, 1] side by side, frame by frame."""
    n, t, _, h, w = videos.shape
    frames = tensor_to_uint8(videos.flatten(0, 1)).reshape(n, t, h, w, -1)  # (n, T, H, W, C)
    if frames.shape[-1] == 1:
        frames = frames.repeat(3, axis=-1)
    out = np.zeros((t, h, n * w + (n - 1) * GAP, 3), dtype=np.uint8)
    for i in range(n):
        out[:, :, i * (w + GAP) : i * (w + GAP) + w] = frames[i]
    return out


def write_gif(videos: torch.Tensor, path: str | Path, *, frame_ms: int = FRAME_MS, scale: int = 1) -> Path:
    """An animated GIF of videos (n, T, C, H, W) in [-1, 1] side by side, each pixel `scale`×`scale`."""
    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise GenlabError(f"-o {path}: a video is written as a .gif; use a file name ending in .gif")
    if videos.dim() != 5:
        raise GenlabError(f"write_gif needs videos (n, T, C, H, W), got shape {tuple(videos.shape)}")
    strip = video_strip(videos)
    frames = [Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST) for f in strip]
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
    return path


def read_gif(path: str | Path) -> np.ndarray:
    """uint8 (T, H, W, 3) frames of a GIF (as write_gif wrote it)."""
    with Image.open(path) as im:
        frames = []
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
    return np.stack(frames)


def generate_video(
    prompt: str,
    *,
    run: str | Path,
    out: str | Path = "out.gif",
    n: int = 1,
    seed: int = 0,
    scale: int = 4,
    first_frame: str | Path | torch.Tensor | None = None,
    **settings,
) -> Path:
    """n videos of a text-to-video run (method.kind video_flow) for `prompt`, written side by side to a GIF.
    `first_frame`: image-to-video, every video starts from this image (a file, centre-cropped and resized to the
    run's frame size, or a tensor (C, H, W) in [-1, 1]); the run must have been trained with method.first_frame > 0."""
    from genlab.runs import load_run

    if n < 1:
        raise GenlabError(f"--n must be >= 1, got {n}")
    loaded = load_run(run)
    if not loaded.method.makes_video:
        raise GenlabError(f"{run} is a {loaded.recipe.method.kind} run: --video needs a text-to-video run (video_flow)")
    extra = {}
    if first_frame is not None:
        if not loaded.method.frame_condition:
            raise GenlabError(
                f"{run} was not trained to take a first frame: drop --first-frame, or train with method.first_frame > 0"
            )
        if not isinstance(first_frame, torch.Tensor):
            from genlab.edit import read_image

            _, c, size, _ = loaded.method.image_shape
            first_frame = read_image(first_frame, channels=c, size=size, resize=True)[0]
        extra["adapter"] = {"first_frame": first_frame}
    videos = loaded.sample(n, prompts=[prompt] * n, seed=seed, **extra, **settings).x  # (n, T, C, H, W)
    return write_gif(videos, out, scale=scale)
