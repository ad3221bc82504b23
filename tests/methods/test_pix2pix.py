"""pix2pix: the U-Net and PatchGAN (shapes, receptive field, dropout noise), the objective's ablation switch, losses
that fall, the trainer's input | output | truth grid and the image-to-image contract."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.config import recipe_from_dict
from genlab.edit.degrade import grey
from genlab.errors import GenlabError
from genlab.methods.pix2pix import Pix2PixConfig, Pix2PixMethod, adversarial_d_loss, adversarial_g_loss
from genlab.models.patchgan import PatchDiscriminator, PatchGANConfig, UNetGenerator
from genlab.train import train

TINY_PIX2PIX = {
    "name": "tiny-pix2pix",
    "seed": 0,
    "data": {"kind": "photos", "size": 32, "n": 48, "n_test": 16},
    "model": {"kind": "patchgan", "channels": 8, "disc_channels": 8},
    "method": {"kind": "pix2pix"},
    "train": {"steps": 2, "batch_size": 8, "warmup_steps": 0, "log_every": 1, "checkpoint_every": 2, "grid_columns": 4},
}


def tiny(objective="l1+cgan", *, gan_loss="bce", dropout=0.5, conditional=True) -> Pix2PixMethod:
    torch.manual_seed(0)
    model = PatchGANConfig(in_channels=3, image_size=32, channels=8, disc_channels=8, dropout=dropout)
    return Pix2PixMethod(Pix2PixConfig(objective=objective, gan_loss=gan_loss, conditional=conditional), model)


@pytest.fixture(scope="module")
def photos():
    """16 real colour patches (16, 3, 32, 32)."""
    from genlab.data import build_dataset

    return build_dataset(recipe_from_dict(dict(TINY_PIX2PIX), "test").data).x[:16]


def test_generator_and_discriminator_shapes():
    torch.manual_seed(0)
    g = UNetGenerator(1, 3, channels=8, depth=5)
    y = g(torch.randn(4, 1, 32, 32))
    assert y.shape == (4, 3, 32, 32) and y.abs().max() < 1
    d = PatchDiscriminator(3, source_channels=1, channels=8, layers=1)
    assert d(y, torch.randn(4, 1, 32, 32)).shape == (4, 1, 14, 14)  # 32 -> 16 -> 15 -> 14 logits per side
    assert PatchDiscriminator(3, channels=8, layers=2)(y).shape == (4, 1, 6, 6)
    with pytest.raises(GenlabError, match="source"):
        d(y)
    with pytest.raises(GenlabError, match="divisible"):
        g(torch.randn(1, 1, 24, 24))


@pytest.mark.parametrize("layers,field", [(0, 7), (1, 16), (2, 34), (3, 70)])
def test_patchgan_receptive_field(layers, field):
    """The stated receptive field (pix2pix's 16 / 70 for 1 / 3 stride-2 layers) is the support of one logit's input
    gradient through the convolutions: exactly `field` x `field` pixels (GroupNorm's per-image statistics, which
    reach every pixel, replaced by the identity, as batch norm's are in the paper's count)."""
    torch.manual_seed(0)
    d = PatchDiscriminator(1, channels=4, layers=layers)
    assert d.receptive_field == field
    d.net = torch.nn.Sequential(*(torch.nn.Identity() if isinstance(m, torch.nn.GroupNorm) else m for m in d.net))
    for m in d.modules():  # positive weights: no accidental cancellation inside the field
        if isinstance(m, torch.nn.Conv2d):
            m.weight.data.uniform_(0.1, 1.0)
    size = 2**layers * 8 + field * 2
    x = torch.randn(1, 1, size, size, requires_grad=True)
    out = d(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows, cols = (x.grad[0, 0] != 0).any(1).nonzero(), (x.grad[0, 0] != 0).any(0).nonzero()
    assert int(rows.max() - rows.min() + 1) == field and int(cols.max() - cols.min() + 1) == field


def test_dropout_is_the_noise_and_follows_the_generator():
    method = tiny().eval()  # eval mode: the paper keeps dropout on at test time, and so do we
    source = torch.rand(3, 1, 32, 32) * 2 - 1
    out = lambda seed: method.translate(source, generator=torch.Generator().manual_seed(seed)).x  # noqa: E731
    assert torch.equal(out(1), out(1))
    assert not torch.equal(out(1), out(2))
    plain = tiny(dropout=0.0)
    assert torch.equal(plain.translate(source, generator=torch.Generator().manual_seed(1)).x, plain.translate(source).x)


def test_translate_contract(photos):
    method = tiny()
    given = method.degrade(photos[:4])
    assert set(given) == {"source"} and given["source"].shape == (4, 1, 32, 32)
    torch.testing.assert_close(given["source"], grey(photos[:4]))
    out = method.translate(given["source"], generator=torch.Generator().manual_seed(0))
    assert out.x.shape == (4, 3, 32, 32) and out.nfe == 1
    gen = torch.Generator().manual_seed(0)
    torch.testing.assert_close(method.translate(photos[:4], generator=gen).x, out.x)  # colour input -> its grey
    assert method.source_shape == (1, 32, 32) and method.image_shape == (3, 32, 32)
    with pytest.raises(GenlabError, match="--resize"):
        method.translate(torch.zeros(1, 1, 16, 16))
    with pytest.raises(GenlabError, match="mask"):
        method.translate(given["source"], mask=torch.ones(4, 1, 32, 32))
    with pytest.raises(GenlabError, match="genlab edit"):
        method.sample(4)
    rows = method.preview({"x": photos[:4]}, generator=torch.Generator().manual_seed(0))
    assert rows.shape == (4, 3, 3, 32, 32)  # input | output | truth
    assert torch.equal(rows[:, 0], grey(photos[:4]).expand(-1, 3, -1, -1)) and torch.equal(rows[:, 2], photos[:4])


def test_adversarial_losses_closed_form():
    zero, one = torch.zeros(2, 1, 3, 3), torch.ones(2, 1, 3, 3)
    assert float(adversarial_d_loss("lsgan", one, zero)) == 0.0  # D right everywhere
    assert float(adversarial_d_loss("lsgan", zero, one)) == pytest.approx(1.0)  # ½(1 + 1)
    assert float(adversarial_g_loss("lsgan", one)) == 0.0
    assert float(adversarial_d_loss("bce", zero, zero)) == pytest.approx(math.log(2))  # ½(log 2 + log 2)
    assert float(adversarial_g_loss("bce", zero)) == pytest.approx(math.log(2))


def test_objective_switch(photos):
    batch = {"x": photos[:8]}
    assert set(tiny("l1").optimizer_groups()) == {"gen"}  # L1 alone trains no discriminator
    assert list(tiny("cgan").optimizer_groups()) == ["disc", "gen"]
    for objective in ("l1", "cgan", "l1+cgan"):
        method = tiny(objective)
        torch.manual_seed(3)
        loss, logs = method.loss(batch, "gen")
        l1_part = 100.0 * logs["l1"] if objective != "cgan" else 0.0
        gan_part = logs["gan"] if objective != "l1" else 0.0
        torch.testing.assert_close(loss.detach(), torch.as_tensor(l1_part + gan_part, dtype=loss.dtype))


@pytest.mark.parametrize("group", ["gen", "disc"])
@pytest.mark.parametrize("gan_loss", ["bce", "lsgan"])
def test_loss_falls_with_the_other_network_fixed(photos, group, gan_loss):
    method = tiny(gan_loss=gan_loss)
    opt = torch.optim.Adam(method.optimizer_groups()[group], lr=2e-3, betas=(0.5, 0.999))
    batch, losses = {"x": photos}, []
    for _ in range(12):
        torch.manual_seed(1)  # the same dropout masks every step: a fixed problem
        loss, info = method.loss(batch, group)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(info[f"loss/{group}"]))
    assert losses[-1] < 0.9 * losses[0], losses


def test_unconditional_discriminator_ignores_the_source(photos):
    method = tiny(conditional=False)
    assert method.nets.discriminator.source_channels == 0
    loss, _ = method.loss({"x": photos[:4]}, "disc")
    assert torch.isfinite(loss)


def test_trainer_grid_shows_input_output_truth(tmp_path):
    recipe = recipe_from_dict(dict(TINY_PIX2PIX), "test")
    run = train(recipe, tmp_path / "run", progress=False)
    grid = np.asarray(Image.open(run / "samples.png"))
    tile = 32 * 2 + 1  # 32-pixel tiles upscaled x2, 1-pixel separators
    assert grid.shape == (4 * tile + 1, 3 * tile + 1, 3)  # 4 rows (grid_columns) of input | output | truth
    first = grid[1:65:2, 1:65:2]  # the first input tile, back at 32x32
    assert (first[..., 0] == first[..., 1]).all() and (first[..., 1] == first[..., 2]).all()  # grey
