import pytest
import torch

from genlab.errors import GenlabError
from genlab.paths import (
    PATHS,
    TARGETS,
    TimeSampling,
    from_x_eps,
    get_path,
    loss_weight,
    sample_time,
    shift_time,
    to_x_eps,
    velocity,
)

F64 = torch.float64


def _times(n=64, lo=0.02, hi=0.98):
    return torch.rand(n, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * (hi - lo) + lo


@pytest.mark.parametrize("name", PATHS)
def test_derivatives_match_jvp(name):
    path = get_path(name)
    t = _times()
    ones = torch.ones_like(t)
    for fn, dfn in ((path.a, path.da), (path.b, path.db)):
        _, tangent = torch.func.jvp(fn, (t,), (ones,))
        assert torch.allclose(dfn(t), tangent, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("target", TARGETS)
def test_conversion_round_trip(name, target):
    path = get_path(name)
    g = torch.Generator().manual_seed(0)
    t = _times(32)
    x, eps = torch.randn(32, 3, generator=g, dtype=F64), torch.randn(32, 3, generator=g, dtype=F64)
    a, b = path.a(t)[:, None], path.b(t)[:, None]
    x_t = a * x + b * eps
    pred = from_x_eps(path, target, t, x, eps)
    x_hat, eps_hat = to_x_eps(path, target, x_t, t, pred)
    assert torch.allclose(x_hat, x, atol=1e-8) and torch.allclose(eps_hat, eps, atol=1e-8)
    # the flow target is the velocity
    assert torch.allclose(velocity(path, t, x, eps), from_x_eps(path, "flow", t, x, eps))


def test_path_endpoints():
    t = torch.tensor([0.0, 1.0], dtype=F64)
    r = get_path("rectified")
    assert r.a(t).tolist() == [1.0, 0.0] and r.b(t).tolist() == [0.0, 1.0]
    ddpm = get_path("vp_ddpm")
    assert ddpm.a(t)[0] == 1 and ddpm.b(t)[0] == 0
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    assert torch.allclose(ddpm.a(t)[1] ** 2, torch.prod(1 - betas))
    for name in ("vp_cosine", "vp_ddpm"):  # variance preserving
        p, tt = get_path(name), _times()
        assert torch.allclose(p.a(tt) ** 2 + p.b(tt) ** 2, torch.ones_like(tt))


@pytest.mark.parametrize("name", PATHS)
def test_log_snr_inverse(name):
    path = get_path(name)
    t = _times(16, 0.05, 0.95)
    assert torch.allclose(path.t_from_log_snr(path.log_snr(t)), t, atol=1e-6)


def test_time_sampling_and_shift():
    g = torch.Generator().manual_seed(0)
    t = sample_time(TimeSampling(kind="logit_normal"), 20000, generator=g)
    assert 0 < t.min() and t.max() < 1 and abs(t.median() - 0.5) < 0.02
    u = torch.linspace(0, 1, 11, dtype=F64)
    s = shift_time(u, 3.0)
    assert s[0] == 0 and s[-1] == 1 and bool((s[1:-1] > u[1:-1]).all())
    with pytest.raises(GenlabError, match="uniform"):
        sample_time(TimeSampling(kind="beta"), 4)


def test_loss_weights():
    path, t = get_path("vp_cosine"), _times()
    snr = (path.a(t) / path.b(t)) ** 2
    assert torch.allclose(loss_weight("min_snr", path, "eps", t), torch.clamp(snr, max=5) / snr)
    assert torch.allclose(loss_weight("min_snr", path, "x", t), torch.clamp(snr, max=5))
    assert torch.equal(loss_weight("uniform", path, "flow", t), torch.ones_like(t))
    ve = get_path("ve")
    sigma = ve.b(t)
    assert torch.allclose(loss_weight("edm", ve, "x", t), (sigma**2 + 0.25) / (0.5 * sigma) ** 2)
    with pytest.raises(GenlabError, match="unknown"):
        loss_weight("nope", path, "x", t)
