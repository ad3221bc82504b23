"""Samplers: stateless functions over any callable.

`sample(fn, noise, *, sampler, steps, path, target, grid)` drives any sampler from any
`fn(x_t, t) -> prediction` (the prediction named by `target`; t a (B,) tensor, t = 1 noise → t = 0
data). `SAMPLERS` maps names to functions `(denoise, x, ts, *, path, **opts) -> x`, where
`denoise(x_t, t) -> (x̂, ε̂)`.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from genlab.errors import GenlabError
from genlab.paths import get_path, to_x_eps
from genlab.samplers.grids import GRIDS, time_grid
from genlab.samplers.guidance import CountNFE, guided
from genlab.samplers.ode import sample_euler, sample_heun
from genlab.samplers.sde import sample_ddim

SAMPLERS: dict[str, Callable] = {
    "euler": sample_euler,
    "heun": sample_heun,
    "ddim": sample_ddim,
}
STOCHASTIC = {"ddim"}  # samplers that accept eta / generator


def as_denoiser(fn: Callable, path, target: str) -> Callable:
    """Turn `fn(x_t, t) -> target prediction` into `denoise(x_t, t) -> (x̂, ε̂)`."""
    return lambda x_t, t: to_x_eps(path, target, x_t, t, fn(x_t, t))


def sample(
    fn: Callable,
    noise: Tensor,
    *,
    sampler: str,
    steps: int,
    path="rectified",
    target: str = "flow",
    grid: str | Tensor = "uniform",
    stats: dict | None = None,
    **opts,
) -> Tensor:
    """Integrate from `noise` (t = 1) to data (t = 0). If `stats` is a dict, stats['nfe'] is set."""
    if sampler not in SAMPLERS:
        raise GenlabError(f"unknown sampler {sampler!r}: use one of {', '.join(SAMPLERS)}")
    if sampler not in STOCHASTIC:
        opts = {k: v for k, v in opts.items() if k not in ("eta", "generator")}
    path = get_path(path)
    counted = CountNFE(fn)
    ts = time_grid(grid, steps, path=path).to(noise.device)
    out = SAMPLERS[sampler](as_denoiser(counted, path, target), noise, ts, path=path, **opts)
    if stats is not None:
        stats["nfe"] = counted.nfe
    return out


__all__ = ["GRIDS", "SAMPLERS", "CountNFE", "as_denoiser", "guided", "sample", "time_grid"]
