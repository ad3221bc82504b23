"""`genlab edit` with trained image-to-image runs, and the file side of every edit (a PNG or an .npz batch).

A run whose method has an `image_task` (paired_flow, regression, pix2pix, ...) does exactly that task: n outputs
of each input come from one `translate` call over the inputs repeated n times, with one seeded generator, so they
are reproducible from the seed. Other flow/diffusion runs edit training-free (genlab.edit.edit: sdedit, inpaint,
outpaint). Inputs: an image file is one image; an .npz holds a batch, `images` uint8 (N, H, W, C) (masks: `masks`
uint8 (N, H, W) or (N, H, W, 1), 255 = make). Outputs are input-major (the n outputs of input 0, then of input 1,
...): an .npz `images` uint8 (N·n, H, W, C) with `inputs` (N·n,) the index of the input each came from, or a PNG
with one row per input: input | kept pixels (inpaint / outpaint) | outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from genlab.atomic import atomic_path
from genlab.errors import GenlabError
from genlab.settings import Samples, SampleSettings

TASKS = ("sdedit", "inpaint", "outpaint", "superres", "colorize", "translate")
TRAINING_FREE = ("sdedit", "inpaint", "outpaint")


def trained_task(method, task: str) -> bool:
    """True when the run's own trained model does `task`, False for a training-free edit; else a GenlabError."""
    if task not in TASKS:
        raise GenlabError(f"unknown --task {task!r}: use one of {', '.join(TASKS)}")
    if method.image_task:
        if task != method.image_task:
            raise GenlabError(
                f"this {method.kind} run was trained for --task {method.image_task}, not {task}: "
                f"use --task {method.image_task}, or a run trained for {task}"
            )
        return True
    if task not in TRAINING_FREE:
        raise GenlabError(
            f"--task {task} needs a run trained for it (method.kind paired_flow or regression with "
            f"method.task: {task}); this is a {method.kind} run"
        )
    return False


def input_shape(run, task: str) -> tuple[int, ...]:
    """(C, H, W) of one input image for `task` on `run`: what the method's degradation makes from a clean image of
    the run's data shape (trained tasks), or the run's image shape (training-free edits)."""
    from genlab.edit import flow_method
    from genlab.models import data_shape

    if not trained_task(run.method, task):
        return tuple(flow_method(run.method).image_shape)
    clean = torch.zeros(1, *data_shape(run.recipe.model), device=run.method.device)
    given = run.method.degrade(clean, generator=torch.Generator().manual_seed(0))
    return tuple(given["source"].shape[1:])


def translate_images(
    method,
    images: Tensor,
    *,
    task: str,
    mask: Tensor | None,
    n: int,
    keep: float,
    settings: SampleSettings,
    generator: torch.Generator,
) -> Samples:
    """n outputs of each input image (N, C', H', W') in [-1, 1], input-major (N·n, C, H, W), from the run's trained
    model; mask (1 or N, 1, H, W) (white = make), or for outpaint without one the border around a centred window
    of share `keep` of each side."""
    from genlab.edit import border_mask

    source = images.to(method.device).repeat_interleave(n, 0)  # (N·n, C', H', W')
    if task == "outpaint" and mask is None:
        mask = border_mask(images.shape[-1], keep)
    if mask is not None:
        mask = mask.to(method.device)
        mask = mask if len(mask) == 1 else mask.repeat_interleave(n, 0)  # (1 or N·n, 1, H, W)
    return method.translate(source, mask=mask, settings=settings, generator=generator)


# -- files


def _fit(image: np.ndarray, *, channels: int, size: int, resize: bool, where: str, what: str) -> np.ndarray:
    """uint8 (H, W, C) brought to `channels` (Pillow's L / RGB conversion) and checked (or resized) to size."""
    if image.shape[2] != channels:
        mode = "L" if channels == 1 else "RGB"
        converted = np.asarray(Image.fromarray(image[..., 0] if image.shape[2] == 1 else image).convert(mode))
        image = converted[..., None] if converted.ndim == 2 else converted
    if image.shape[:2] != (size, size):
        if not resize:
            raise GenlabError(
                f"{where} is {image.shape[1]}x{image.shape[0]} but {what} takes {size}x{size} images: "
                "pass --resize (centre crop + resize) or an image of that size"
            )
        from genlab.data.images import center_crop_resize

        image = center_crop_resize(image, size)
    return image


def _npz_images(path: Path, key: str) -> np.ndarray:
    """uint8 (N, H, W, C) from member `key` of an .npz (N, H, W) or (N, H, W, C)."""
    from genlab.data.arrays import read_npz

    arrays = read_npz(path)
    if key not in arrays:
        raise GenlabError(f"{path}: needs an array {key!r} (uint8 N,H,W,C); it has {sorted(arrays)}")
    data = arrays[key]
    data = data[..., None] if data.ndim == 3 else data
    if data.dtype != np.uint8 or data.ndim != 4 or len(data) == 0 or data.shape[-1] not in (1, 3, 4):
        raise GenlabError(f"{path}: {key!r} must be uint8 (N, H, W, C) with C 1 or 3 and N >= 1, got {data.shape}")
    return data[..., :3]


