"""Latent interpolation: rows of decode(z_t) for t on a uniform grid in [0, 1] between random endpoints.

lerp: z_t = (1 - t) z_a + t z_b. slerp (Shoemake 1985): with cos(theta) = <z_a, z_b> / (|z_a| |z_b|),
z_t = [sin((1 - t) theta) z_a + sin(t theta) z_b] / sin(theta). For Gaussian latents in D dimensions
|z| concentrates near sqrt(D); lerp's midpoint has norm about sqrt(D/2), a region the prior never
samples, while slerp stays on the shell, so it is the default. Flow / diffusion runs interpolate the
initial noise and integrate their deterministic sampler from it (a stochastic sampler would not be a
function of the noise).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from torch import Tensor

from genlab.checkpoint import load_method
from genlab.errors import GenlabError
from genlab.models import data_shape
from genlab.sampling import class_labels, write_samples

MODES = ("slerp", "lerp")
STOCHASTIC = ("euler_maruyama", "edm")  # samplers that draw fresh noise on the way


def lerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """(1 - t) a + t b for a, b (n, ...) and t (k,) -> (n, k, ...)."""
    t = t.view(1, -1, *([1] * (a.dim() - 1)))  # (1, k, 1...)
    return (1 - t) * a.unsqueeze(1) + t * b.unsqueeze(1)


def slerp(a: Tensor, b: Tensor, t: Tensor, *, eps: float = 1e-7) -> Tensor:
    """Spherical interpolation of each pair (a_i, b_i) (flattened), (n, ...) x (k,) -> (n, k, ...); lerp if parallel."""
    fa, fb = a.flatten(1), b.flatten(1)  # (n, D)
    cos = (fa * fb).sum(1) / (fa.norm(dim=1) * fb.norm(dim=1)).clamp_min(eps)
    theta = torch.arccos(cos.clamp(-1.0, 1.0))[:, None]  # (n, 1)
    tt = t[None, :]  # (1, k)
    sin = torch.sin(theta)
    parallel = sin.abs() < eps
    safe = torch.where(parallel, torch.ones_like(sin), sin)
    wa = torch.where(parallel, 1 - tt, torch.sin((1 - tt) * theta) / safe)  # (n, k)
    wb = torch.where(parallel, tt, torch.sin(tt * theta) / safe)  # (n, k)
    shape = (*wa.shape, *([1] * (a.dim() - 1)))
    return wa.view(shape) * a.unsqueeze(1) + wb.view(shape) * b.unsqueeze(1)


def interpolate_run(
    run: str | Path, *, n_rows: int = 6, steps: int = 8, label: int | None = None, mode: str = "slerp", seed: int = 0,
) -> Tensor:
    """(n_rows * steps, C, H, W) images: row i decodes the path from z_a[i] to z_b[i] in `steps` points."""
    if mode not in MODES:
        raise GenlabError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if n_rows < 1 or steps < 2:
        raise GenlabError(f"need --n-rows >= 1 and --steps >= 2, got {n_rows} and {steps}")
    recipe, method, _ = load_method(run)
    decode, draw = latent_decoder(recipe, method)
    gen = torch.Generator(device=next(method.parameters()).device).manual_seed(seed)
    z_a, z_b = draw(n_rows, gen), draw(n_rows, gen)
    t = torch.linspace(0, 1, steps, device=z_a.device)
    z = (slerp if mode == "slerp" else lerp)(z_a, z_b, t).flatten(0, 1)  # (n_rows * steps, ...)
    labels = class_labels(n_rows, getattr(recipe.model, "num_classes", 0) or 0, label)
    with torch.no_grad():
        return decode(z, None if labels is None else labels.repeat_interleave(steps))


def latent_decoder(recipe, method):
    """(decode(z, label) -> images, draw(n, generator) -> z) for a method with a Gaussian latent or initial noise."""
    if all(hasattr(method, a) for a in ("latent_shape", "sample_latent", "decode")):
        return method.decode, method.sample_latent
    if "noise" not in inspect.signature(method.sample).parameters:
        raise GenlabError(
            f"method.kind={recipe.method.kind!r} has no latent space to interpolate: "
            "use a GAN, VAE, flow or diffusion run"
        )
    settings = {k: getattr(recipe.sample, k) for k in ("sampler", "steps", "grid", "guidance_scale", "eta")}
    if settings["sampler"] in STOCHASTIC or (settings["sampler"] == "ddim" and settings["eta"] > 0):
        raise GenlabError(f"sampler {settings['sampler']!r} (eta={settings['eta']}) is stochastic: "
                          "interpolation needs a deterministic one (set sample.sampler, e.g. heun)")
    shape = data_shape(recipe.model)
    return (
        lambda z, label: method.sample(len(z), label=label, noise=z, **settings),
        lambda n, gen: torch.randn((n, *shape), generator=gen, device=gen.device),
    )


def write_interpolation(run: str | Path, out: str | Path, *, steps: int = 8, **opts) -> Path:
    """Render `interpolate_run` as a PNG grid, one interpolation per row."""
    if Path(out).suffix != ".png":
        raise GenlabError(f"-o {out}: interpolations are written as a .png grid")
    x = interpolate_run(run, steps=steps, **opts)
    return write_samples(x.cpu(), None, out, nrow=steps)
