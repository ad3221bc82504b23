"""Time grids: descending tensors from t_max (noise) to 0 (data), steps + 1 points.

A grid is a plain tensor, so a user can pass their own anywhere a grid name is accepted.
`uniform`: evenly spaced in t. `log_snr`: evenly spaced in λ = log(a²/b²) (clipped to the path's
finite range). `shift`: SD3's resolution shift t ↦ s·t / (1 + (s − 1)·t) of the uniform grid (Esser et
al. 2024), s = `shift`. `karras`: Karras et al. 2022 (eq. 5), σ_i = (σ_max^{1/ρ} + i/(n−1)·(σ_min^{1/ρ} −
σ_max^{1/ρ}))^ρ in σ = b/a, mapped to t by λ = −2·log σ; t = 0 is appended where b(0) = 0 and t_max is
prepended where σ(t_max) = ∞ (rectified: a(1) = 0). `asinh`: steps ∝ the distance from t to t* = t₀ + i·w,
the complex singularity of the ODE solution for Gaussian data of std s = `sigma_data` (x_t ∝ √(a²s² + b²)
vanishes where b = i·s·a), i.e. even in asinh((t − t₀)/w): the radius of convergence of the local Taylor
series bounds what a high-order step can do; rectified: t* = (s² + i·s)/(1 + s²).
`logit`: t = u^p/(u^p + (1 − u)^p) for u even in [1, 0], p = `power` (on rectified σ = b/a = (u/(1 − u))^p):
steps shrink like u^(p−1) at both ends, so the half-log-SNR steps of an exponential integrator (DPM-Solver++)
keep its order even where λ → ±∞ (local error Δλ³·ρ summed over ρ ∝ (i/N)^p is O(N^−2) for p ≥ 2, up to a
log); p = 1 is `uniform`.

`auto` is each sampler's own default grid (`DEFAULT_GRIDS`, via `default_grid(sampler, path)`): the grid on
which it attains its order, chosen among those by accuracy on mixtures it is then checked against (see
benchmarks/sampler_accuracy.py). RK methods in t, UniPC (angle variable) and the 1st-order methods: `uniform`.
DPM-Solver++ 2M/3M integrate in λ = log(a/b): on `uniform` near a = 0 (rectified t = 1) the λ-steps are
log((i+1)/i), which do not shrink with h, and 2M/3M fall to order ≈ 1–2; `logit` (p = 2) restores 2 and 3.
EDM's Heun in σ = b/a has the same defect at σ → ∞: `logit`. On VE, t is already log σ (λ uniform): `uniform`.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

from genlab.errors import GenlabError
from genlab.paths import Path, shift_time

F64 = torch.float64
GRID_OPTIONS = ("t_max", "shift", "sigma_min", "sigma_max", "rho", "sigma_data", "power")  # time_grid's options


def _uniform(steps: int, t_max: float) -> Tensor:
    return torch.linspace(t_max, 0.0, steps + 1, dtype=F64)


def _log_snr(steps: int, t_max: float, path: Path, eps: float = 1e-3) -> Tensor:
    """Even in λ between the clipped ends; the first point is moved back to t_max itself."""
    end = torch.tensor([min(t_max, 1 - eps), eps], dtype=F64)
    lam = path.log_snr(end)
    ts = path.t_from_log_snr(torch.linspace(lam[0].item(), lam[1].item(), steps, dtype=F64))
    ts[0] = t_max
    return torch.cat([ts, torch.zeros(1, dtype=F64)])


def path_sigma(path: Path, t: float) -> float:
    """σ(t) = b(t)/a(t) as a float (inf where a(t) = 0)."""
    tt = torch.tensor([t], dtype=F64)
    a, b = path.a(tt).item(), path.b(tt).item()
    return math.inf if a == 0 else b / a


def _karras(steps, t_max, path, sigma_min, sigma_max, rho) -> Tensor:
    s_top, s_end = path_sigma(path, t_max), path_sigma(path, 0.0)
    sigma_max = sigma_max if sigma_max is not None else (s_top if math.isfinite(s_top) else 80.0)
    sigma_min = sigma_min if sigma_min is not None else (s_end if s_end > 0 else 0.002)
    if not s_end <= sigma_min < sigma_max <= s_top:
        raise GenlabError(
            f"karras grid needs σ(0)={s_end:.3g} <= sigma_min < sigma_max <= σ(t_max)={s_top:.3g}, "
            f"got sigma_min={sigma_min:.3g}, sigma_max={sigma_max:.3g}"
        )
    head = [t_max] if sigma_max < s_top else []  # σ(t_max) = ∞ or a user σ_max below the path's top
    tail = [0.0] if sigma_min > s_end else []  # b(0) = 0, or a user σ_min above the path's end
    n = steps + 1 - len(head) - len(tail)
    if n < 1:
        return _uniform(steps, t_max)
    u = torch.linspace(0, 1, n, dtype=F64) if n > 1 else torch.zeros(1, dtype=F64)
    sig = (sigma_max ** (1 / rho) + u * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho  # (n,)
    ts = path.t_from_log_snr(-2 * torch.log(sig))
    if not head:
        ts[0] = t_max  # exact ends despite the λ round trip
    if not tail:
        ts[-1] = 0.0
    return torch.cat([torch.tensor(head, dtype=F64), ts, torch.tensor(tail, dtype=F64)])


def singularity(path: Path, sigma_data: float) -> complex:
    """The complex t* (Im > 0) nearest the real axis where b(t*) = i·s·a(t*), by Newton's method from the
    real t where σ = s (paths whose a, b extend to complex t: rectified, vp_cosine, ve)."""
    t = complex(float(path.t_from_log_snr(torch.tensor([-2 * math.log(sigma_data)], dtype=F64))), 0.25)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a path that drops the imaginary part (vp_ddpm's table) warns: stop
            for _ in range(60):
                tt = torch.tensor([t], dtype=torch.complex128)
                f = path.b(tt) - 1j * sigma_data * path.a(tt)
                step = complex((f / (path.db(tt) - 1j * sigma_data * path.da(tt))).item())
                t -= step
                if abs(step) < 1e-14:
                    return complex(t.real, abs(t.imag))
    except (RuntimeError, TypeError, UserWarning):
        pass
    raise GenlabError(
        f"grid 'asinh' found no complex t with b = i·{sigma_data:g}·a on path {path.name!r} (it needs "
        "analytic a(t), b(t): rectified, vp_cosine with sigma_data < 1, ve): use grid 'log_snr' or "
        "'karras'"
    )


def _asinh(steps: int, t_max: float, path: Path, sigma_data: float) -> Tensor:
    if sigma_data <= 0:
        raise GenlabError(f"sigma_data must be > 0, got {sigma_data}")
    star = singularity(path, sigma_data)
    t0, w = star.real, star.imag
    u = torch.linspace(math.asinh((t_max - t0) / w), math.asinh(-t0 / w), steps + 1, dtype=F64)
    ts = t0 + w * torch.sinh(u)
    ts[0], ts[-1] = t_max, 0.0  # exact ends
    return ts


def _logit(steps: int, t_max: float, power: float) -> Tensor:
    """t = t_max·u^p / (u^p + (1 − u)^p), u even from 1 to 0: step sizes shrink like u^(p−1) at both ends."""
    if power <= 0:
        raise GenlabError(f"power must be > 0, got {power}")
    u = torch.linspace(1.0, 0.0, steps + 1, dtype=F64)
    up, vp = u**power, (1 - u) ** power
    return t_max * up / (up + vp)


def _check(ts: Tensor) -> Tensor:
    if ts.numel() < 2 or not bool((ts[1:] < ts[:-1]).all()):
        raise GenlabError(
            "a time grid must be strictly decreasing with at least 2 points; use fewer steps or other grid options"
        )
    return ts


DEFAULT_GRIDS: dict[str, str] = {  # sampler -> the grid `auto` resolves to (why: module docstring)
    "euler": "uniform",
    "heun": "uniform",
    "midpoint": "uniform",
    "rk4": "uniform",
    "dpmpp_2m": "logit",
    "dpmpp_3m": "logit",
    "unipc": "uniform",
    "dopri5": "uniform",
    "ddim": "uniform",
    "euler_maruyama": "uniform",
    "edm": "logit",
}


def default_grid(sampler: str, path: Path) -> str:
    """The grid `auto` means for `sampler` on `path` (uniform on VE, where t is already log σ)."""
    if sampler not in DEFAULT_GRIDS:
        raise GenlabError(f"grid 'auto' needs a known sampler, got {sampler!r}: use one of {', '.join(DEFAULT_GRIDS)}")
    return "uniform" if getattr(path, "name", "") == "ve" else DEFAULT_GRIDS[sampler]


def time_grid(
    grid: str | Tensor,
    steps: int,
    *,
    path: Path,
    sampler: str | None = None,
    t_max: float = 1.0,
    shift: float = 3.0,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    rho: float = 7.0,
    sigma_data: float = 0.5,
    power: float = 2.0,
) -> Tensor:
    """A descending float64 grid [t_max, ..., 0] of steps + 1 times (a tensor grid is returned as given);
    grid="auto" is `default_grid(sampler, path)`."""
    if isinstance(grid, Tensor):
        ts = grid.to(F64).flatten()
        if ts.numel() < 2 or not bool((ts[1:] < ts[:-1]).all()):
            raise GenlabError("a custom time grid must be strictly decreasing with at least 2 points")
        return ts
    if steps < 1:
        raise GenlabError(f"steps must be >= 1, got {steps}")
    if grid == "auto":
        if sampler is None:
            raise GenlabError("grid 'auto' is the sampler's own default grid: pass sampler= or name a grid")
        grid = default_grid(sampler, path)
    if not 0 < t_max <= 1:
        raise GenlabError(f"t_max must be in (0, 1], got {t_max}")
    if grid == "uniform":
        return _uniform(steps, t_max)
    if grid == "log_snr":
        return _check(_log_snr(steps, t_max, path))
    if grid == "shift":
        if shift <= 0:
            raise GenlabError(f"shift must be > 0, got {shift}")
        return shift_time(_uniform(steps, t_max), shift)
    if grid == "karras":
        return _check(_karras(steps, t_max, path, sigma_min, sigma_max, rho))
    if grid == "asinh":
        return _check(_asinh(steps, t_max, path, sigma_data))
    if grid == "logit":
        return _check(_logit(steps, t_max, power))
    raise GenlabError(f"unknown grid {grid!r}: use one of auto, {', '.join(GRIDS)} or pass a tensor")


GRIDS = ("uniform", "log_snr", "shift", "karras", "asinh", "logit")