def read_images(path, *, channels: int, size: int, resize: bool = False, what: str = "the run") -> Tensor:
    """Input images as (N, channels, size, size) in [-1, 1]: one image file (N = 1) or an .npz `images` batch."""
    from genlab.data.images import load_image, uint8_to_tensor

    path = Path(path)
    batch = _npz_images(path, "images") if path.suffix == ".npz" else load_image(path, channels=channels)[None]
    fitted = [
        _fit(
            im,
            channels=channels,
            size=size,
            resize=resize,
            where=f"{path}[{i}]" if len(batch) > 1 else str(path),
            what=what,
        )
        for i, im in enumerate(batch)
    ]
    return uint8_to_tensor(np.stack(fitted))


def read_masks(path, *, size: int, resize: bool = False) -> Tensor:
    """Masks as (N, 1, size, size) in [0, 1], white = make: a one-channel image file or an .npz `masks` batch."""
    path = Path(path)
    if path.suffix != ".npz":
        return (read_images(path, channels=1, size=size, resize=resize, what="the mask of this run") + 1) / 2
    batch = _npz_images(path, "masks")[..., :1]
    fitted = [
        _fit(m, channels=1, size=size, resize=resize, where=f"{path}[{i}]", what="a mask") for i, m in enumerate(batch)
    ]
    return torch.from_numpy(np.stack(fitted)).permute(0, 3, 1, 2).float() / 255


def preview_rows(images: Tensor, outputs: Tensor, *, task: str, mask: Tensor | None, keep: float) -> Tensor:
    """(N·L, C, H, W): per input one row of L pictures, input | kept pixels (inpaint / outpaint) | its n outputs;
    inputs of another size or channel count are shown at the outputs' (grey repeated, nearest upsampling)."""
    from genlab.edit import preview_row
    from genlab.methods.base import as_picture

    n = len(outputs) // len(images)
    rows = []
    for i, image in enumerate(images):
        outs = outputs[i * n : (i + 1) * n]
        m = None if mask is None else mask[i if len(mask) > 1 else 0][None]
        shown = as_picture(image[None].to(outs.dtype), outs[:1])
        rows.append(
            preview_row(shown, outs, task=task if task in ("inpaint", "outpaint") else "sdedit", mask=m, keep=keep)
        )
    return torch.cat(rows)


def write_edits(
    out: str | Path, images: Tensor, outputs: Tensor, *, task: str, mask: Tensor | None, keep: float
) -> Path:
    """The outputs of `images` written atomically: .npz (`images`, `inputs`) or a .png of `preview_rows`."""
    from genlab.data.images import tensor_to_uint8
    from genlab.runs import write_samples

    out = Path(out)
    if out.suffix == ".png":
        rows = preview_rows(images, outputs, task=task, mask=mask, keep=keep)
        return write_samples(rows, None, out, nrow=len(rows) // len(images))
    if out.suffix != ".npz":
        raise GenlabError(f"-o {out}: use a .png (rows: input, outputs) or .npz file name")
    inputs = np.repeat(np.arange(len(images), dtype=np.int64), len(outputs) // len(images))
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.savez(f, images=tensor_to_uint8(outputs), inputs=inputs)
    return out


def edit_files(
    run,
    image: str | Path,
    *,
    task: str,
    output: str | Path,
    mask: str | Path | None = None,
    resize: bool = False,
    strength: float | None = None,
    keep: float = 0.5,
    **opts,
) -> tuple[Path, Samples, float]:
    """`genlab edit`: read the input(s) and mask for `task` on `run`, `Run.edit` them (opts: n, seed, label, prompt,
    resample, jump, sample settings), write `output`; (path, samples, strength used). Nothing is written on error."""
    if Path(output).suffix not in (".png", ".npz"):
        raise GenlabError(f"-o {output}: use a .png (rows: input, outputs) or .npz file name")
    if mask is not None and task == "sdedit":
        raise GenlabError("--task sdedit takes no --mask: use --task inpaint")
    shape = input_shape(run, task)
    what = f"--task {task} on this run" if trained_task(run.method, task) else "the run"
    images = read_images(image, channels=shape[0], size=shape[-1], resize=resize, what=what)
    masks = None if mask is None else read_masks(mask, size=shape[-1], resize=resize)
    if masks is not None and len(masks) not in (1, len(images)):
        raise GenlabError(f"{mask} holds {len(masks)} masks for {len(images)} images: give one mask or one per image")
    strength = strength if strength is not None else (0.6 if task == "sdedit" else 1.0)
    out = run.edit(images, task=task, mask=masks, strength=strength, keep=keep, **opts)
    return write_edits(output, images, out.x, task=task, mask=masks, keep=keep), out, strength
