"""Samplers beyond Euler/Heun/DDIM: convergence orders, adaptive tolerance, stochastic laws, guidance
variants, the Karras grid, and every sampler on every path/target through `sample()`."""

import math

import pytest
import torch

from genlab.analytic import GaussianMixture
from genlab.errors import GenlabError
from genlab.paths import from_x_eps, get_path, shift_time
from genlab.samplers import SAMPLER_INFO, SAMPLERS, deterministic, draws_noise, guided, sample, time_grid
from genlab.settings import SampleSettings

F64 = torch.float64


def _gauss(mu=0.7, s=0.4):
    return GaussianMixture(torch.tensor([[mu, -mu]]), torch.tensor([s]))


def _mixture():
    means = torch.tensor([[-2.0, 0.0], [2.0, 0.5], [0.0, 2.0]])
    return GaussianMixture(means, torch.tensor([0.3, 0.5, 0.4]), torch.tensor([0.5, 0.3, 0.2]))


def _noise(n=64, dim=2, seed=0):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _errors(name, path_name, grid, steps, opts=None):
    """Max endpoint error against the exact single-Gaussian ODE solution, per step count."""
    path, gm, noise = get_path(path_name), _gauss(), _noise()
    t_max = 1.0 if path_name == "rectified" else 0.999
    exact = gm.ode_endpoint(path, noise, t_max)
    errs = []
    for n in steps:
        ts = time_grid(grid, n, path=path, t_max=t_max)
        out = SAMPLERS[name](gm.denoiser(path), noise, ts, path=path, **(opts or {}))
        errs.append((out - exact).abs().max().item())
    return [math.log2(errs[i] / errs[i + 1]) for i in range(len(errs) - 1)], errs


@pytest.mark.parametrize(
    "name, path_name, grid, steps, lo, hi",
    [
        ("midpoint", "vp_cosine", "uniform", (16, 32, 64), 1.8, 2.4),
        ("rk4", "vp_cosine", "uniform", (4, 8, 16), 3.5, 6.0),  # saturates at finer grids
        ("dpmpp_2m", "vp_cosine", "log_snr", (16, 32, 64), 1.7, 2.4),
        ("dpmpp_3m", "vp_cosine", "log_snr", (16, 32, 64), 2.5, 5.0),
        ("unipc", "rectified", "uniform", (16, 32, 64), 2.0, 4.0),
        ("unipc", "vp_ddpm", "log_snr", (16, 32, 64), 2.0, 4.0),
    ],
)
def test_order_of_convergence(name, path_name, grid, steps, lo, hi):
    orders, errs = _errors(name, path_name, grid, steps)
    assert all(lo <= o <= hi for o in orders), (name, orders, errs)


@pytest.mark.parametrize("tol", [1e-4, 1e-7])
def test_dopri5_meets_tolerance_and_counts_nfe(tol):
    path, gm, noise = get_path("rectified"), _gauss(), _noise()
    seen = []
    fn = gm.flow_fn(path)

    def recorded(x, t):
        seen.append(float(t[0]))
        return fn(x, t)

    stats = {}
    out = sample(recorded, noise, sampler="dopri5", steps=4, rtol=tol, atol=tol, stats=stats)
    err = (out - gm.ode_endpoint(path, noise, 1.0)).abs().max().item()
    assert err <= 10 * tol, err
    assert stats["nfe"] == len(seen) and stats["nfe"] >= 7
    assert min(seen) > 0 and max(seen) <= 1  # t = 0 (b = 0) uses the closed-form velocity, never the model


@pytest.mark.parametrize(
    "name, steps, opts",
    [("euler_maruyama", 100, {}), ("edm", 32, {"s_churn": 20.0, "s_tmin": 0.05, "s_tmax": 50.0})],
)
@pytest.mark.parametrize("path_name", ["rectified", "vp_cosine"])
def test_stochastic_samplers_reproduce_mixture(name, steps, opts, path_name):
    path, gm = get_path(path_name), _mixture()
    g = torch.Generator().manual_seed(1)
    n = 20000
    noise = torch.randn(n, 2, generator=g, dtype=F64)
    t_max = 1.0 if path_name == "rectified" else 0.999
    out = sample(gm.flow_fn(path), noise, sampler=name, steps=steps, path=path, generator=g, t_max=t_max, **opts)
    w, mu, s = gm.weights[:, None], gm.means, gm.stds[:, None]
    mean = (w * mu).sum(0)
    std = ((w * (s**2 + mu**2)).sum(0) - mean**2).sqrt()
    assert bool(((out.mean(0) - mean).abs() < 4.5 * std / math.sqrt(n)).all()), (out.mean(0), mean)
    assert bool(((out.std(0) - std).abs() < 0.02).all()), (out.std(0), std)
    assign = lambda x: torch.cdist(x, gm.means).argmin(1).bincount(minlength=3) / len(x)  # noqa: E731
    assert torch.allclose(assign(out), assign(gm.sample(n, generator=g)), atol=0.015)


