"""Editing an image with a trained flow/diffusion run: wrappers around the run's own sampler, not new models.

SDEdit (Meng et al. 2021): x_s = a(s)·x + b(s)·ε at s = `strength`, then the run's sampler on a grid from s to 0,
so every step is spent on [0, s] and `steps` means the steps that run (the NFE is reported). Deterministic from the
seed; on the rectified path strength 1 is plain sampling from ε, and strength → 0 returns x.

Inpainting (mask m = 1 where pixels are to be made, 0 where x is kept; soft values blend) by replacement in
x̂-space: at every network evaluation the known pixels replace the model's estimate of the data,
x̂' = (1 − m)·x + m·x̂, and ε̂' = (x_t − a·x̂')/b keeps the pair consistent. Along the probability-flow ODE the
known region then follows a(t)·x + b(t)·ε exactly, the unknown region is always predicted next to a context at
the right noise level, and the output's known pixels are x exactly. It works with every sampler, because it wraps
the prediction the sampler asks for. Outpainting is inpainting of the border around a kept centre window.

Mask blur (`mask_blur` = σ in pixels): the mask is feathered outward, m' = max(m, G_σ ∗ m), so every pixel the user
marked is still made in full and a band of about 3σ outside it becomes a soft blend of the input and the model's
pixels: the seam is spread over the band instead of falling between two neighbours. Pixels farther away are kept
exactly.

Text-to-image runs also edit by prompt: genlab.edit.prompt2prompt (attention control, `genlab generate --edit-to`)
and genlab.edit.inversion (real images to noise and back, null-text inversion, `genlab invert`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.errors import GenlabError
from genlab.paths import bcast, from_x_eps, to_x_eps
from genlab.settings import DEFAULT_SETTINGS, Callback, Samples, SampleSettings

TASKS = ("sdedit", "inpaint", "outpaint")


def flow_method(method):
    """`method` if it is a flow/diffusion method (the family editing works on), else a GenlabError."""
    from genlab.methods.flow import FlowMethod

    if not isinstance(method, FlowMethod):
        raise GenlabError(f"editing needs a flow/diffusion run (method.kind: flow or latent_flow), not {method.kind!r}")
    return method


def check_images(
    x: Tensor, shape: tuple[int, ...], *, what: str = "the image", wants: str = "makes {} images"
) -> Tensor:
    """x (n, *shape) in [-1, 1], else a GenlabError naming `what` and what the run `wants` (its shape in {})."""
    if x.dim() != 4 or tuple(x.shape[1:]) != tuple(shape):
        got = "x".join(map(str, x.shape[1:])) if x.dim() == 4 else str(tuple(x.shape))
        raise GenlabError(
            f"{what} is {got} (C x H x W) but the run {wants.format('x'.join(map(str, shape)))}: "
            "pass --resize, or an image of that size"
        )
    if x.min() < -1 or x.max() > 1:
        raise GenlabError("images must lie in [-1, 1]")
    return x


def check_image(method, x: Tensor) -> Tensor:
    """x (n, C, H, W) in [-1, 1] with the run's data shape, else a GenlabError that says what to do."""
    return check_images(x, method.image_shape)


def check_mask(mask: Tensor, x: Tensor) -> Tensor:
    """A mask (n or 1, 1, H, W) in [0, 1] of x's size that is neither all 0 nor all 1."""
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[-2:] != x.shape[-2:]:
        raise GenlabError(
            f"the mask is {tuple(mask.shape[-2:])} but the image is {tuple(x.shape[-2:])}: give a "
            "one-channel mask of the image's size (white = make, black = keep)"
        )
    if mask.min() < 0 or mask.max() > 1:
        raise GenlabError("mask values must lie in [0, 1] (white = make, black = keep)")
    if float(mask.max()) == 0:
        raise GenlabError("the mask is all black: nothing to make (white pixels are the ones generated)")
    if float(mask.min()) == 1:
        raise GenlabError("the mask is all white: nothing is kept; use genlab sample (or --task sdedit)")
    return mask


