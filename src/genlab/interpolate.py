"""Latent interpolation: rows of decode(z_t) for t on a uniform grid in [0, 1] between random endpoints.

lerp: z_t = (1 - t) z_a + t z_b. slerp (Shoemake 1985): with cos(theta) = <z_a, z_b> / (|z_a| |z_b|),
z_t = [sin((1 - t) theta) z_a + sin(t theta) z_b] / sin(theta). For Gaussian latents in D dimensions
|z| concentrates near sqrt(D); lerp's midpoint has norm about sqrt(D/2), a region the prior never
samples, while slerp stays on the shell, so it is the default. Flow / diffusion runs interpolate the
initial noise and integrate their deterministic sampler from it (a stochastic sampler would not be a
function of the noise, so a recipe's stochastic sampler is replaced by Heun on the same ODE).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from genlab.errors import GenlabError
from genlab.runs import Run, load_run, write_samples

MODES = ("slerp", "lerp")


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
    run: str | Path | Run,
    *,
    n_rows: int = 6,
    steps: int = 8,
    label: int | None = None,
    mode: str = "slerp",
    seed: int = 0,
) -> Tensor:
    """(n_rows * steps, C, H, W) images: row i decodes the path from z_a[i] to z_b[i] in `steps` points."""
    if mode not in MODES:
        raise GenlabError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if n_rows < 1 or steps < 2:
        raise GenlabError(f"need --n-rows >= 1 and --steps >= 2, got {n_rows} and {steps}")
    run = run if isinstance(run, Run) else load_run(run)
    method = run.method
    if not method.has_latent:
        raise GenlabError(
            f"method.kind={method.kind!r} has no latent space to interpolate: use a GAN, VAE, flow or diffusion run"
        )
    settings = run.resolve_deterministic()  # one trajectory per latent: a stochastic recipe sampler becomes its ODE
    gen = torch.Generator().manual_seed(seed)
    z_a, z_b = method.sample_latent(n_rows, gen), method.sample_latent(n_rows, gen)
    t = torch.linspace(0, 1, steps, device=z_a.device)
    z = (slerp if mode == "slerp" else lerp)(z_a, z_b, t).flatten(0, 1)  # (n_rows * steps, ...)
    labels = run.conditions(n_rows, label=label)
    cond = labels.repeat_interleave(steps) if torch.is_tensor(labels) else None
    with torch.no_grad():
        return method.decode(z, cond, settings=settings)


def write_interpolation(run: str | Path | Run, out: str | Path, *, steps: int = 8, **opts) -> Path:
    """Render `interpolate_run` as a PNG grid, one interpolation per row."""
    if Path(out).suffix != ".png":
        raise GenlabError(f"-o {out}: interpolations are written as a .png grid")
    x = interpolate_run(run, steps=steps, **opts)
    return write_samples(x.cpu(), None, out, nrow=steps)
