import copy
import json
import math

import numpy as np
import ot
import pytest
import scipy.linalg
import torch
from safetensors.torch import load_file
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from genlab.data.digits import DigitsConfig, build_digits
from genlab.errors import GenlabError
from genlab.metrics.classes import class_metrics
from genlab.metrics.features import (
    digits_feature_net,
    extract,
    fit_feature_net,
    load_feature_net,
    save_feature_net,
    user_feature_net,
)
from genlab.metrics.fid import frechet_distance, frechet_from_stats, kid, polynomial_mmd2
from genlab.metrics.floor import gaussian_fit_samples, normalized
from genlab.metrics.prdc import prdc
from genlab.metrics.report import evaluate_sets
from genlab.metrics.vector import mmd2_rbf, sliced_w2, w2_squared
from tests.conftest import ROOT

ASSET = ROOT / "src/genlab/assets/features-digits.safetensors"


@pytest.fixture(scope="module")
def digits():
    return build_digits(DigitsConfig(), split="train"), build_digits(DigitsConfig(), split="test")


@pytest.fixture(scope="module")
def net():
    return digits_feature_net()


def _fake(x: torch.Tensor) -> torch.Tensor:
    """Real digits degraded: blurred-ish and noisy, so FD/KID are clearly nonzero."""
    gen = torch.Generator().manual_seed(1)
    return (0.7 * x + 0.3 * torch.randn(x.shape, generator=gen)).clamp(-1, 1)


def test_fd_matches_torchmetrics(digits, net):
    train, test = digits
    real, fake = train.x[:400], _fake(test.x)
    fid = FrechetInceptionDistance(feature=copy.deepcopy(net.module))  # its states are float64 already
    fid.update(real, real=True)
    fid.update(fake, real=False)
    ours = frechet_distance(extract(net, real)[0], extract(net, fake)[0])
    assert ours > 1.0
    assert ours == pytest.approx(float(fid.compute()), rel=1e-4)


def test_fd_closed_form_and_sqrtm():
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    s1, s2 = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 1.0])
    expected = 1 + 4 + ((s1.sqrt() - s2.sqrt()) ** 2).sum()  # commuting covariances: ‖Δμ‖² + ‖√Σ₁ − √Σ₂‖²_F
    assert frechet_from_stats(mu1, torch.diag(s1), mu2, torch.diag(s2)) == pytest.approx(float(expected), rel=1e-10)
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 5, generator=gen, dtype=torch.float64), torch.randn(5, 5, generator=gen, dtype=torch.float64)
    c1, c2 = a @ a.T + 0.1 * torch.eye(5), b @ b.T
    ref = np.trace(c1.numpy() + c2.numpy() - 2 * scipy.linalg.sqrtm(c1.numpy() @ c2.numpy()).real)
    assert frechet_from_stats(torch.zeros(5), c1, torch.zeros(5), c2) == pytest.approx(ref, rel=1e-8)


def test_kid_matches_torchmetrics(digits, net):
    train, test = digits
    real, fake = train.x[:300], _fake(test.x[:300])
    metric = KernelInceptionDistance(feature=copy.deepcopy(net.module), subsets=1, subset_size=300)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    theirs = float(metric.compute()[0])
    ours, std = kid(extract(net, real)[0], extract(net, fake)[0], subset_size=1000)  # one subset = both whole sets
    assert ours > 0 and std == 0.0
    assert ours == pytest.approx(theirs, rel=1e-4)


def test_kid_subsets_equal_a_loop_over_subsets():
    gen = torch.Generator().manual_seed(0)
    real, fake = torch.randn(90, 8, generator=gen).abs(), 1.2 * torch.randn(70, 8, generator=gen).abs()
    mean, std = kid(real, fake, subsets=7, subset_size=50, seed=3)
    draws, values = torch.Generator().manual_seed(3), []
    for _ in range(7):  # the same subsets, drawn in the same order
        ia, ib = torch.randperm(90, generator=draws)[:50], torch.randperm(70, generator=draws)[:50]
        values.append(polynomial_mmd2(real[ia], fake[ib]))
    ref = torch.tensor(values, dtype=torch.float64)
    assert mean == pytest.approx(float(ref.mean()), rel=1e-10) and std == pytest.approx(float(ref.std(unbiased=False)))


