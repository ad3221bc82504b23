import copy

import pytest
import torch
import torch.nn.functional as F

from genlab.config import load_recipe
from genlab.data import build_dataset
from genlab.methods.gan import GANConfig, GANMethod, gen_loss, r1_penalty
from genlab.models.gan import AdaIN, DCGANConfig, Discriminator, StyleGANConfig
from genlab.train import Trainer
from tests.ar_helpers import assert_resume_identical, assert_round_trip
from tests.conftest import write_recipe

TINY_GAN = {
    "name": "tiny-gan",
    "seed": 0,
    "data": {"kind": "digits"},
    "model": {"kind": "dcgan", "channels": 32, "latent_dim": 16},
    "method": {"kind": "gan", "loss": "non_saturating"},
    "train": {
        "steps": 6,
        "batch_size": 32,
        "lr": 2e-4,
        "betas": [0.5, 0.999],
        "warmup_steps": 0,
        "log_every": 2,
        "checkpoint_every": 3,
        "grad_clip": 100.0,
    },
}


def tiny_method(kind="dcgan", *, size=8, channels=1, classes=10, loss="non_saturating", r1=0.0):
    cls = StyleGANConfig if kind == "stylegan" else DCGANConfig
    cfg = cls(in_channels=channels, image_size=size, num_classes=classes, channels=32, latent_dim=16)
    return GANMethod(GANConfig(loss=loss, r1_gamma=r1), cfg)


@pytest.fixture(scope="module")
def real_batch():
    data = build_dataset(load_recipe_tree(TINY_GAN).data, split="train")
    return data.batch(torch.arange(64))


def load_recipe_tree(tree):
    from genlab.config import recipe_from_dict

    return recipe_from_dict(copy.deepcopy(tree), "test")


@pytest.mark.parametrize("kind", ["dcgan", "stylegan"])
@pytest.mark.parametrize("size,channels,classes", [(8, 1, 10), (32, 3, 0)])
def test_samples_shape_and_range(kind, size, channels, classes):
    torch.manual_seed(0)
    method = tiny_method(kind, size=size, channels=channels, classes=classes).eval()
    label = torch.arange(5) % 10 if classes else None
    x = method.sample(5, cond=label, generator=torch.Generator().manual_seed(0)).x
    assert x.shape == (5, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0
    assert method.nets.discriminator(x, label).shape == (5,)


@pytest.mark.parametrize("kind", ["dcgan", "stylegan"])
@pytest.mark.parametrize("group", ["disc", "gen"])
def test_loss_falls_with_the_other_network_fixed(kind, group, real_batch):
    """D's loss falls while only D trains (G fixed), and G's loss falls while only G trains (D fixed)."""
    torch.manual_seed(0)
    method = tiny_method(kind, r1=1.0 if kind == "stylegan" else 0.0)
    opt = torch.optim.Adam(method.optimizer_groups()[group], lr=2e-3, betas=(0.5, 0.999))
    losses = []
    for _ in range(15):
        torch.manual_seed(1)  # the same latents every step, as a fixed problem
        loss, info = method.loss(real_batch, group)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(info[f"loss/{group}"]))
    assert losses[-1] < losses[0] - 0.05, losses


def test_each_phase_updates_only_its_own_parameters(tmp_path):
    """Around each optimizer's step only that group's parameters move, and G's backward leaves D's grads alone."""
    trainer = Trainer(load_recipe_tree(TINY_GAN), tmp_path / "run")
    params = dict(trainer.method.named_parameters())
    owner = {name: g for g, ps in trainer.groups.items() for name, p in params.items() if any(p is q for q in ps)}
    assert set(owner.values()) == {"disc", "gen"} and len(owner) == len(params)
    seen = []

    def wrap(group, opt_step):
        def step(*a, **k):
            before = {n: p.detach().clone() for n, p in params.items()}
            grads = {n: None if p.grad is None else p.grad.clone() for n, p in params.items() if owner[n] != group}
            out = opt_step(*a, **k)
            moved = {n for n, p in params.items() if not torch.equal(p, before[n])}
            assert moved and all(owner[n] == group for n in moved), (group, sorted(moved)[:3])
            seen.append((group, grads))
            return out

        return step

    for name, opt in trainer.optimizers.items():
        opt.step = wrap(name, opt.step)
    trainer.train_step()
    assert [g for g, _ in seen] == ["disc", "gen"]
    (_, disc_phase), (_, gen_phase) = seen
    assert all(v is None for v in disc_phase.values())  # the fake is made without a graph into G
    d_grads = {n: p.grad for n, p in params.items() if owner[n] == "disc"}
    for n, g in gen_phase.items():  # D's grads after G's backward equal those of D's own phase
        assert torch.equal(g, d_grads[n]), n


