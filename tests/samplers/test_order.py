"""Observed order of every sampler on its default grid (grid="auto") and on `uniform`, against the closed-form
probability-flow ODE solution for Gaussian data on the rectified path (genlab.analytic.GaussianMixture).

Observed order = log2(err(n) / err(2n)) at the finest pair of step counts. On its default grid every sampler
must reach its nominal order (−0.25); where the default is not `uniform`, `uniform` is asserted to fall short
(defect 4: DPM-Solver++ 2M/3M and EDM's Heun in σ lose order near a = 0 on `uniform`)."""

import math

import pytest
import torch

from genlab.analytic import GaussianMixture
from genlab.errors import GenlabError
from genlab.paths import get_path
from genlab.samplers import DEFAULT_GRIDS, SAMPLERS, default_grid, sample, time_grid

F64 = torch.float64
PATH = get_path("rectified")
# sampler -> (nominal order, step counts); unipc's default order 2 predictor + corrector is 3rd order
DETERMINISTIC = {
    "euler": (1, (16, 32, 64)),
    "ddim": (1, (16, 32, 64)),
    "heun": (2, (8, 16, 32)),
    "midpoint": (2, (8, 16, 32)),
    "rk4": (4, (4, 8, 16)),
    "dpmpp_2m": (2, (16, 32, 64)),
    "dpmpp_3m": (3, (16, 32, 64)),
    "unipc": (3, (8, 16, 32)),
    "edm": (2, (16, 32, 64)),
}


def _gauss():
    return GaussianMixture(torch.tensor([[0.7, -0.7]]), torch.tensor([0.4]))


def _errors(name: str, grid: str, steps) -> list[float]:
    gm = _gauss()
    noise = torch.randn(32, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    exact = gm.ode_endpoint(PATH, noise, 1.0)
    return [
        float((sample(gm.flow_fn(PATH), noise, sampler=name, steps=n, grid=grid) - exact).abs().max()) for n in steps
    ]


def _order(errs: list[float]) -> float:
    return math.log2(errs[-2] / errs[-1])


def test_every_sampler_has_a_default_grid():
    assert set(DEFAULT_GRIDS) == set(SAMPLERS)
    assert set(DETERMINISTIC) | {"dopri5", "euler_maruyama"} == set(SAMPLERS)


@pytest.mark.parametrize("name", list(DETERMINISTIC))
def test_order_on_default_grid_and_uniform(name):
    nominal, steps = DETERMINISTIC[name]
    auto = _errors(name, "auto", steps)
    assert _order(auto) >= nominal - 0.25, (name, default_grid(name, PATH), auto)
    if default_grid(name, PATH) == "uniform":
        assert auto == _errors(name, "uniform", steps)
    else:  # the reason for the default: on `uniform` the order is not attained
        uniform = _errors(name, "uniform", steps)
        assert _order(uniform) < nominal - 0.25, (name, uniform)


@pytest.mark.parametrize("name", ["dpmpp_2m", "dpmpp_3m"])
def test_dpmpp_default_grid_is_more_accurate_than_uniform(name):
    steps = DETERMINISTIC[name][1][-1:]
    assert _errors(name, "auto", steps)[0] < _errors(name, "uniform", steps)[0]


def test_dopri5_error_falls_at_fifth_order_in_nfe():
    gm, noise = _gauss(), torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    exact = gm.ode_endpoint(PATH, noise, 1.0)
    pts = []
    for tol in (1e-4, 1e-7):
        for grid in ("auto", "uniform"):  # the grid only sets the first step
            stats = {}
            out = sample(gm.flow_fn(PATH), noise, sampler="dopri5", steps=4, grid=grid, rtol=tol, atol=tol, stats=stats)
            pts.append((stats["nfe"], float((out - exact).abs().max())))
    (n1, e1), (n2, e2) = pts[0], pts[-1]
    assert math.log(e1 / e2) / math.log(n2 / n1) >= 4.0, pts


def test_euler_maruyama_weak_order_one():
    """The law's variance error (data N(0.7, 0.4²)), one fixed seed: weak order 1 (observed ≈ 4 from 4 to 8 steps)."""
    gm = GaussianMixture(torch.tensor([[0.7]]), torch.tensor([0.4]))
    errs = []
    for n in (4, 8):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(100_000, 1, generator=g, dtype=F64)
        out = sample(gm.flow_fn(PATH), x, sampler="euler_maruyama", steps=n, grid="auto", generator=g)
        errs.append(abs(float(out.var()) - 0.16))
    assert _order(errs) >= 0.75, errs


def test_auto_grid_resolution_and_errors():
    assert default_grid("dpmpp_3m", PATH) == "logit" and default_grid("dpmpp_3m", get_path("ve")) == "uniform"
    assert torch.equal(time_grid("auto", 8, path=PATH, sampler="dpmpp_2m"), time_grid("logit", 8, path=PATH))
    assert torch.equal(time_grid("logit", 8, path=PATH, power=1.0), time_grid("uniform", 8, path=PATH))
    with pytest.raises(GenlabError, match="pass sampler"):
        time_grid("auto", 8, path=PATH)
    with pytest.raises(GenlabError, match="unknown grid"):
        sample(lambda x, t: x, torch.zeros(1, 2), sampler="euler", steps=2, grid="nope")
    with pytest.raises(GenlabError, match="power"):
        time_grid("logit", 8, path=PATH, power=0.0)
