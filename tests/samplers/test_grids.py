import cmath
import math

import pytest
import torch

from genlab.analytic import GaussianMixture
from genlab.errors import GenlabError
from genlab.paths import get_path
from genlab.samplers import sample, time_grid
from genlab.samplers.grids import singularity


@pytest.mark.parametrize("s", [0.3, 0.5, 0.8])  # VP cosine has none for s ≥ 1 (a² + b² = 1)
def test_singularity_closed_forms(s):
    """b(t*) = i·s·a(t*): rectified t = i·s·(1 − t); VP cosine tan θ = i·s; VE σ_min·e^{tL} = i·s."""
    rect = singularity(get_path("rectified"), s)
    assert abs(rect - complex(s * s, s) / (1 + s * s)) < 1e-12
    cos = get_path("vp_cosine")
    assert abs(singularity(cos, s) - (1j * math.atanh(s) - cos.theta0) / (cos.theta1 - cos.theta0)) < 1e-10
    ve = get_path("ve")
    assert abs(singularity(ve, s) - (cmath.log(s / ve.sigma_min) + 1j * math.pi / 2) / ve.log_ratio) < 1e-10


def test_asinh_grid_steps_grow_with_distance_to_the_singularity():
    path = get_path("rectified")
    ts = time_grid("asinh", 8, path=path)
    assert ts[0] == 1.0 and ts[-1] == 0.0 and bool((ts[1:] < ts[:-1]).all())
    star = singularity(path, 0.5)
    mids, steps = (ts[1:] + ts[:-1]) / 2, ts[:-1] - ts[1:]
    ratio = steps / torch.tensor([abs(complex(float(m)) - star) for m in mids], dtype=torch.float64)
    assert float(ratio.max() / ratio.min()) < 1.1  # Δt ∝ |t − t*| up to the step's own curvature
    assert not torch.equal(time_grid("asinh", 8, path=path, sigma_data=1.0), ts)
    with pytest.raises(GenlabError, match="no complex t"):
        time_grid("asinh", 8, path=get_path("vp_ddpm"))
    with pytest.raises(GenlabError, match="sigma_data"):
        time_grid("asinh", 8, path=path, sigma_data=0.0)


def test_asinh_grid_through_sample():
    path, gm = get_path("rectified"), GaussianMixture(torch.tensor([[0.5, -0.5]]), torch.tensor([0.5]))
    noise = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = gm.ode_endpoint(path, noise, 1.0)
    errs = [
        float(
            (sample(gm.flow_fn(path), noise, sampler="unipc", steps=n, grid="asinh", sigma_data=0.5) - exact)
            .abs()
            .max()
        )
        for n in (8, 16)
    ]
    assert errs[1] < errs[0] / 4