def _brute_prdc(real: np.ndarray, fake: np.ndarray, k_pr: int, k_dc: int) -> dict:
    def dist(a, b):
        return math.sqrt(sum((u - v) ** 2 for u, v in zip(a, b)))

    def radius(pts, i, k):
        return sorted(dist(pts[i], pts[j]) for j in range(len(pts)) if j != i)[k - 1]

    r_pr = [radius(real, i, k_pr) for i in range(len(real))]
    r_dc = [radius(real, i, k_dc) for i in range(len(real))]
    f_pr = [radius(fake, j, k_pr) for j in range(len(fake))]
    precision = np.mean([any(dist(y, x) <= r for x, r in zip(real, r_pr)) for y in fake])
    recall = np.mean([any(dist(x, y) <= r for y, r in zip(fake, f_pr)) for x in real])
    density = np.mean([sum(dist(y, x) <= r for x, r in zip(real, r_dc)) for y in fake]) / k_dc
    coverage = np.mean([min(dist(x, y) for y in fake) <= r for x, r in zip(real, r_dc)])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prdc_matches_brute_force(seed):
    gen = torch.Generator().manual_seed(seed)
    real = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    fake = 0.8 * torch.randn(30, 3, generator=gen, dtype=torch.float64) + 0.5
    ours = prdc(real, fake, k_pr=3, k_dc=5)
    ref = _brute_prdc(real.tolist(), fake.tolist(), 3, 5)
    for key in ref:
        assert ours[key] == pytest.approx(ref[key], abs=1e-12), key


def test_vector_distances():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(300, 2, generator=gen), torch.randn(200, 2, generator=gen)
    shift = torch.tensor([0.3, -0.4])
    assert w2_squared(a, a + shift) == pytest.approx(0.25, rel=1e-6)  # a translation costs exactly |v|²
    assert sliced_w2(a, a + shift, projections=64) == pytest.approx(0.5 / math.sqrt(2), rel=0.15)  # E(θᵀv)² = |v|²/2
    a1, b1 = a[:, :1].double(), b[:, :1].double()  # 1-D, unequal sizes: slicing is exact
    exact = ot.emd2(np.full(300, 1 / 300), np.full(200, 1 / 200), ot.dist(a1.numpy(), b1.numpy()))
    assert sliced_w2(a1, b1, projections=3) ** 2 == pytest.approx(exact, rel=1e-9)
    assert abs(mmd2_rbf(a, b, bandwidth=1.0)) < 0.01 < mmd2_rbf(a, b + 1.0, bandwidth=1.0)


def test_class_metrics_and_floor_helpers():
    uniform = class_metrics(torch.zeros(20, 4))
    assert uniform["inception_score"] == pytest.approx(1.0)
    sharp = class_metrics(100 * torch.eye(4).repeat(5, 1), labels=torch.arange(4).repeat(5))
    assert sharp["inception_score"] == pytest.approx(4.0, rel=1e-6) and sharp["class_accuracy"] == 1.0
    assert sharp["class_entropy"] == pytest.approx(math.log(4))
    with pytest.raises(GenlabError, match="labels"):
        class_metrics(torch.zeros(3, 4), labels=torch.tensor([0, 1, 9]))
    assert normalized(5.0, 1.0, 9.0) == 0.5 and normalized(1.0, 2.0, 2.0) is None
    g = gaussian_fit_samples(torch.rand(50, 1, 4, 4) * 4 - 2, 100, seed=0)
    assert g.shape == (100, 1, 4, 4) and g.abs().max() <= 1.0  # image draws are clipped


