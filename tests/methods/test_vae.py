import math

import pytest
import torch

from genlab.config import load_recipe
from genlab.errors import GenlabError
from genlab.methods.discretized import discretized_gaussian_log_prob
from genlab.methods.vae import VAEConfig, VAEMethod
from genlab.models.autoencoder import kl_to_standard
from genlab.models.vae import ConvVAEConfig, MLPVAEConfig
from tests.ar_helpers import assert_resume_identical, assert_round_trip
from tests.conftest import write_recipe

TINY_VAE = {
    "name": "tiny-vae",
    "seed": 0,
    "data": {"kind": "digits"},
    "model": {"kind": "conv_vae", "channels": 8, "channel_mults": [1, 2], "latent_dim": 4, "class_dim": 8},
    "method": {"kind": "vae", "kl_warmup": 3},
    "train": {"steps": 6, "batch_size": 32, "warmup_steps": 2, "log_every": 2, "checkpoint_every": 3, "lr": 2e-3},
}


def _conv_vae(**method) -> VAEMethod:
    torch.manual_seed(0)
    cfg = ConvVAEConfig(in_channels=1, image_size=8, num_classes=10, channels=8, latent_dim=4, class_dim=8)
    return VAEMethod(VAEConfig(**method), cfg)


def _digits_batch(n: int = 64) -> dict:
    from genlab.data.digits import DigitsConfig, build_digits

    data = build_digits(DigitsConfig())
    return data.batch(torch.arange(n))


def test_discretized_bins_sum_to_one_and_match_phi():
    x = (torch.arange(256, dtype=torch.float64) / 127.5 - 1).view(256, 1)  # every 8-bit value of one pixel
    for mean, log_scale in ((0.3, -2.0), (-1.2, -5.0), (0.99, 1.0), (0.0, -9.0)):
        lp = discretized_gaussian_log_prob(
            x, torch.tensor(mean, dtype=torch.float64), torch.tensor(log_scale, dtype=torch.float64)
        )
        assert lp.exp().sum().item() == pytest.approx(1.0, abs=1e-9)
    normal = torch.distributions.Normal(torch.tensor(0.1, dtype=torch.float64), math.exp(-2.0))
    u = 140
    inner = x[u] + torch.tensor([-1.0, 1.0], dtype=torch.float64) / 255
    expected = torch.log(normal.cdf(inner[1]) - normal.cdf(inner[0]))
    got = discretized_gaussian_log_prob(x[u], *torch.tensor([0.1, -2.0], dtype=torch.float64))
    assert got.item() == pytest.approx(expected.item(), rel=1e-9)


def test_discretized_far_tail_is_finite_with_finite_gradients():
    x = torch.tensor([[191 / 127.5 - 1]])  # an 8-bit value
    mean = torch.tensor([[-0.9]], requires_grad=True)
    lp = discretized_gaussian_log_prob(x, mean, torch.tensor([[-6.0]]))  # about 560 standard deviations away
    lp.sum().backward()
    a = (191 / 127.5 - 1 - 1 / 255 + 0.9) * math.exp(6.0)  # the nearer edge, standardised
    # log Φ(−a) ≈ −a²/2 − log(a√2π) for large a
    assert torch.isfinite(mean.grad).all() and mean.grad.item() > 0
    assert lp.item() == pytest.approx(-(a**2) / 2 - math.log(a * math.sqrt(2 * math.pi)), rel=1e-4)


def test_kl_closed_form_matches_monte_carlo():
    torch.manual_seed(0)
    mu, logvar = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(50_000, 3, 5, dtype=torch.float64)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    mc = (q - p).mean(0)
    se = (q - p).std(0) / math.sqrt(z.shape[0])
    assert torch.all((mc - kl_to_standard(mu, logvar)).abs() < 4 * se)