def blur_mask(mask: Tensor, sigma: float) -> Tensor:
    """max(m, G_σ ∗ m) for masks (n, 1, H, W) in [0, 1]: feathered outward by a Gaussian of std `sigma` pixels
    (taps out to 3σ, edges replicated); sigma 0 returns the mask unchanged."""
    if sigma < 0:
        raise GenlabError(f"--mask-blur must be >= 0 (the feather's std in pixels), got {sigma}")
    if sigma == 0:
        return mask
    radius = max(1, math.ceil(3 * sigma))
    k = torch.arange(-radius, radius + 1, device=mask.device, dtype=mask.dtype)
    taps = torch.exp(-(k**2) / (2 * sigma**2))
    taps = taps / taps.sum()
    m = F.pad(mask, (radius, radius, radius, radius), mode="replicate")
    m = F.conv2d(m, taps.view(1, 1, 1, -1))
    m = F.conv2d(m, taps.view(1, 1, -1, 1))
    return torch.maximum(mask, m.clamp(0, 1))


def border_mask(size: int, keep: float) -> Tensor:
    """(1, 1, size, size): 0 in a centred square window covering `keep` of each side, 1 around it (outpainting)."""
    if not 0 < keep < 1:
        raise GenlabError(f"--keep must be in (0, 1) (the kept centre's share of each side), got {keep}")
    side = max(1, round(size * keep))
    lo = (size - side) // 2
    mask = torch.ones(1, 1, size, size)
    mask[..., lo : lo + side, lo : lo + side] = 0
    return mask


def known_region(fn: Callable, x: Tensor, keep: Tensor, *, path, target: str) -> Callable:
    """`fn(x_t, t) -> prediction of target` with x̂ replaced by x where keep = 1 (soft keep blends)."""

    def replaced(x_t: Tensor, t: Tensor) -> Tensor:
        pred = fn(x_t, t)
        x_hat, eps_hat = to_x_eps(path, target, x_t, t, pred)
        x_new = keep * x + (1 - keep) * x_hat
        a, b = bcast(path.a(t), x_t).to(x_t.dtype), bcast(path.b(t), x_t).to(x_t.dtype)
        eps_new = torch.where(b > 0, (x_t - a * x_new) / b.clamp_min(1e-12), eps_hat)
        return from_x_eps(path, target, t, x_new, eps_new)

    return replaced


def renoise(x_s: Tensor, s: Tensor, t: Tensor, *, path, generator: torch.Generator | None) -> Tensor:
    """A draw of x_t given x_s for s < t along the path's forward process:
    x_t = (a_t/a_s)·x_s + sqrt(b_t² − (a_t/a_s)²·b_s²)·z (RePaint's jump back up)."""
    from genlab.methods.base import randn  # here: genlab.methods imports this package (check_images)

    s64, t64 = s.double().reshape(1), t.double().reshape(1)
    ratio = path.a(t64) / path.a(s64)
    scale = torch.sqrt((path.b(t64) ** 2 - (ratio * path.b(s64)) ** 2).clamp_min(0))
    return ratio.item() * x_s + scale.item() * randn(tuple(x_s.shape), generator=generator, device=x_s.device)


def repaint(
    method, x: Tensor, keep: Tensor, *, cond, settings: SampleSettings, generator, jump: int, resample: int
) -> Samples:
    """RePaint's resampling (Lugmayr et al. 2022) around the same x̂-replacement: DDIM (η = 0) steps on a uniform
    grid of settings.steps, taken in blocks of `jump` steps; each block is run `resample` times, jumping back up
    to its start along the forward process in between, so the made region is harmonised with the kept one over
    several passes. NFE = resample·steps; resample = 1 is DDIM inpainting."""
    from genlab.methods.base import randn
    from genlab.samplers import CountNFE, as_denoiser, time_grid
    from genlab.samplers.sde import sample_ddim

    if jump < 1 or resample < 1:
        raise GenlabError(f"--jump and --resample must be >= 1, got {jump} and {resample}")
    path, n = method.path, len(x)
    counted = CountNFE(known_region(method.prediction(n, cond, settings), x, keep, path=path, target=method.cfg.target))
    denoise = as_denoiser(counted, path, method.cfg.target)
    ts = time_grid("uniform", settings.steps, path=path).to(x.device)
    state = path.b(ts[:1].double()).item() * randn((n, *method.shape), generator=generator, device=x.device)
    start = 0
    while start < settings.steps:
        end = min(start + jump, settings.steps)
        for r in range(resample):
            state = sample_ddim(denoise, state, ts[start : end + 1], path=path)
            if r < resample - 1:
                state = renoise(state, ts[end], ts[start], path=path, generator=generator)
        start = end
    return Samples(method.finish(state), counted.nfe, f"RePaint (jump {jump}, resample {resample}) with DDIM")


