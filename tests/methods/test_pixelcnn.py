import itertools

import numpy as np
import pytest
import torch

from genlab.data.images import tensor_to_uint8, uint8_to_tensor
from genlab.methods.pixelcnn import PixelCNNMethod, PixelCNNMethodConfig
from genlab.models.pixelcnn import PixelCNNConfig
from genlab.settings import SampleSettings
from tests.ar_helpers import assert_resume_identical, assert_round_trip, build, losses_fall, tiny_recipe

MODEL = {"kind": "pixelcnn", "channels": 8, "layers": 2, "head_channels": 8}
METHOD = {"kind": "pixelcnn"}


def toy(colors: int, *, size: int = 4, levels: int = 4, layers: int = 4, classes: int = 0) -> PixelCNNMethod:
    torch.manual_seed(0)
    cfg = PixelCNNConfig(
        in_channels=colors,
        image_size=size,
        num_classes=classes,
        channels=6,
        layers=layers,
        head_channels=6,
        levels=levels,
    )
    return PixelCNNMethod(PixelCNNMethodConfig(), cfg).double()


@pytest.mark.parametrize("colors", [1, 3])
def test_masked_conv_sees_exactly_the_past(colors):
    """d logits(i, c) / d x is 0 at every later pixel and at channels >= c of pixel i, and nonzero at every
    earlier pixel and at channels < c of pixel i (no blind spot; some sample of a batch of 8 shows it, as a
    ReLU in the head can switch one sample's path off)."""
    model = toy(colors).model
    x = torch.randn(8, colors, 4, 4, dtype=torch.float64, requires_grad=True)
    logits = model(x)
    for i, j, c in itertools.product(range(4), range(4), range(colors)):
        (grad,) = torch.autograd.grad(logits[:, c, :, i, j].sum(), x, retain_graph=True)
        seen = (grad.abs() > 0).any(0).flatten(1)  # (C, H*W)
        pixel = i * 4 + j
        assert not seen[:, pixel + 1 :].any() and not seen[c:, pixel].any()
        assert seen[:, :pixel].all() and seen[:c, pixel].all()


@pytest.mark.parametrize("colors", [1, 3])
def test_exact_likelihood_sums_to_one_on_binary_2x2(colors):
    method = toy(colors, size=2, levels=2, layers=2, classes=2)
    images = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=colors * 4)), dtype=torch.float64)
    images = images.view(-1, colors, 2, 2)  # all 2**(4C) binary images
    logp = method.log_likelihood(images, torch.ones(len(images), dtype=torch.long))
    assert torch.logsumexp(logp, 0).item() == pytest.approx(0.0, abs=1e-9)


def test_log_likelihood_is_the_chain_rule_over_raster_order():
    """log p(x) = Σ_{i,c} log softmax(f(x with pixels >= (i, c) blanked))[u_{i,c}]: factors see only the past."""
    method = toy(3, levels=8)
    x = method.to_image(torch.randint(0, 8, (2, 3, 4, 4))).double()
    u = method.to_index(x)
    total = torch.zeros(2, dtype=torch.float64)
    for pos, c in itertools.product(range(16), range(3)):
        i, j = divmod(pos, 4)
        past = x.clone().flatten(2)
        past[:, :, pos + 1 :] = 0.0
        past[:, c:, pos] = 0.0
        logits = method.model(past.view_as(x))[:, c, :, i, j]
        total += logits.log_softmax(-1).gather(1, u[:, c, i, j, None]).squeeze(1)
    assert torch.allclose(method.log_likelihood(x), total, atol=1e-9)


def test_256_levels_are_the_uint8_grid():
    method = toy(1, levels=256)
    u = torch.arange(256).view(1, 1, 16, 16)
    x = uint8_to_tensor(u.permute(0, 2, 3, 1).numpy().astype(np.uint8))
    assert torch.equal(method.to_index(x), u)
    assert np.array_equal(tensor_to_uint8(method.to_image(u)), u.permute(0, 2, 3, 1).numpy())


def test_samples_have_the_right_shape_range_and_grid(tmp_path):
    method = build(tiny_recipe(tmp_path, MODEL, METHOD))[0].eval()
    gen = torch.Generator().manual_seed(0)
    x = method.sample(3, cond=torch.tensor([0, 5, 9]), generator=gen, settings=SampleSettings(temperature=0.8)).x
    assert x.shape == (3, 1, 8, 8) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(uint8_to_tensor(tensor_to_uint8(x)), x)
    again = method.sample(3, cond=torch.tensor([0, 5, 9]), generator=torch.Generator().manual_seed(0)).x
    assert again.shape == x.shape


def test_loss_falls_round_trip_and_resume(tmp_path):
    first, last = losses_fall(tiny_recipe(tmp_path, MODEL, METHOD, lr=0.03), tmp_path)
    assert last < first - 1.0  # bits/dim starts near log2(256) = 8
    recipe = tiny_recipe(tmp_path, MODEL, METHOD)
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    assert_round_trip(recipe, tmp_path, lambda m: m.log_likelihood(x, torch.arange(4)))
    assert_resume_identical(recipe, tmp_path)
