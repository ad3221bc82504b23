import json
import math

import pytest
import torch

from genlab.analytic import GaussianMixture
from genlab.cli import build_parser
from genlab.data.base import Dataset
from genlab.errors import GenlabError
from genlab.evaluate import evaluate, heldout_likelihood
from genlab.likelihood import bits_per_dim, dequantize, log_likelihood
from genlab.methods.base import Method, no_options
from genlab.paths import get_path


def _mixture(dim: int) -> GaussianMixture:
    g = torch.Generator().manual_seed(0)
    means = 1.5 * torch.randn(3, dim, generator=g, dtype=torch.float64)
    return GaussianMixture(means, torch.tensor([0.4, 0.7, 1.0]), torch.tensor([0.5, 0.3, 0.2]))


def _model(gm: GaussianMixture, path, target: str):
    """fn(x_t, t) -> the exact prediction of `target` for the mixture."""
    if target == "flow":
        return gm.flow_fn(path)
    denoise = gm.denoiser(path)
    return lambda x_t, t: denoise(x_t, t)[0 if target == "x" else 1]


@pytest.mark.parametrize(
    "path_name, target, solver",
    [
        ("rectified", "flow", "rk4"),
        ("rectified", "x", "dopri5"),
        ("vp_cosine", "eps", "dopri5"),
        ("vp_cosine", "flow", "rk4"),
    ],
)
def test_exact_trace_matches_mixture_density(path_name, target, solver):
    gm, path = _mixture(2), get_path(path_name)
    x = gm.sample(64, generator=torch.Generator().manual_seed(1))
    stats: dict = {}
    lp = log_likelihood(_model(gm, path, target), x, path=path, target=target, solver=solver, steps=12, stats=stats)
    ref = gm.log_prob(x)
    assert stats["divergence"] == "exact" and stats["nfe"] == (48 if solver == "rk4" else stats["nfe"])
    assert ((lp - ref).abs() <= 0.01 * ref.abs().clamp_min(1.0)).all(), (lp - ref).abs().max()


def test_sign_of_the_divergence_term():
    """N(0, 0.5²) at x = 0: log p = −½ log(2π) + log 2; the flipped sign would give −½ log(2π) − log 2."""
    gm, path = GaussianMixture(torch.zeros(1, 1), torch.tensor([0.5])), get_path("rectified")
    lp = log_likelihood(gm.flow_fn(path), torch.zeros(1, 1, dtype=torch.float64), path=path, steps=16)
    assert abs(float(lp) - (-0.5 * math.log(2 * math.pi) + math.log(2))) < 1e-3


def test_vp_ddpm_path_mean_within_one_percent():
    gm, path = _mixture(2), get_path("vp_ddpm")
    x = gm.sample(32, generator=torch.Generator().manual_seed(2))
    lp = log_likelihood(gm.flow_fn(path), x, path=path, steps=8)
    assert abs(float(lp.mean() / gm.log_prob(x).mean()) - 1) < 0.01


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased_and_seeded(probe):
    gm, path = _mixture(4), get_path("rectified")
    x = gm.sample(128, generator=torch.Generator().manual_seed(3))
    fn, opts = gm.flow_fn(path), {"path": path, "solver": "dopri5", "rtol": 1e-4, "atol": 1e-4}
    exact = log_likelihood(fn, x, divergence="exact", **opts)
    one = log_likelihood(fn, x, divergence="hutchinson", probe=probe, seed=5, **opts)
    many = log_likelihood(fn, x, divergence="hutchinson", probe=probe, probes=8, seed=5, **opts)
    err = one - exact
    assert err.std() > 1e-3  # really stochastic
    assert abs(float(err.mean())) < 4 * float(err.std()) / math.sqrt(len(err))
    assert (many - exact).std() < 0.5 * err.std()  # 8 probes: variance / 8
    assert torch.equal(one, log_likelihood(fn, x, divergence="hutchinson", probe=probe, seed=5, **opts))