@pytest.mark.parametrize("items", [40, 6])  # N > D: eigendecomposition of Σ; N <= D: the data-matrix draw
def test_gaussian_fit_draws_have_the_fitted_moments(items):
    gen = torch.Generator().manual_seed(0)
    train = (
        torch.randn(items, 12, generator=gen, dtype=torch.float64)
        @ torch.randn(12, 12, generator=gen, dtype=torch.float64)
        + 3.0
    )
    draws = gaussian_fit_samples(train.float(), 200_000, seed=1).double()
    cov = torch.cov(train.T)
    assert torch.allclose(draws.mean(0), train.mean(0), atol=0.05 * cov.diagonal().max().sqrt())
    assert (torch.cov(draws.T) - cov).abs().max() < 0.03 * cov.abs().max()
    assert torch.equal(draws, gaussian_fit_samples(train.float(), 200_000, seed=1).double())  # seeded


def test_shipped_feature_net(digits, net):
    train, test = digits
    assert ASSET.stat().st_size < 1_000_000
    meta = json.loads(ASSET.with_suffix(".json").read_text())
    assert meta["num_features"] == net.module.num_features == 64 and meta["heldout_accuracy"] >= 0.95
    logits = extract(net, test.x)[1]
    assert float((logits.argmax(1) == test.labels).double().mean()) == pytest.approx(meta["heldout_accuracy"])
    assert set(load_file(str(ASSET))) == set(net.module.state_dict())  # plain safetensors, no pickle


def test_feature_net_round_trip(tmp_path, digits):
    train, _ = digits
    small = fit_feature_net(train.x[:128], train.labels[:128], num_classes=10, epochs=1)
    path = save_feature_net(small, tmp_path / "f.safetensors", info={"name": "tiny"})
    loaded = load_feature_net(path)
    assert loaded.name == "tiny" and torch.equal(loaded.module(train.x[:5]), small(train.x[:5]))
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    (tmp_path / "bad.json").write_text(path.with_suffix(".json").read_text())
    with pytest.raises(GenlabError, match="unreadable feature net"):
        load_feature_net(tmp_path / "bad.safetensors")


def test_real_digits_floor_copies_and_missing_modes(digits, net):
    train, test = digits
    half = test.x[: len(test) // 2]  # real held-out digits (the floor uses a random half of the held-out set)
    real = evaluate_sets(half, train=train, heldout=test, feature_net=net)
    assert abs(real["floor"]["normalized"]["fd"]) < 0.1 and abs(real["floor"]["normalized"]["kid"]) < 0.1
    assert not real["memorization"]["memorized"]
    copies = evaluate_sets(train.x[:400], train=train, heldout=test, feature_net=net)
    assert copies["memorization"]["memorized"] and copies["memorization"]["near_copy_fraction"] == 1.0
    assert copies["memorization"]["nn_ratio"] < 0.9
    low = test.labels < 5
    five = evaluate_sets(test.x[low], test.labels[low], train=train, heldout=test, feature_net=net)
    assert five["metrics"]["recall"] <= 0.6 and five["metrics"]["precision"] > 0.7
    assert five["metrics"]["class_entropy"] == pytest.approx(math.log(5), abs=0.05)
    assert five["floor"]["normalized"]["fd"] > 0.5


def test_any_module_as_feature_extractor(digits):
    train, test = digits
    flat = nn.Sequential(nn.Flatten())
    flat.num_features = 64
    report = evaluate_sets(test.x[:100], train=train, feature_net=user_feature_net(flat, name="flatten"))
    assert report["settings"]["feature_net"] == "flatten" and report["metrics"]["fd"] > 0
    assert "inception_score" not in report["metrics"] and "floor" not in report  # no logits, no held-out set
    raw = evaluate_sets(test.x[:100], train=train, feature_net=flat)  # a bare nn.Module works too
    assert raw["settings"]["feature_net"] == "Sequential" and raw["metrics"]["fd"] == report["metrics"]["fd"]
