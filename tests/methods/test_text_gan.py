"""Text-conditional GAN: mismatched captions, conditioning augmentation, projection D on text, and the CLIs."""

import json
import random

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.cli import main
from genlab.errors import GenlabError
from genlab.methods.latent import Prompts
from genlab.methods.text_gan import TextGANConfig, TextGANMethod, augmentation_kl, mismatched
from genlab.models.gan import DCGANConfig
from genlab.runs import load_run
from tests.conftest import write_recipe
from tests.t2i_fixtures import coloured_squares, use_hash_encoder

CAPTIONS = ["a red square", "a blue square", "a green square", "a white square"]


def tiny_tree(data) -> dict:
    return {
        "name": "tiny-text-gan",
        "seed": 0,
        "data": {"kind": "npz", "path": str(data)},
        "model": {"kind": "dcgan", "channels": 16, "latent_dim": 8},
        "method": {"kind": "text_gan", "cond_dim": 8},
        "train": {
            "steps": 3,
            "batch_size": 16,
            "lr": 2e-4,
            "betas": [0.0, 0.99],
            "warmup_steps": 0,
            "log_every": 1,
            "checkpoint_every": 3,
            "grid_columns": 2,
        },
    }


@pytest.fixture(autouse=True)
def hash_encoder(monkeypatch):
    use_hash_encoder(monkeypatch)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("text-gan")
    data = coloured_squares(tmp / "squares.npz", n=64)
    with pytest.MonkeyPatch.context() as mp:
        use_hash_encoder(mp)
        recipe = write_recipe(tmp / "tg.yaml", tiny_tree(data))
        assert main(["train", str(recipe), "--out", str(tmp / "run"), "--no-progress"]) == 0
    return tmp / "run"


def tiny_method(**cfg) -> TextGANMethod:
    model = DCGANConfig(in_channels=3, image_size=16, num_classes=0, channels=16, latent_dim=8)
    return TextGANMethod(TextGANConfig(cond_dim=8, **cfg), model)


def test_mismatched_captions_are_never_the_images_own_nor_identical():
    rng = random.Random(0)
    for trial in range(200):
        n = rng.randint(2, 40)
        vocab = CAPTIONS[: rng.randint(2, 4)]
        texts = [rng.choice(vocab) for _ in range(n)]
        perm, ok = mismatched(texts, torch.Generator().manual_seed(trial))
        assert sorted(perm.tolist()) == list(range(n))  # a permutation: every caption used once
        assert ok.tolist() == [texts[p] != t for p, t in zip(perm.tolist(), texts)]
        if 2 * max(texts.count(t) for t in vocab) <= n:  # possible for every row: then done for every row
            assert ok.all(), (texts, perm)
            assert all(p != i and texts[p] != texts[i] for i, p in enumerate(perm.tolist()))
    perm, ok = mismatched(["a red square"] * 3 + ["a blue square"])  # 3 of 4 alike: 2 rows can be re-paired
    assert ok.sum() == 2 and all(perm[i] != i for i in range(4) if ok[i])
    assert not mismatched(["a red square"])[1].any()


def test_the_discriminator_sees_real_images_with_really_mismatched_captions():
    torch.manual_seed(0)
    m = tiny_method()
    texts = ["a red square"] * 6 + ["a blue square"] * 5 + ["a green square"] * 5
    x = torch.rand(16, 3, 16, 16) * 2 - 1
    calls = []
    m.nets.discriminator.register_forward_hook(lambda mod, args, out: calls.append(args))
    m.loss({"x": x, "text": texts}, "disc")
    assert len(calls) == 3  # real, fake, mismatched
    (x_real, e_real), (_, e_fake), (x_wrong, e_wrong) = calls
    assert torch.equal(x_real, x) and torch.equal(e_fake, e_real)
    table = m.embed_text(CAPTIONS, "cpu")
    caption_of = {i: texts[i] for i in range(16)}
    assert len(x_wrong) == 16  # no caption holds half the batch: every real image is re-paired
    for xi, ei in zip(x_wrong, e_wrong):
        row = next(i for i in range(16) if torch.equal(x[i], xi))
        said = CAPTIONS[int((table - ei).abs().sum(1).argmin())]
        assert said != caption_of[row]


def test_augmentation_kl_and_the_augmented_condition():
    torch.manual_seed(0)
    mu, logvar = torch.randn(5, 7), torch.randn(5, 7)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, (0.5 * logvar).exp()), torch.distributions.Normal(0.0, 1.0)
    ).sum(1)
    torch.testing.assert_close(augmentation_kl(mu, logvar), ref)
    assert augmentation_kl(torch.zeros(2, 3), torch.zeros(2, 3)).abs().max() < 1e-7  # N(0, I) itself
    m = tiny_method()
    e = m.embed_text(["a red square"], "cpu").expand(4000, -1)
    c, mu, logvar = m.condition(e, torch.Generator().manual_seed(0))
    sigma = (0.5 * logvar[0]).exp()
    assert ((c.mean(0) - mu[0]).abs() < 4 * sigma / 4000**0.5).all()  # c ~ N(mu(e), sigma(e)^2)
    torch.testing.assert_close(c.std(0), sigma, atol=0, rtol=0.1)


