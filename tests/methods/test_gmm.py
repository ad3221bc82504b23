import itertools
import json

import pytest
import torch

from genlab.config import load_recipe
from genlab.errors import GenlabError
from genlab.methods.gmm import GMMConfig, GMMMethod
from genlab.models.none import NoModelConfig
from genlab.runs import load_run
from tests.ar_helpers import assert_resume_identical, assert_round_trip
from tests.conftest import write_recipe

TINY_GMM = {
    "name": "tiny-gmm",
    "seed": 0,
    "data": {"kind": "digits"},
    "model": {"kind": "none"},
    "method": {"kind": "gmm", "components": 2},
    "train": {
        "steps": 6,
        "batch_size": 479,
        "lr": 0.7,
        "schedule": "constant",
        "warmup_steps": 0,
        "log_every": 2,
        "checkpoint_every": 3,
        "ema_decay": 0.0,
    },
}
MEANS = torch.tensor([[-4.0, 0.0], [3.0, 3.0], [2.0, -3.0]], dtype=torch.float64)
WEIGHTS = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)


def _mixture_data(n: int = 3000) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    comp = torch.multinomial(WEIGHTS, n, replacement=True, generator=g)
    scales = torch.tensor([[1.0, 0.5], [0.6, 0.6], [0.8, 0.3]], dtype=torch.float64)
    return MEANS[comp] + scales[comp] * torch.randn(n, 2, generator=g, dtype=torch.float64)


def _fit(method: GMMMethod, x: torch.Tensor, steps: int) -> list[float]:
    """Classical EM on the full data; the log-likelihood each E-step saw (before its update)."""
    torch.manual_seed(0)
    return [-method.update(method.statistics({"x": x}), rate=1.0)["loss"] for _ in range(steps)]


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_em_is_monotone_and_recovers_a_known_mixture(covariance):
    x = _mixture_data()
    gmm = GMMMethod(GMMConfig(components=3, covariance=covariance, min_variance=1e-9), NoModelConfig(dim=2))
    lls = _fit(gmm, x, 40)
    assert all(b >= a - 1e-10 for a, b in zip(lls[1:], lls[2:]))  # monotone after the k-means++ seeding step
    order = gmm.means[:, 0].argsort()  # true means sorted by x: components 0, 2, 1
    assert torch.allclose(gmm.means[order], MEANS[[0, 2, 1]], atol=0.1)
    assert torch.allclose(gmm.log_weights[0, order].exp(), WEIGHTS[[0, 2, 1]], atol=0.03)
    density = gmm.log_likelihood(x).mean().item()  # after the last update: at least what the last E-step saw
    assert lls[-1] * 2 - 1e-9 <= density < lls[-1] * 2 + 1e-4  # the logged loss is nats per dim; D = 2


def test_full_covariance_density_matches_torch():
    gmm = GMMMethod(GMMConfig(components=2, covariance="full", per_class=False), NoModelConfig(dim=2))
    _fit(gmm, _mixture_data(500), 5)
    x = torch.randn(7, 2, dtype=torch.float64)
    mix = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=gmm.log_weights[0]),
        torch.distributions.MultivariateNormal(gmm.means, gmm.covariances),
    )
    assert torch.allclose(gmm.log_likelihood(x), mix.log_prob(x), atol=1e-9)


def test_image_likelihood_is_a_probability_over_8_bit_values():
    """Two 1x1 channels, per-class mixtures: P(u1, u2 | y) over all 65,536 8-bit pairs sums to 1, and so does P(u)."""
    gmm = GMMMethod(GMMConfig(components=2), NoModelConfig(in_channels=2, image_size=1, num_classes=2))
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(200, 2, 1, 1, generator=g) * 2 - 1).round(decimals=1)
    torch.manual_seed(0)
    for _ in range(3):
        gmm.update(gmm.statistics({"x": x, "label": (x[:, 0, 0, 0] > 0).long()}), rate=1.0)
    grid = torch.tensor(list(itertools.product(range(256), repeat=2)), dtype=torch.float32) / 127.5 - 1
    grid = grid.view(-1, 2, 1, 1)
    for label in (None, torch.zeros(len(grid), dtype=torch.long), torch.ones(len(grid), dtype=torch.long)):
        assert gmm.log_likelihood(grid, label).exp().sum().item() == pytest.approx(1.0, abs=1e-9)


def test_per_class_sampling_uses_that_class():
    gmm = GMMMethod(GMMConfig(components=1, min_variance=1e-4), NoModelConfig(dim=1, num_classes=2))
    x = torch.cat([torch.full((50, 1), -3.0), torch.full((50, 1), 5.0)]) + 0.1 * torch.randn(100, 1)
    label = torch.cat([torch.zeros(50), torch.ones(50)]).long()
    torch.manual_seed(0)
    gmm.update(gmm.statistics({"x": x, "label": label}), rate=1.0)
    s, nfe, _, _ = gmm.sample(20, cond=torch.ones(20, dtype=torch.long), generator=torch.Generator().manual_seed(0))
    assert s.shape == (20, 1) and (s > 4).all() and nfe == 0


def test_trainer_fits_saves_and_resumes_identically(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path / "gmm.yaml", TINY_GMM))
    assert_resume_identical(recipe, tmp_path)
    rows = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 3 and json.loads(rows[-1])["loss"] < json.loads(rows[0])["loss"]
    label = torch.arange(10)
    draw = lambda m: m.sample(10, cond=label, generator=torch.Generator().manual_seed(1)).x  # noqa: E731
    assert_round_trip(recipe, tmp_path, draw)
    x = draw(load_run(tmp_path / "full").method)
    assert x.shape == (10, 1, 8, 8) and x.min() >= -1 and x.max() <= 1


def test_loss_falls_on_digits_minibatches():
    """Online EM (step 0.7) on thirds of the digits: the negative log-likelihood per dim falls."""
    from genlab.data.digits import DigitsConfig, build_digits

    data = build_digits(DigitsConfig())
    gmm = GMMMethod(GMMConfig(components=2), NoModelConfig(in_channels=1, image_size=8, num_classes=10))
    torch.manual_seed(0)
    losses = [gmm.update(gmm.statistics(data.batch(torch.arange(i % 3, 1437, 3))), rate=0.7)["loss"] for i in range(6)]
    assert losses[-1] < losses[1]


def test_bad_settings_are_genlab_errors():
    gmm = GMMMethod(GMMConfig(), NoModelConfig(dim=2))
    with pytest.raises(GenlabError, match="lr"):
        gmm.update(gmm.statistics({"x": torch.randn(20, 2)}), rate=2.0)
    with pytest.raises(GenlabError, match="model.kind: none"):
        from genlab.models.mlp import MLPConfig

        GMMMethod(GMMConfig(), MLPConfig(dim=2, num_classes=0))
    full_image = GMMMethod(GMMConfig(covariance="full"), NoModelConfig(in_channels=1, image_size=2))
    assert full_image.likelihood is None
    with pytest.raises(GenlabError, match="diag"):
        full_image.log_likelihood(torch.zeros(1, 1, 2, 2))