def test_minimax_gradient_vanishes_when_d_rejects_fakes():
    """d/dl log(1 - sigmoid(l)) = -sigmoid(l) -> 0 as l -> -inf; non-saturating -log sigmoid(l) gives -> -1."""
    logits = torch.tensor([-12.0, -4.0, 0.0, 3.0], dtype=torch.float64, requires_grad=True)
    for kind, closed in [("minimax", -torch.sigmoid(logits)), ("non_saturating", -torch.sigmoid(-logits))]:
        (grad,) = torch.autograd.grad(gen_loss(kind, logits) * len(logits), logits)
        torch.testing.assert_close(grad, closed.detach())
    (mm,) = torch.autograd.grad(gen_loss("minimax", logits[:1]), logits)
    (ns,) = torch.autograd.grad(gen_loss("non_saturating", logits[:1]), logits)
    assert abs(mm[0]) < 1e-5 and abs(ns[0]) > 0.999


def test_spectral_norm_keeps_top_singular_value_at_one():
    torch.manual_seed(0)
    cfg = DCGANConfig(in_channels=1, image_size=8, num_classes=10, channels=32)
    disc = Discriminator(cfg)
    x, y = torch.randn(4, 1, 8, 8), torch.arange(4)
    for _ in range(100):  # one power iteration per training forward
        disc(x, y)
    weights = [m.weight for m in disc.modules() if hasattr(m, "parametrizations")]
    assert len(weights) == 4  # 8x8: from_image, one stride-2 conv, head, class embedding
    for w in weights:
        sigma = torch.linalg.matrix_norm(w.detach().flatten(1), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.02)


def test_r1_penalty_matches_closed_form_and_is_differentiable():
    """For a linear critic l(x) = <a, x>, grad_x l = a, so the penalty is |a|^2 and its gradient in a is 2a."""
    a = torch.randn(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    x = torch.randn(5, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    penalty = r1_penalty((x * a).flatten(1).sum(1), x)
    torch.testing.assert_close(penalty, a.pow(2).sum())
    (grad_a,) = torch.autograd.grad(penalty, a)
    torch.testing.assert_close(grad_a, 2 * a.detach())


def test_adain_sets_per_channel_mean_and_std():
    torch.manual_seed(0)
    adain = AdaIN(6, 8)
    h, w = 3 + 5 * torch.randn(4, 6, 16, 16), torch.randn(4, 8)
    out = adain(h, w)
    scale, shift = adain.style(w).chunk(2, dim=1)  # (B, C) each
    torch.testing.assert_close(out.mean((2, 3)), shift, atol=1e-4, rtol=0)
    torch.testing.assert_close(out.std((2, 3), correction=0), (1 + scale).abs(), atol=1e-3, rtol=1e-3)


def test_stylegan_decode_is_a_function_of_z_when_sampling():
    torch.manual_seed(0)
    method = tiny_method("stylegan").eval()
    z, y = method.sample_latent(3), torch.tensor([1, 2, 3])
    torch.testing.assert_close(method.decode(z, y), method.decode(z, y))
    assert not torch.equal(method.decode(z, y), method.decode(method.sample_latent(3), y))
    for layer in method.nets.generator.layers:
        layer.noise_strength.data.fill_(0.1)  # zero at initialisation, as in StyleGAN
    method.train()
    assert not torch.equal(method.decode(z, y), method.decode(z, y))  # fresh noise in training


@pytest.mark.parametrize("kind", ["dcgan", "stylegan"])
def test_resume_is_identical_and_checkpoint_round_trips(tmp_path, kind):
    tree = copy.deepcopy(TINY_GAN)
    tree["model"]["kind"] = kind
    recipe = load_recipe(write_recipe(tmp_path / "gan.yaml", tree))
    assert_resume_identical(recipe, tmp_path)
    label = torch.arange(4)
    assert_round_trip(recipe, tmp_path, lambda m: m.sample(4, cond=label, generator=torch.Generator().manual_seed(3)).x)


def test_disc_loss_logs_probabilities(real_batch):
    torch.manual_seed(0)
    _, info = tiny_method().loss(real_batch, "disc")
    assert 0 < float(info["d_real"]) < 1 and 0 < float(info["d_fake"]) < 1
    assert float(info["loss/disc"]) == pytest.approx(2 * F.softplus(torch.tensor(0.0)).item(), abs=0.3)