def test_the_discriminator_and_generator_depend_on_the_text():
    torch.manual_seed(0)
    m = tiny_method().eval()
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    e1, e2 = m.embed_text(["a red square"] * 4, "cpu"), m.embed_text(["a blue square"] * 4, "cpu")
    disc = m.nets.discriminator
    d1, d2, mid = disc(x, e1), disc(x, e2), disc(x, (e1 + e2) / 2)
    assert (d1 - d2).abs().min() > 1e-4  # the text changes every logit
    torch.testing.assert_close(d1 + d2, 2 * mid)  # ... through the projection <phi(x), W e>: affine in e
    z = torch.randn(4, 8)
    assert (m.nets.generator(z, m.augment(e1)[0]) - m.nets.generator(z, m.augment(e2)[0])).abs().max() > 1e-4


def test_losses_stay_finite_and_samples_have_the_declared_shape():
    torch.manual_seed(0)
    m = tiny_method(r1_gamma=1.0)
    groups = m.optimizer_groups()
    assert {id(p) for p in m.augment.parameters()} <= {id(p) for p in groups["gen"]}
    opts = {g: torch.optim.Adam(ps, lr=1e-3, betas=(0.0, 0.99)) for g, ps in groups.items()}
    texts = [CAPTIONS[i % 4] for i in range(8)]
    batch = {"x": torch.rand(8, 3, 16, 16) * 2 - 1, "text": texts}
    for _ in range(3):
        for group in ("disc", "gen"):
            loss, info = m.loss(batch, group)
            assert torch.isfinite(loss) and all(torch.isfinite(v) for v in info.values()), info
            opts[group].zero_grad()
            loss.backward()
            opts[group].step()
    assert info["kl"] > 0
    m.eval()
    out = m.sample(5, cond=["a red square"] * 5, generator=torch.Generator().manual_seed(1))
    again = m.sample(5, cond=["a red square"] * 5, generator=torch.Generator().manual_seed(1))
    assert out.x.shape == (5, *m.image_shape) == (5, 3, 16, 16) and out.nfe == 1
    assert out.x.abs().max() <= 1 and torch.equal(out.x, again.x)
    assert m.sample(3).x.shape == (3, 3, 16, 16)  # no prompts: the default set
    with pytest.raises(GenlabError, match="negative"):
        m.sample(2, cond=Prompts(["a red square"] * 2, ["red"] * 2))
    with pytest.raises(GenlabError, match="captioned"):
        m.loss({"x": batch["x"]}, "disc")


def test_generate_and_geneval_end_to_end(run, tmp_path, capsys):
    out = tmp_path / "x.png"
    assert main(["generate", "a red circle", "--run", str(run), "--n", "4", "-o", str(out)]) == 0
    assert "4 images" in capsys.readouterr().out
    grid = np.asarray(Image.open(out))
    assert grid.ndim == 3 and grid.shape[2] == 3
    ev = tmp_path / "ev"
    assert main(["eval", str(run), "--prompts", "builtin", "--n-per-prompt", "1", "--out", str(ev)]) == 0
    report = json.loads((ev / "geneval.json").read_text())
    assert report["rows"]["model"]["images"] == report["suite"]["prompts"]
    assert 0 <= report["rows"]["model"]["overall"] <= 1 and report["settings"]["recipe"] == "tiny-text-gan"
    samples = load_run(run).sample(3, prompts=["a red square"] * 3)
    assert samples.x.shape == (3, 3, 16, 16) and samples.cond == ["a red square"] * 3


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--steps", "4"], "text_gan samples by the generator (one pass): --steps does not apply"),
        (["--guidance-scale", "3"], "--guidance-scale does not apply"),
        (["--negative", "red"], "no classifier-free guidance"),
    ],
)
def test_settings_a_gan_cannot_use_are_refused(run, tmp_path, capsys, extra, message):
    assert main(["generate", "a red circle", "--run", str(run), "-o", str(tmp_path / "x.png"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_runs_of_the_wrong_kind_are_refused(gan_run, tmp_path, capsys):
    assert main(["generate", "a red circle", "--run", str(gan_run), "-o", str(tmp_path / "x.png")]) == 2
    assert "not text-to-image" in capsys.readouterr().err
    tree = {**tiny_tree(None), "data": {"kind": "digits"}}
    bad_model = write_recipe(tmp_path / "unet.yaml", {**tree, "model": {"kind": "unet", "channels": 8}})
    assert main(["train", str(bad_model), "--out", str(tmp_path / "a"), "--no-progress"]) == 2
    digits = write_recipe(tmp_path / "digits.yaml", tree)
    assert main(["train", str(digits), "--out", str(tmp_path / "b"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "needs model.kind dcgan or stylegan" in err and "needs captioned data" in err
