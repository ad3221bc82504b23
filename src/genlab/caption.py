"""`genlab caption IMAGE...`: captions (or answers to a visual question) from a captioner run, by default the one
shipped in the package.

The shipped run (src/genlab/assets/shapes-captioner/: config.json + ema.safetensors) is the LLaVA-style captioner
of recipes/shapes-captioner.yaml (genlab.methods.captioner) on the procedural shapes, with its frozen CLIP image
tower inside it.

    from genlab.caption import caption
    caption(["a.png", "b.png"])                                   # ["a red circle above a blue square", ...]
    caption(images, question="what colour is the circle?")        # images: (N, 3, 32, 32) in [-1, 1]
    caption(images, run="runs/shapes-captioner", temperature=0.7, top_p=0.9, seed=1)

Image files are decoded by genlab.data.images (RGB), centre-cropped to a square and resized to the run's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from genlab.errors import GenlabError
from genlab.methods.captioner import CaptionerMethod
from genlab.runs import Run, method_of_kind, shipped_asset

SHIPPED = "shapes-captioner"


def shipped_captioner() -> Path:
    """The folder of the captioner checkpoint shipped inside the package."""
    return shipped_asset(SHIPPED)


def captioner_method(run: str | Path | Run | CaptionerMethod | None = None) -> CaptionerMethod:
    """The captioner of a run folder, a loaded `Run` or a `CaptionerMethod` (default: the shipped one), in eval mode."""
    if isinstance(run, CaptionerMethod):
        return run.eval()
    return method_of_kind(
        shipped_captioner() if run is None else run,
        "captioner",
        "not a captioner: name a run of recipes/shapes-captioner.yaml (or drop --run for the shipped one)",
    )


def read_images(paths: Sequence[str | Path], method: CaptionerMethod) -> Tensor:
    """Image files as (N, C, S, S) in [-1, 1] for the captioner's encoder: centre-cropped and resized."""
    from genlab.data.images import load_images

    return load_images(paths, channels=method.encoder.model.cfg.in_channels, size=method.encoder.model.cfg.image_size)


def caption(
    images: Tensor | Sequence[str | Path] | str | Path,
    *,
    run: str | Path | Run | CaptionerMethod | None = None,
    question: str | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    seed: int = 0,
) -> list[str]:
    """One caption per image (or the answer to `question` about each image). `images`: a tensor (N, C, H, W) or
    (C, H, W) in [-1, 1], or image files. temperature 0 (the recipe's default) is greedy; None keeps the recipe's
    value. Deterministic from `seed`."""
    method = captioner_method(run)
    if isinstance(images, (str, Path)):
        images = [images]
    if isinstance(images, Tensor):
        x = images[None] if images.dim() == 3 else images
    else:
        x = read_images(list(images), method)
    if question is not None and not question.strip():
        raise GenlabError('--question needs some text, e.g. --question "what colour is the circle?"')
    gen = torch.Generator().manual_seed(seed)
    return method.caption(
        x,
        questions=None if question is None else [question] * len(x),
        temperature=temperature,
        top_p=top_p,
        generator=gen,
    )