def edit(
    method,
    x: Tensor,
    *,
    task: str,
    mask: Tensor | None = None,
    strength: float = 1.0,
    keep: float = 0.5,
    cond=None,
    settings: SampleSettings = DEFAULT_SETTINGS,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    resample: int = 1,
    jump: int = 5,
    mask_blur: float = 0.0,
) -> Samples:
    """Edit images x (n, C, H, W) in [-1, 1] with a flow/diffusion method (see the module docstring). sdedit uses
    `strength`; inpaint takes `mask` (white = make) and, below strength 1, also starts from the noised input;
    outpaint makes the border around a centred window of share `keep` (or around `mask`'s black region).
    resample > 1 (inpaint/outpaint) uses RePaint's resampling with DDIM steps (`repaint`); mask_blur > 0 feathers
    the mask outward by a Gaussian of that std in pixels (`blur_mask`)."""
    method = flow_method(method)
    if task not in TASKS:
        raise GenlabError(f"unknown --task {task!r}: use one of {', '.join(TASKS)}")
    if not 0 < strength <= 1:
        raise GenlabError(f"--strength must be in (0, 1] (the time the edit starts from), got {strength}")
    x = check_image(method, x)
    if task == "sdedit":
        if mask is not None or mask_blur:
            raise GenlabError("--task sdedit takes no mask or --mask-blur: use --task inpaint")
        return method.sample(
            len(x),
            cond=cond,
            settings=settings,
            generator=generator,
            callback=callback,
            init=method.to_state(x),
            strength=strength,
        )
    if method.kind == "latent_flow":
        raise GenlabError("inpainting a latent run is not supported yet: use a pixel-space flow run")
    if mask is None:
        if task == "inpaint":
            raise GenlabError("--task inpaint needs --mask M.png (white = make, black = keep)")
        mask = border_mask(x.shape[-1], keep)
    keep_region = 1 - blur_mask(check_mask(mask, x).to(x.device, x.dtype), mask_blur)
    x_dev = x.to(method.device)
    keep_dev = keep_region.to(method.device)

    def wrap(fn):
        return known_region(fn, x_dev, keep_dev, path=method.path, target=method.cfg.target)

    if resample > 1:
        if strength < 1:
            raise GenlabError("--resample (RePaint) starts from noise: drop --strength or set it to 1")
        out = repaint(
            method, x_dev, keep_dev, cond=cond, settings=settings, generator=generator, jump=jump, resample=resample
        )
    else:
        out = method.sample(
            len(x),
            cond=cond,
            settings=settings,
            generator=generator,
            callback=callback,
            wrap=wrap,
            init=x_dev if strength < 1 else None,
            strength=strength,
        )
    blended = keep_dev * x_dev + (1 - keep_dev) * out.x  # the kept pixels are x exactly, whatever the float error
    return Samples(torch.where(keep_dev == 1, x_dev, blended), out.nfe, out.sampler, cond)


def read_image(path, *, channels: int, size: int, resize: bool = False) -> Tensor:
    """One image file as (1, channels, size, size) in [-1, 1]; another size is an error unless `resize`
    (centre crop + bicubic resize)."""
    from genlab.data.images import center_crop_resize, load_image, uint8_to_tensor

    image = load_image(path, channels=channels)
    if image.shape[:2] != (size, size):
        if not resize:
            raise GenlabError(
                f"{path} is {image.shape[1]}x{image.shape[0]} but the run makes {size}x{size} images: "
                "pass --resize (centre crop + resize) or an image of that size"
            )
        image = center_crop_resize(image, size)
    return uint8_to_tensor(np.array(image[None]))  # a writable copy


def read_mask(path, *, size: int, resize: bool = False) -> Tensor:
    """A mask image as (1, 1, size, size) in [0, 1] (white = make, black = keep)."""
    return (read_image(path, channels=1, size=size, resize=resize) + 1) / 2


def preview_row(image: Tensor, edits: Tensor, *, task: str, mask: Tensor | None = None, keep: float = 0.5) -> Tensor:
    """One row to look at: the input, what the model was given (the kept pixels; inpaint/outpaint), the edits."""
    if task == "sdedit":
        return torch.cat([image, edits])
    m = mask if mask is not None else border_mask(image.shape[-1], keep)
    return torch.cat([image, image * (1 - m) - m, edits])  # made pixels shown black (-1)
