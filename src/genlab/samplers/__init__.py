"""Samplers: stateless functions over any callable.

`sample(fn, noise, *, sampler, steps, path, target, grid, **opts)` drives any sampler from any
`fn(x_t, t) -> prediction` (the prediction named by `target`; t a (B,) tensor, t = 1 noise → t = 0
data). `SAMPLERS` maps names to functions `(denoise, x, ts, *, path, **opts) -> x`, where
`denoise(x_t, t) -> (x̂, ε̂)`; `SAMPLER_INFO` describes each in one line. The start is
x_{t_max} = b(t_max)·noise (the path's marginal at t_max when a(t_max)·x is negligible).
grid="auto" (the default) is the sampler's own grid, `DEFAULT_GRIDS` / `default_grid(sampler, path)`: the one
on which it attains its order (tests/samplers/test_order.py; the reasons are in grids.py's docstring).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import Tensor

from genlab.errors import GenlabError
from genlab.paths import get_path, to_x_eps
from genlab.samplers.adaptive import sample_dopri5
from genlab.samplers.grids import DEFAULT_GRIDS, GRID_OPTIONS, GRIDS, default_grid, time_grid
from genlab.samplers.guidance import CountNFE, classifier_guided, guided, guided_at
from genlab.samplers.multistep import sample_dpmpp_2m, sample_dpmpp_3m, sample_unipc
from genlab.samplers.ode import sample_euler, sample_heun, sample_midpoint, sample_rk4
from genlab.samplers.sde import sample_ddim, sample_edm, sample_euler_maruyama

SAMPLERS: dict[str, Callable] = {
    "euler": sample_euler,
    "heun": sample_heun,
    "midpoint": sample_midpoint,
    "rk4": sample_rk4,
    "dpmpp_2m": sample_dpmpp_2m,
    "dpmpp_3m": sample_dpmpp_3m,
    "unipc": sample_unipc,
    "dopri5": sample_dopri5,
    "ddim": sample_ddim,
    "euler_maruyama": sample_euler_maruyama,
    "edm": sample_edm,
}
_INFO: dict[str, str] = {
    "euler": "Euler on the probability-flow ODE, 1st order, NFE = steps",
    "heun": "Heun (EDM Alg. 1) in t, 2nd order, NFE = 2·steps − 1",
    "midpoint": "explicit midpoint RK2 in t, 2nd order, NFE = 2·steps",
    "rk4": "classical Runge–Kutta in t, 4th order, NFE = 4·steps (− 1 when b(0) = 0)",
    "dpmpp_2m": "DPM-Solver++(2M) exponential multistep in log-SNR, 2nd order, NFE = steps",
    "dpmpp_3m": "DPM-Solver++(3M) exponential multistep in log-SNR, 3rd order, NFE = steps",
    "unipc": "UniPC predictor-corrector (order=1..4, +1 from the corrector; interp='angle'|'log_snr'), NFE = steps",
    "dopri5": "adaptive Dormand–Prince 5(4) (options rtol, atol); steps sets the first step only",
    "ddim": "DDIM with eta (0 deterministic, 1 ancestral DDPM), NFE = steps",
    "euler_maruyama": "Euler–Maruyama on the reverse SDE with the path's own diffusion g², NFE = steps",
    "edm": "EDM Alg. 2 stochastic Heun in σ = b/a (s_churn, s_tmin, s_tmax, s_noise), NFE ≤ 2·steps − 1",
}
SAMPLER_INFO: dict[str, str] = {  # what `genlab sample --list-samplers` prints
    name: f"{info}; grid auto = {DEFAULT_GRIDS[name]} (uniform on ve)" for name, info in _INFO.items()
}
SILENT = ("eta", "generator")  # passed by generic callers; dropped for samplers that do not take them
STOCHASTIC = ("euler_maruyama", "edm")  # samplers that draw fresh noise on the way


def draws_noise(settings) -> bool:
    """Whether sampling with `settings` draws fresh noise on the way (a stochastic sampler, or DDIM with eta > 0)."""
    return settings.sampler in STOCHASTIC or (settings.sampler == "ddim" and settings.eta > 0)


def deterministic(settings):
    """`settings` on the probability-flow ODE, for uses that follow one trajectory from the noise (inversion,
    prompt-to-prompt, interpolation, reflow couplings): a stochastic sampler becomes Heun on the same steps (its
    grid, guidance and steps kept, so a `--steps` given with it means what it says) and DDIM drops its eta; other
    settings come back unchanged."""
    if not draws_noise(settings):
        return settings
    return settings.replace(eta=0.0) if settings.sampler == "ddim" else settings.replace(sampler="heun")


def as_denoiser(fn: Callable, path, target: str) -> Callable:
    """Turn `fn(x_t, t) -> target prediction` into `denoise(x_t, t) -> (x̂, ε̂)`."""
    return lambda x_t, t: to_x_eps(path, target, x_t, t, fn(x_t, t))


def _sampler_opts(sampler: str, opts: dict) -> dict:
    params = inspect.signature(SAMPLERS[sampler]).parameters
    accepted = [k for k, p in params.items() if p.kind is p.KEYWORD_ONLY and k != "path"]
    unknown = [k for k in opts if k not in accepted and k not in SILENT]
    if unknown:
        raise GenlabError(
            f"sampler {sampler!r} takes no option {unknown[0]!r}; its options: "
            f"{', '.join(accepted) or 'none'}; grid options: {', '.join(GRID_OPTIONS)}"
        )
    return {k: v for k, v in opts.items() if k in accepted}


def _check_target(path, target: str, t_max: Tensor) -> None:
    c, d = path.coefficients(t_max.reshape(1), target)
    if float(path.a(t_max.reshape(1)) * d - path.b(t_max.reshape(1)) * c) == 0.0:
        raise GenlabError(
            f"target {target!r} cannot be inverted at t={float(t_max):g} on path {path.name!r}: "
            "start below it (t_max=0.999) or use target 'flow' or 'v'"
        )


def sample(
    fn: Callable,
    noise: Tensor,
    *,
    sampler: str,
    steps: int,
    path="rectified",
    target: str = "flow",
    grid: str | Tensor = "auto",
    stats: dict | None = None,
    start: Tensor | None = None,
    **opts,
) -> Tensor:
    """Integrate from `noise` (t = t_max) to data (t = 0). Options go to the grid (t_max, shift, sigma_min,
    sigma_max, rho, sigma_data, power) or the sampler (eta, generator, rtol, ...). grid="auto" is the sampler's
    default grid (`default_grid`). If `stats` is a dict, stats['nfe'] is set. `start`, if given, is the state at
    t_max itself (SDEdit's a(t)·x + b(t)·ε) instead of b(t_max)·noise."""
    if sampler not in SAMPLERS:
        raise GenlabError(f"unknown sampler {sampler!r}: use one of {', '.join(SAMPLERS)}")
    path = get_path(path)
    grid_opts = {k: opts.pop(k) for k in GRID_OPTIONS if k in opts}
    sampler_opts = _sampler_opts(sampler, opts)
    ts = time_grid(grid, steps, path=path, sampler=sampler, **grid_opts)
    _check_target(path, target, ts[0])
    counted = CountNFE(fn)
    x = path.b(ts[:1]).to(noise.dtype).item() * noise if start is None else start
    out = SAMPLERS[sampler](as_denoiser(counted, path, target), x, ts.to(noise.device), path=path, **sampler_opts)
    if stats is not None:
        stats["nfe"] = counted.nfe
    return out


__all__ = [
    "DEFAULT_GRIDS",
    "GRIDS",
    "SAMPLERS",
    "SAMPLER_INFO",
    "CountNFE",
    "as_denoiser",
    "classifier_guided",
    "default_grid",
    "guided",
    "guided_at",
    "sample",
    "time_grid",
]
