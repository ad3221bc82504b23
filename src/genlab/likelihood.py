"""Exact log-likelihood through the probability-flow ODE (instantaneous change of variables).

Along dx_t/dt = v(x_t, t), d log p_t(x_t)/dt = −div v(x_t, t), so integrating data → noise
    log p_0(x) = log N(x_1; 0, b(1)² I) + ∫_0^1 div v(x_t, t) dt          (Chen et al. 2018; Song et al. 2021)
(the prior ignores a(1)·x, which is 0 on the rectified path and e^{-7.5} on VP cosine). div v is exact
(Σ_i ∂v_i/∂x_i, one vector-Jacobian product per dimension, batched) or Hutchinson's z^T (∂v/∂x) z with
Rademacher or Gaussian probes z held fixed over the solve (Hutchinson 1989; Grathwohl et al. 2018, FFJORD).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from genlab.errors import GenlabError
from genlab.paths import get_path, velocity
from genlab.samplers import CountNFE, as_denoiser
from genlab.samplers.adaptive import solve_dopri5

SOLVERS = ("rk4", "dopri5")
DIVERGENCES = ("auto", "exact", "hutchinson")
PROBES = ("rademacher", "gaussian")
EXACT_MAX_DIM = 32  # `auto` uses the exact trace up to this many dimensions (it costs D backward passes)
MAX_ROWS = 4096  # rows per batched network call (B × dims or B × probes); larger work is chunked


def _cotangents(shape: tuple, dims: Tensor, *, dtype, device) -> Tensor:
    """(len(dims)·B, *shape) one-hot rows: row k·B + b is the basis vector e_{dims[k]}."""
    b, d = shape[0], math.prod(shape[1:])
    eye = torch.zeros(len(dims), d, dtype=dtype, device=device)
    eye[torch.arange(len(dims)), dims] = 1.0
    return eye.repeat_interleave(b, 0).reshape(len(dims) * b, *shape[1:])


def _probes(shape: tuple, k: int, kind: str, generator: torch.Generator, *, dtype, device) -> Tensor:
    """(k·B, *shape) Hutchinson probes with E[z z^T] = I."""
    z = torch.randn((k * shape[0], *shape[1:]), generator=generator, dtype=torch.float64)
    z = z.sign() if kind == "rademacher" else z
    return z.to(dtype=dtype, device=device)


def _vjp_quadratic(vel: Callable, x: Tensor, t: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    """(v(x, t), Σ_k z_k^T (∂v/∂x) z_k per sample) with the k copies of x in one batched call."""
    b, k = x.shape[0], z.shape[0] // x.shape[0]
    with torch.enable_grad():
        xr = x.detach().repeat(k, *([1] * (x.dim() - 1))).requires_grad_(True)  # (k·B, ...)
        v = vel(xr, t.repeat(k))
        (g,) = torch.autograd.grad(v, xr, grad_outputs=z)  # z^T ∂v/∂x
    quad = (g * z).flatten(1).sum(1).reshape(k, b).sum(0)  # (B,)
    return v[:b].detach(), quad.detach()


def divergence_fn(vel: Callable, *, divergence: str, probes: int, probe: str, generator: torch.Generator) -> Callable:
    """f(x, t) -> (v, div v): exact trace or Hutchinson with probes drawn once and reused at every t."""
    fixed: dict = {}

    def f(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        opts = {"dtype": x.dtype, "device": x.device}
        if divergence == "hutchinson":
            if "z" not in fixed:
                fixed["z"] = _probes(x.shape, probes, probe, generator, **opts)
            chunks = fixed["z"].split(max(1, MAX_ROWS // x.shape[0]) * x.shape[0])
            results = [_vjp_quadratic(vel, x, t, z) for z in chunks]
            return results[0][0], sum(r[1] for r in results) / probes
        dims = torch.arange(math.prod(x.shape[1:]), device=x.device).split(max(1, MAX_ROWS // x.shape[0]))
        results = [_vjp_quadratic(vel, x, t, _cotangents(x.shape, d, **opts)) for d in dims]
        return results[0][0], sum(r[1] for r in results)

    return f


def _rk4(f: Callable, x: Tensor, ts: Tensor) -> tuple[Tensor, Tensor]:
    """Classical RK4 (Kutta 1901) on the joint state (x, ∫ div v dt) over the grid ts."""
    acc = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    for t, s in zip(ts[:-1], ts[1:]):
        h = float(s - t)
        k1 = f(x, t)
        k2 = f(x + h / 2 * k1[0], (t + s) / 2)
        k3 = f(x + h / 2 * k2[0], (t + s) / 2)
        k4 = f(x + h * k3[0], s)
        x = x + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        acc = acc + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1]).double()
    return x, acc


def _dopri5(f: Callable, x: Tensor, ts: Tensor, *, rtol: float, atol: float) -> tuple[Tensor, Tensor]:
    """Adaptive Dormand–Prince on y = [x.flatten(1), ∫ div v dt] (samplers.adaptive's step control)."""
    shape = x.shape

    def joint(y: Tensor, t: Tensor) -> Tensor:
        v, div = f(y[:, :-1].reshape(shape), t.to(y.dtype).reshape(1))
        return torch.cat([v.flatten(1), div[:, None].to(y.dtype)], 1)

    y = torch.cat([x.flatten(1), torch.zeros(shape[0], 1, dtype=x.dtype, device=x.device)], 1)
    y = solve_dopri5(joint, y, ts[0], ts[-1], first_step=ts[1] - ts[0], rtol=rtol, atol=atol)
    return y[:, :-1].reshape(shape), y[:, -1].double()


def _check(solver: str, divergence: str, probe: str, probes: int, t_min: float, steps: int) -> None:
    for name, value, allowed in (
        ("solver", solver, SOLVERS),
        ("divergence", divergence, DIVERGENCES),
        ("probe", probe, PROBES),
    ):
        if value not in allowed:
            raise GenlabError(f"likelihood {name} {value!r} is unknown: use one of {', '.join(allowed)}")
    if probes < 1 or steps < 1 or not 0.0 <= t_min < 1.0:
        raise GenlabError(
            f"likelihood needs probes >= 1, steps >= 1 and 0 <= t_min < 1; got probes={probes}, "
            f"steps={steps}, t_min={t_min}"
        )


def log_likelihood(
    fn: Callable,
    x: Tensor,
    *,
    path="rectified",
    target: str = "flow",
    solver: str = "rk4",
    steps: int = 32,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    divergence: str = "auto",
    probes: int = 1,
    probe: str = "rademacher",
    t_min: float = 1e-5,
    seed: int = 0,
    stats: dict | None = None,
) -> Tensor:
    """log p(x) in nats, (B,), of the model `fn(x_t, t) -> prediction of target` (as `samplers.sample`).

    Integrates from t_min to 1. t_min = 1e-5 by default (Song et al. 2021): the start x is read as a point of
    p_{t_min}, which differs from p_0 by a blur of std b(t_min) (1e-5 on the rectified path), and it keeps
    x/ε targets invertible; t_min = 0 works where the target is invertible at t = 0 (flow, v; eps if a(0) > 0).
    divergence: 'auto' (exact up to 32 dims), 'exact' or 'hutchinson' (`probes` per sample, seeded).
    stats, if a dict, receives nfe (velocity + divergence evaluations), the estimator and the solver."""
    _check(solver, divergence, probe, probes, t_min, steps)
    path = get_path(path)
    dim = math.prod(x.shape[1:])
    kind = divergence if divergence != "auto" else ("exact" if dim <= EXACT_MAX_DIM else "hutchinson")
    denoise = as_denoiser(fn, path, target)
    vel = lambda x_t, t: velocity(path, t, *denoise(x_t, t))  # noqa: E731
    div_fn = divergence_fn(
        vel, divergence=kind, probes=probes, probe=probe, generator=torch.Generator().manual_seed(seed)
    )
    # the grid stays in float64 on the CPU (exact step sizes); each time becomes a batch on x's device and dtype
    counted = CountNFE(lambda x_t, t: div_fn(x_t, t.to(x_t.device, x_t.dtype).expand(x_t.shape[0])))
    ts = torch.linspace(t_min, 1.0, steps + 1, dtype=torch.float64)
    if solver == "rk4":
        x1, integral = _rk4(counted, x, ts)
    else:
        x1, integral = _dopri5(counted, x, ts, rtol=rtol, atol=atol)
    b1 = float(path.b(torch.ones(1, dtype=torch.float64)))
    prior = -0.5 * (x1.double().flatten(1) ** 2).sum(1) / b1**2 - dim * math.log(b1 * math.sqrt(2 * math.pi))
    if stats is not None:
        stats.update(
            nfe=counted.nfe,
            divergence=kind,
            solver=solver,
            t_min=t_min,
            **({"probes": probes, "probe": probe} if kind == "hutchinson" else {}),
            **({"steps": steps} if solver == "rk4" else {"rtol": rtol, "atol": atol}),
        )
    return prior + integral


def bits_per_dim(log_prob: Tensor, dim: int) -> Tensor:
    """−log p / (D·ln 2): nats per sample → bits per dimension."""
    return -log_prob / (dim * math.log(2))


def dequantize(x: Tensor, *, generator: torch.Generator | None = None) -> tuple[Tensor, float]:
    """(x + uniform noise over its 8-bit bin, D·log(2/255)): E[log p(x̃)] + D·log(2/255) ≤ log P(bin) (Jensen;
    Theis et al. 2016). Pixel u sits at x = u/127.5 − 1, so its bin is [x − 1/255, x + 1/255] (as in
    genlab.methods.discretized and Method.log_likelihood)."""
    width = 2.0 / 255
    u = torch.rand(x.shape, generator=generator, dtype=torch.float64).to(x.dtype).to(x.device)
    return x + width * (u - 0.5), math.prod(x.shape[1:]) * math.log(width)