def test_churn_changes_samples_and_zero_churn_is_deterministic():
    path, gm, noise = get_path("rectified"), _mixture(), _noise(256)
    a = sample(gm.flow_fn(path), noise, sampler="edm", steps=8, generator=torch.Generator().manual_seed(0))
    b = sample(gm.flow_fn(path), noise, sampler="edm", steps=8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    c = sample(gm.flow_fn(path), noise, sampler="edm", steps=8, s_churn=5.0, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(a, c)


# ----------------------------------------------------------------------------- guidance


def _model(calls):
    def model(x, t, c):
        calls.append(len(x))
        return x * c[:, None].to(x.dtype) + t[:, None] ** 2

    return model


def test_guidance_scale_one_interval_and_rescale():
    calls = []
    model = _model(calls)
    x, cond, null = torch.randn(6, 3, dtype=F64), torch.full((6,), 3), torch.full((6,), 1)
    t_in, t_out = torch.full((6,), 0.5, dtype=F64), torch.full((6,), 0.9, dtype=F64)
    for opts in ({}, {"interval": (0.2, 0.7)}, {"rescale": 0.7}):
        assert torch.equal(guided(model, cond, scale=1.0, null_cond=null, **opts)(x, t_in), model(x, t_in, cond))
    plain = guided(model, cond, scale=3.0, null_cond=null)
    limited = guided(model, cond, scale=3.0, null_cond=null, interval=(0.2, 0.7))
    calls.clear()
    assert torch.equal(limited(x, t_out), model(x, t_out, cond))  # outside: the conditional model
    assert torch.equal(limited(x, t_in), plain(x, t_in))  # inside: plain CFG
    assert calls == [6, 6, 12, 12]  # one cond call outside; one batched call for each CFG
    mixed = torch.tensor([0.5, 0.9, 0.5, 0.9, 0.1, 0.6], dtype=F64)
    want = torch.where(((mixed >= 0.2) & (mixed <= 0.7))[:, None], plain(x, mixed), model(x, mixed, cond))
    assert torch.equal(limited(x, mixed), want)
    assert torch.equal(guided(model, cond, scale=3.0, null_cond=null, rescale=0.0)(x, t_in), plain(x, t_in))
    full = guided(model, cond, scale=3.0, null_cond=null, rescale=1.0)(x, t_in)
    assert torch.allclose(full.std(1), model(x, t_in, cond).std(1))
    with pytest.raises(GenlabError, match="rescale"):
        guided(model, cond, scale=3.0, null_cond=null, rescale=2.0)
    with pytest.raises(GenlabError, match="interval"):
        guided(model, cond, scale=3.0, null_cond=null, interval=(0.8, 0.2))


# ----------------------------------------------------------------------------- grids


def _sigma(path, t):
    t = torch.as_tensor(t, dtype=F64).reshape(1)
    return float(path.b(t) / path.a(t))


def test_karras_grid_hits_sigma_range():
    ve, rect = get_path("ve"), get_path("rectified")
    ts = time_grid("karras", 10, path=ve)  # EDM's own setting: σ from 80 to 0.002 over the whole grid
    assert len(ts) == 11 and ts[0] == 1 and ts[-1] == 0 and bool((ts[1:] < ts[:-1]).all())
    assert math.isclose(_sigma(ve, ts[0]), 80.0, rel_tol=1e-9)
    assert math.isclose(_sigma(ve, ts[-1]), 0.002, rel_tol=1e-9)
    ts = time_grid("karras", 10, path=rect, sigma_min=0.01, sigma_max=50.0)  # σ(1) = ∞, σ(0) = 0
    assert len(ts) == 11 and ts[0] == 1 and ts[-1] == 0 and bool((ts[1:] < ts[:-1]).all())
    assert math.isclose(_sigma(rect, ts[1]), 50.0, rel_tol=1e-9)
    assert math.isclose(_sigma(rect, ts[-2]), 0.01, rel_tol=1e-9)
    sig = torch.tensor([_sigma(rect, t) for t in ts[1:-1]], dtype=F64)
    expect = torch.linspace(50.0 ** (1 / 7), 0.01 ** (1 / 7), 9, dtype=F64) ** 7
    assert torch.allclose(sig, expect, rtol=1e-9)
    ddpm = time_grid("karras", 10, path=get_path("vp_ddpm"))
    assert ddpm[0] == 1 and ddpm[-1] == 0 and bool((ddpm[1:] < ddpm[:-1]).all())
    with pytest.raises(GenlabError, match="sigma_min"):
        time_grid("karras", 10, path=ve, sigma_min=1e-4)


def test_shift_grid_option_reaches_the_sampler():
    seen = []

    def fn(x, t):
        seen.append(float(t[0]))
        return torch.zeros_like(x)

    sample(fn, torch.zeros(2, 2), sampler="euler", steps=4, grid="shift", shift=2.0)
    want = shift_time(torch.linspace(1, 0, 5, dtype=F64), 2.0)[:-1]
    assert torch.allclose(torch.tensor(seen, dtype=F64), want)
    assert torch.equal(
        time_grid("shift", 4, path=get_path("rectified"), shift=2.0),
        shift_time(torch.linspace(1, 0, 5, dtype=F64), 2.0),
    )


# ----------------------------------------------------------------------------- every sampler, path, target


def test_registry_is_described():
    assert set(SAMPLER_INFO) == set(SAMPLERS)
    assert all(SAMPLERS[name].__doc__ for name in SAMPLERS)


@pytest.mark.parametrize("path_name", ["rectified", "vp_cosine", "vp_ddpm", "ve"])
@pytest.mark.parametrize("target", ["eps", "flow"])
def test_every_sampler_runs_without_nan(path_name, target):
    path, gm, noise = get_path(path_name), _mixture(), _noise(32)
    den = gm.denoiser(path)

    def fn(x, t):
        return from_x_eps(path, target, t, *den(x, t))

    opts = {"t_max": 0.999} if (path_name, target) == ("rectified", "eps") else {}  # eps is singular at a = 0
    for name in SAMPLERS:
        for grid in ("uniform", "karras"):
            stats = {}
            out = sample(
                fn,
                noise,
                sampler=name,
                steps=6,
                path=path,
                target=target,
                grid=grid,
                stats=stats,
                eta=0.5,
                generator=torch.Generator().manual_seed(0),
                **opts,
            )
            assert bool(torch.isfinite(out).all()), (name, grid)
            assert 0 < stats["nfe"] <= (200 if name == "dopri5" else 24), (name, stats)
    if opts:
        with pytest.raises(GenlabError, match="cannot be inverted"):
            sample(fn, noise, sampler="euler", steps=4, path=path, target=target)


def test_nfe_counts_and_options():
    path, gm, noise = get_path("rectified"), _gauss(), _noise(4)
    expected = {
        "midpoint": 20,
        "rk4": 39,
        "dpmpp_2m": 10,
        "dpmpp_3m": 10,
        "unipc": 10,
        "euler_maruyama": 10,
        "edm": 18,
    }  # rk4: last stage at t = 0 is closed form; edm: the step from σ = ∞ is Euler
    for name, nfe in expected.items():
        stats = {}
        sample(gm.flow_fn(path), noise, sampler=name, steps=10, stats=stats)
        assert stats["nfe"] == nfe, (name, stats)
    with pytest.raises(GenlabError, match="takes no option 'order'"):
        sample(gm.flow_fn(path), noise, sampler="euler", steps=2, order=3)
    with pytest.raises(GenlabError, match="order"):
        sample(gm.flow_fn(path), noise, sampler="unipc", steps=2, order=9)


def test_ve_starts_from_scaled_noise():
    path, gm = get_path("ve"), _mixture()
    out = sample(gm.flow_fn(path), _noise(20000, seed=3), sampler="unipc", steps=32, path=path, grid="karras")
    w, mu, s = gm.weights[:, None], gm.means, gm.stds[:, None]
    std = ((w * (s**2 + mu**2)).sum(0) - ((w * mu).sum(0)) ** 2).sqrt()
    assert torch.allclose(out.std(0), std, atol=0.03)


def test_deterministic_settings_follow_the_ode_on_the_same_steps():
    em = SampleSettings(sampler="euler_maruyama", steps=32, guidance_scale=6.0, guidance_interval=(0.5, 1.0))
    assert deterministic(em) == em.replace(sampler="heun")
    assert deterministic(SampleSettings(sampler="edm", steps=9, grid="karras")) == SampleSettings("heun", 9, "karras")
    assert deterministic(SampleSettings(sampler="ddim", steps=5, eta=1.0)) == SampleSettings("ddim", 5)
    for kept in (SampleSettings("heun", 7), SampleSettings("dpmpp_2m", 7), SampleSettings("ddim", 7)):
        assert deterministic(kept) is kept and not draws_noise(kept)
    assert all(draws_noise(SampleSettings(name, 4)) for name in ("euler_maruyama", "edm"))
