import math

import pytest
import torch

from genlab.analytic import GaussianMixture
from genlab.errors import GenlabError
from genlab.paths import get_path
from genlab.samplers import SAMPLERS, guided, sample, time_grid
from genlab.samplers.ode import sample_euler
from genlab.samplers.sde import sample_ddim


def _gauss(mu=0.7, s=0.4):
    return GaussianMixture(torch.tensor([[mu, -mu]]), torch.tensor([s]))


def _mixture():
    means = torch.tensor([[-2.0, 0.0], [2.0, 0.5], [0.0, 2.0]])
    return GaussianMixture(means, torch.tensor([0.3, 0.5, 0.4]), torch.tensor([0.5, 0.3, 0.2]))


def test_ddim_eta0_on_rectified_is_euler():
    path, gm = get_path("rectified"), _mixture()
    noise = torch.randn(256, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ts = time_grid("uniform", 12, path=path)
    a = sample_ddim(gm.denoiser(path), noise, ts, path=path, eta=0.0)
    b = sample_euler(gm.denoiser(path), noise, ts, path=path)
    assert torch.allclose(a, b, atol=1e-10)


@pytest.mark.parametrize("path_name", ["rectified", "vp_cosine"])
def test_order_of_convergence(path_name):
    path, gm = get_path(path_name), _gauss()
    noise = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t_max = 1.0 if path_name == "rectified" else 0.999
    exact = gm.ode_endpoint(path, noise, t_max)
    for name, expected in (("euler", 1.0), ("heun", 2.0)):
        errs = []
        for steps in (16, 32, 64):
            ts = time_grid("uniform", steps, path=path, t_max=t_max)
            out = SAMPLERS[name](gm.denoiser(path), noise, ts, path=path)
            errs.append((out - exact).abs().max().item())
        order = math.log2(errs[1] / errs[2])
        assert abs(order - expected) < 0.3, (name, errs)


@pytest.mark.parametrize("sampler", ["euler", "heun", "ddim"])
def test_samplers_reproduce_mixture_law(sampler):
    path, gm = get_path("rectified"), _mixture()
    g = torch.Generator().manual_seed(1)
    n = 40000
    noise = torch.randn(n, 2, generator=g, dtype=torch.float64)
    steps = 256 if sampler == "ddim" else 64  # ancestral sampling (eta=1) is only first order in law
    out = sample(gm.flow_fn(path), noise, sampler=sampler, steps=steps, path=path, target="flow", eta=1.0, generator=g)
    w, mu, s = gm.weights[:, None], gm.means, gm.stds[:, None]
    mean = (w * mu).sum(0)
    std = ((w * (s**2 + mu**2)).sum(0) - mean**2).sqrt()
    se = std / math.sqrt(n)  # tolerances are ~4.5 standard errors
    assert bool(((out.mean(0) - mean).abs() < 4.5 * se).all()), (out.mean(0), mean)
    assert bool(((out.std(0) - std).abs() < 0.02).all()), (out.std(0), std)
    # mass of each mixture component: nearest-mean assignment frequencies vs exact-sample frequencies
    ref = gm.sample(n, generator=g)
    assign = lambda x: torch.cdist(x, gm.means).argmin(1).bincount(minlength=3) / len(x)  # noqa: E731
    assert torch.allclose(assign(out), assign(ref), atol=0.015)


def test_ancestral_ddpm_reproduces_law_on_vp():
    path, gm = get_path("vp_ddpm"), _gauss(0.5, 0.6)
    g = torch.Generator().manual_seed(2)
    noise = torch.randn(20000, 2, generator=g, dtype=torch.float64)
    ts = torch.linspace(1.0, 0.0, 201, dtype=torch.float64)
    out = sample_ddim(gm.denoiser(path), noise, ts, path=path, eta=1.0, generator=g)
    assert torch.allclose(out.mean(0), gm.means[0], atol=0.03)
    assert torch.allclose(out.std(0), torch.full((2,), 0.6, dtype=torch.float64), atol=0.03)


def test_nfe_counts():
    path, gm = get_path("rectified"), _gauss()
    noise = torch.randn(4, 2, dtype=torch.float64)
    for name, nfe in (("euler", 10), ("heun", 19), ("ddim", 10)):
        stats = {}
        sample(gm.flow_fn(path), noise, sampler=name, steps=10, stats=stats)
        assert stats["nfe"] == nfe


def test_guidance_is_one_batched_call_and_scale_one_is_exact():
    calls = []

    def model(x, t, c):
        calls.append(len(x))
        return x * c[:, None].to(x.dtype) + t[:, None]

    x, t = torch.randn(5, 3), torch.rand(5)
    cond, null = torch.full((5,), 3), torch.full((5,), 1)
    assert torch.equal(guided(model, cond, scale=1.0, null_cond=null)(x, t), model(x, t, cond))
    calls.clear()
    out = guided(model, cond, scale=2.5, null_cond=null)(x, t)
    assert calls == [10]
    c, u = model(x, t, cond), model(x, t, null)
    assert torch.allclose(out, u + 2.5 * (c - u))


def test_grids_and_errors():
    path = get_path("rectified")
    for name in ("uniform", "log_snr", "shift"):
        ts = time_grid(name, 8, path=path)
        assert len(ts) == 9 and ts[-1] == 0 and bool((ts[1:] < ts[:-1]).all())
    custom = torch.tensor([1.0, 0.5, 0.0])
    assert torch.equal(time_grid(custom, 99, path=path), custom.double())
    with pytest.raises(GenlabError, match="decreasing"):
        time_grid(torch.tensor([0.0, 1.0]), 1, path=path)
    with pytest.raises(GenlabError, match="unknown sampler"):
        sample(lambda x, t: x, torch.zeros(1, 2), sampler="nope", steps=2)