def test_loss_falls_over_a_few_steps():
    method, batch = _conv_vae(), _digits_batch(32)
    opt = torch.optim.Adam(method.parameters(), lr=1e-2)
    losses = []
    for step in range(12):
        torch.manual_seed(step)
        loss, logs = method.loss(batch, "model")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        assert logs["elbo"] == pytest.approx(-(logs["recon"] + logs["kl"]).item(), rel=1e-5)
    assert sum(losses[-3:]) < 0.9 * sum(losses[:3])


def test_samples_shape_range_and_latent_interface():
    method = _conv_vae().eval()
    gen = torch.Generator().manual_seed(0)
    x, nfe, _, _ = method.sample(12, cond=torch.arange(12) % 10, generator=gen)
    assert x.shape == (12, 1, 8, 8) and x.min() >= -1 and x.max() <= 1 and nfe == 1
    z = method.sample_latent(5, torch.Generator().manual_seed(1))
    assert z.shape == (5, *method.latent_shape) == (5, 4)
    assert method.decode(z).shape == (5, 1, 8, 8)  # label None: the null class


def test_kl_warmup_and_beta():
    method = _conv_vae(beta=4.0, kl_warmup=10)
    method.step = 5
    assert method.beta() == pytest.approx(2.0)
    method.step = 50
    assert method.beta() == pytest.approx(4.0)


def test_elbo_below_iwae_below_exact_linear_gaussian():
    """depth 0: a linear-Gaussian VAE, whose marginal is N(c, W Wᵀ + diag σ²) exactly."""
    torch.manual_seed(0)
    cfg = MLPVAEConfig(dim=3, num_classes=0, depth=0, latent_dim=2, decoder_scale="learned")
    method = VAEMethod(VAEConfig(), cfg).double()
    with torch.no_grad():
        method.model.log_scale.fill_(-0.5)
    dec = method.model
    zeros = torch.zeros(3, 2, dtype=torch.float64)
    c = dec.decode(zeros[:1])[0][0]
    w = torch.stack([dec.decode(torch.eye(2, dtype=torch.float64)[i : i + 1])[0][0] - c for i in range(2)], 1)
    cov = w @ w.T + torch.diag(torch.exp(2 * dec.log_scale[0]))
    x = torch.randn(4, 3, dtype=torch.float64)
    exact = torch.distributions.MultivariateNormal(c, cov).log_prob(x)
    means, errs = [], []
    for k, repeats in ((1, 4000), (16, 1000), (2048, 10)):
        method.cfg.iw_samples = k
        torch.manual_seed(1)
        est = method.log_likelihood(x.repeat(repeats, 1)).view(repeats, len(x))  # independent estimates
        means.append(est.mean(0))
        errs.append(est.std(0) / math.sqrt(repeats))
    assert torch.all(means[0] + 3 * (errs[0] + errs[1]) < means[1])  # the bound rises with K
    assert torch.all(means[1] < exact + 3 * errs[1]) and torch.all(means[2] < exact + 3 * errs[2])  # below log p(x)
    assert torch.all((exact - means[2]).abs() < 0.2 * (exact - means[0]))  # K = 2048 closes most of the gap


def test_checkpoint_round_trip_and_resume_identical(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path / "vae.yaml", TINY_VAE))
    label, x = torch.arange(10), _digits_batch(10)["x"]

    def samples_and_elbo(m):
        return torch.cat(
            [
                m.sample(10, cond=label, generator=torch.Generator().manual_seed(3)).x.flatten(),
                m.log_likelihood(x, label),
            ]
        )

    assert_round_trip(recipe, tmp_path, samples_and_elbo)
    assert_resume_identical(recipe, tmp_path)


def test_bad_model_kind_is_a_genlab_error():
    from genlab.models.unet import UNetConfig

    with pytest.raises(GenlabError, match="conv_vae"):
        VAEMethod(VAEConfig(), UNetConfig(in_channels=1, image_size=8, num_classes=0))
    with pytest.raises(GenlabError, match="iw_samples"):
        VAEMethod(VAEConfig(iw_samples=0), ConvVAEConfig(in_channels=1, image_size=8, num_classes=0))
