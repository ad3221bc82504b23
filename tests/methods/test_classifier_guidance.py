import json
import shutil

import pytest
import torch

from genlab.analytic import GaussianMixture
from genlab.cli import main
from genlab.config import load_recipe
from genlab.errors import GenlabError
from genlab.paths import from_x_eps, get_path
from genlab.runs import load_run
from genlab.samplers import classifier_guided, sample
from genlab.train import train
from tests.conftest import write_recipe

TINY_CLASSIFIER = {
    "name": "tiny-classifier",
    "seed": 0,
    "data": {"kind": "digits"},
    "model": {"kind": "unet", "channels": 16, "channel_mults": [1, 2], "num_res_blocks": 1},
    # t clamped to 0.6 so that 30 steps visibly lower the loss (most of t > 0.6 is unclassifiable)
    "method": {"kind": "noisy_classifier", "path": "rectified", "time": {"kind": "uniform", "t_max": 0.6}},
    "train": {
        "steps": 30,
        "batch_size": 64,
        "lr": 1e-2,
        "schedule": "constant",
        "warmup_steps": 2,
        "log_every": 10,
        "checkpoint_every": 30,
        "ema_decay": 0.9,
    },
}


def _mixture() -> GaussianMixture:
    means = torch.tensor([[-2.0, 0.0], [2.0, 0.5], [0.0, 2.0]])
    return GaussianMixture(means, torch.tensor([0.3, 0.5, 0.4]), torch.tensor([0.5, 0.3, 0.2]))


def _component(gm: GaussianMixture, k: int) -> GaussianMixture:
    return GaussianMixture(gm.means[k : k + 1], gm.stds[k : k + 1])


def _predictor(gm: GaussianMixture, path, target: str):
    """fn(x_t, t) -> the exact prediction of `target` for the mixture's law."""
    denoise = gm.denoiser(path)
    return lambda x_t, t: from_x_eps(path, target, t, *denoise(x_t, t))


def test_scale_zero_or_no_label_is_the_model_itself():
    path, gm = get_path("rectified"), _mixture()
    fn = _predictor(gm, path, "flow")
    x, t, label = torch.randn(8, 2, dtype=torch.float64), torch.rand(8, dtype=torch.float64), torch.zeros(8).long()
    for scale, lab in ((0.0, label), (3.0, None)):
        wrapped = classifier_guided(fn, gm.component_logits(path), lab, scale=scale, path=path, target="flow")
        assert torch.equal(wrapped(x, t), fn(x, t))


@pytest.mark.parametrize("path_name", ["rectified", "vp_cosine"])
@pytest.mark.parametrize("target", ["flow", "eps", "x", "v"])
def test_scale_one_on_the_unconditional_denoiser_is_the_exact_conditional(path_name, target):
    """∇ log p(x_t | y) = ∇ log p(x_t) + ∇ log p(y | x_t) with the exact posterior over components."""
    path, gm = get_path(path_name), _mixture()
    g = torch.Generator().manual_seed(0)
    x_t = 2.5 * torch.randn(64, 2, generator=g, dtype=torch.float64)
    t = 0.05 + 0.9 * torch.rand(64, generator=g, dtype=torch.float64)
    k = torch.arange(64) % 3
    with torch.no_grad():  # samplers run without grad: the wrapper must still differentiate the classifier
        out = classifier_guided(
            _predictor(gm, path, target), gm.component_logits(path), k, scale=1.0, path=path, target=target
        )(x_t, t)
    for j in range(3):
        exact = _predictor(_component(gm, j), path, target)(x_t[k == j], t[k == j])
        torch.testing.assert_close(out[k == j], exact, rtol=1e-9, atol=1e-9)


def test_guided_sampling_draws_the_requested_component():
    path, gm = get_path("rectified"), _mixture()
    noise = torch.randn(2000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    label = torch.full((2000,), 2)
    fn = classifier_guided(gm.flow_fn(path), gm.component_logits(path), label, scale=1.0, path=path, target="flow")
    out = sample(fn, noise, sampler="heun", steps=24, path=path, target="flow")
    nearest = torch.cdist(out, gm.means).argmin(1)
    assert float((nearest == 2).double().mean()) > 0.99  # unguided, component 2 has prior weight 0.2
    assert torch.allclose(out.mean(0), gm.means[2], atol=0.06)
    assert abs(float(out.std(0).mean()) - float(gm.stds[2])) < 0.04


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("classifier")
    return train(load_recipe(write_recipe(tmp / "clf.yaml", TINY_CLASSIFIER)), tmp / "run", progress=False)


def test_classifier_trains_logs_accuracy_and_writes_no_grid(classifier_run):
    rows = [json.loads(r) for r in (classifier_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30]
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.3 and rows[-1]["accuracy"] > rows[0]["accuracy"]
    assert not (classifier_run / "samples.png").exists()
    clf = load_run(classifier_run).method
    with pytest.raises(GenlabError, match="makes no samples"):
        clf.sample(4)


def test_sample_run_with_classifier(digits_run, classifier_run, tmp_path, capsys):
    opts = {"n": 12, "seed": 3, "steps": 3, "sampler": "heun"}
    run = load_run(digits_run)
    plain, _, _, labels = run.sample(**opts)
    same, _, _, same_labels = run.sample(classifier=classifier_run, classifier_scale=0.0, **opts)
    assert torch.equal(plain, same) and torch.equal(labels, same_labels)  # scale 0: the run's own sampling
    guided = run.sample(classifier=classifier_run, classifier_scale=4.0, **opts).x
    assert guided.shape == plain.shape and not torch.allclose(guided, plain)
    assert (
        main(
            [
                "sample",
                str(digits_run),
                "--classifier",
                str(classifier_run),
                "--classifier-scale",
                "2",
                "--n",
                "4",
                "--label",
                "7",
                "--steps",
                "2",
                "-o",
                str(tmp_path / "g.npz"),
            ]
        )
        == 0
    )


def test_classifier_mismatches_are_clear_errors(digits_run, classifier_run, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(classifier_run, bad)
    config = bad / "checkpoint" / "config.json"
    tree = json.loads(config.read_text())
    tree["recipe"]["method"]["path"] = "vp_cosine"
    config.write_text(json.dumps(tree))
    assert main(["sample", str(digits_run), "--classifier", str(bad), "-o", str(tmp_path / "x.png")]) == 2
    assert "retrain it with --method.path=rectified" in capsys.readouterr().err
    run = load_run(digits_run)
    with pytest.raises(GenlabError, match="noisy_classifier run"):
        run.sample(2, classifier=digits_run)
    shape = run.method.shape
    run.method.shape = (1, 16, 16)
    with pytest.raises(GenlabError, match="shape"):
        run.sample(2, classifier=classifier_run)
    run.method.shape, run.method.num_classes = shape, 5
    with pytest.raises(GenlabError, match="10 classes but the run has 5"):
        run.sample(2, classifier=classifier_run)