def test_auto_divergence_switches_by_dimension():
    path, kinds = get_path("rectified"), {}
    for dim in (32, 33):
        gm, stats = GaussianMixture(torch.zeros(1, dim), torch.tensor([1.0])), {}
        log_likelihood(gm.flow_fn(path), torch.zeros(2, dim, dtype=torch.float64), path=path, steps=1, stats=stats)
        kinds[dim] = stats["divergence"]
    assert kinds == {32: "exact", 33: "hutchinson"}
    with pytest.raises(GenlabError, match="divergence"):
        log_likelihood(gm.flow_fn(path), torch.zeros(2, 33), path=path, divergence="trace")


def test_bits_per_dim_and_dequantization():
    assert torch.allclose(bits_per_dim(torch.tensor([-64 * math.log(2)]), 64), torch.tensor([1.0]))
    x = torch.linspace(-1, 1, 256).reshape(4, 1, 8, 8)  # every 8-bit level once
    noisy, offset = dequantize(x, generator=torch.Generator().manual_seed(0))
    assert offset == pytest.approx(64 * math.log(2 / 255))
    assert (noisy - x).abs().max() <= 1 / 255 and (noisy - x).std() > 1e-3
    edges = torch.linspace(-1 - 1 / 255, 1 + 1 / 255, 257)  # the 256 bins tile [-1 − 1/255, 1 + 1/255]
    assert torch.equal(torch.bucketize(noisy.flatten(), edges) - 1, torch.arange(256))
    # the uniform density on those bins (log p = −D·log(2·256/255)) gives exactly 8 bits/dim
    assert float(bits_per_dim(torch.tensor(-64 * math.log(2 * 256 / 255) + offset), 64)) == pytest.approx(8.0)


class _Bound(Method):
    likelihood = "bound"

    def log_likelihood(self, x, cond=None, *, stats=None, **opts):
        no_options(self, opts)
        return torch.full((len(x),), -2.0 * math.prod(x.shape[1:]) * math.log(2))  # exactly 2 bits/dim


def test_heldout_likelihood_is_generic_over_methods():
    images = Dataset(x=torch.zeros(10, 1, 4, 4), labels=None, name="zeros")
    bound = heldout_likelihood(_Bound(), images, n=4)
    assert bound["kind"] == "bound" and bound["bits_per_dim"] == pytest.approx(2.0) and bound["n"] == 4
    none = heldout_likelihood(Method(), images, n=4)
    assert none["kind"] is None and "defines no likelihood" in none["reason"]
    assert "disabled" in heldout_likelihood(_Bound(), images, n=0)["reason"]
    with pytest.raises(GenlabError, match="takes no option 'divergence'"):
        heldout_likelihood(_Bound(), images, n=4, divergence="exact")


def test_eval_writes_the_likelihood_column(digits_run, tmp_path):
    out = evaluate(
        digits_run, n=20, steps=2, sampler="euler", likelihood_n=6, likelihood_opts={"steps": 2}, out=tmp_path / "e"
    )
    lik = json.loads(out.read_text())["likelihood"]
    assert lik["kind"] == "exact" and lik["divergence"] == "hutchinson" and lik["n"] == 6 and lik["nfe"] == 8
    assert 0 < lik["bits_per_dim"] < 12 and lik["bits_per_dim_std_err"] > 0 and lik["reason"] is None
    assert f"**{lik['bits_per_dim']:.4f} bits/dim** (exact, ±" in (out.parent / "eval.md").read_text()
    args = build_parser().parse_args(["eval", "RUN", "--likelihood-n", "0", "--likelihood-divergence", "exact"])
    assert args.likelihood_n == 0 and args.likelihood_divergence == "exact"


def test_flow_method_conditional_and_unconditional(digits_run):
    from genlab.runs import load_run

    method = load_run(digits_run).method
    x = torch.zeros(3, 1, 8, 8)
    stats: dict = {}
    uncond = method.log_likelihood(x, None, steps=2, divergence="hutchinson", probes=2, stats=stats)
    cond = method.log_likelihood(x, torch.tensor([0, 1, 2]), steps=2, divergence="hutchinson", probes=2)
    assert uncond.shape == cond.shape == (3,) and torch.isfinite(cond).all() and not torch.allclose(uncond, cond)
    assert stats["nfe"] == 8 and stats["probes"] == 2 and "dequantization" in stats
