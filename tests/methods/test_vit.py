"""The ViT classifier (model.kind vit) and the plain classifier method (method.kind classifier)."""

from __future__ import annotations

import pytest
import torch

from genlab.config import recipe_from_dict
from genlab.data import build_dataset
from genlab.data.digits import DigitsConfig, build_digits
from genlab.errors import GenlabError
from genlab.methods.classifier import Classifier, ClassifierConfig
from genlab.models.unet import UNetConfig
from genlab.models.vit import ViT, ViTConfig, patchify, unpatchify
from genlab.train import resolve

TINY = dict(in_channels=1, image_size=8, num_classes=10, patch=2, dim=32, depth=2, heads=2)


@pytest.mark.parametrize(("channels", "size", "patch"), [(1, 8, 2), (3, 12, 4), (3, 8, 4)])
def test_patchify_unpatchify_round_trip(channels, size, patch):
    x = torch.randn(2, channels, size, size)
    tokens = patchify(x, patch)
    assert tokens.shape == (2, (size // patch) ** 2, patch * patch * channels)
    torch.testing.assert_close(unpatchify(tokens, patch, channels), x, rtol=0, atol=0)
    # token 1 is the second patch of the first row, flattened (py, px, c)
    torch.testing.assert_close(tokens[:, 1], x[:, :, :patch, patch : 2 * patch].permute(0, 2, 3, 1).reshape(2, -1))
    with pytest.raises(GenlabError, match="divide"):
        patchify(torch.randn(1, 1, 9, 9), 2)
    with pytest.raises(GenlabError, match="unpatchify"):
        unpatchify(torch.randn(1, 5, 4), 2, 1)


def test_cls_and_mean_pooling():
    torch.manual_seed(0)
    x = torch.randn(3, 1, 8, 8)
    cls, mean = ViT(ViTConfig(**TINY, pool="cls")), ViT(ViTConfig(**TINY, pool="mean"))
    assert cls.pos.shape == (1, 17, 32) and cls.cls is not None
    assert mean.pos.shape == (1, 16, 32) and mean.cls is None
    for model, n_tokens in ((cls, 17), (mean, 16)):
        tokens = model.tokens(x)
        assert tokens.shape == (3, n_tokens, 32) and model.features(x).shape == (3, 32) and model(x).shape == (3, 10)
    torch.testing.assert_close(cls.features(x), cls.tokens(x)[:, 0])
    torch.testing.assert_close(mean.features(x), mean.tokens(x).mean(1))
    # attention mixes patches: changing one patch moves the [CLS] output
    y = x.clone()
    y[:, :, :2, :2] += 1.0
    assert not torch.allclose(cls(x), cls(y))
    with pytest.raises(GenlabError, match="patch=3"):
        ViT(ViTConfig(**{**TINY, "patch": 3}))
    with pytest.raises(GenlabError, match="labelled"):
        ViT(ViTConfig(**{**TINY, "num_classes": 0}))


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_vit_classifier_learns_digits_on_a_tiny_budget(pool):
    torch.manual_seed(0)
    data = build_digits(DigitsConfig())
    method = Classifier(ClassifierConfig(), ViTConfig(**TINY, pool=pool))
    opt = torch.optim.AdamW(method.parameters(), lr=3e-3)
    losses = []
    for step in range(80):
        idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(step))[:64]
        loss, logs = method.loss(data.batch(idx))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert {"loss", "accuracy"} <= set(logs)
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5  # starts near ln 10 = 2.3
    metrics = method.eval().heldout_metrics(build_digits(DigitsConfig(), split="test"))
    assert metrics["n"] == 360 and metrics["accuracy"] > 0.4  # chance is 0.1
    probs = method.predict(data.x[:5])
    torch.testing.assert_close(probs.sum(1), torch.ones(5))


def test_classifier_backbones_and_errors():
    unet = UNetConfig(in_channels=1, image_size=8, num_classes=10, channels=8, channel_mults=(1, 2), num_res_blocks=1)
    method = Classifier(ClassifierConfig(label_smoothing=0.1), unet)
    assert method.logits(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(GenlabError, match="vit or unet"):
        Classifier(ClassifierConfig(), UNetConfig(kind="dit"))
    with pytest.raises(GenlabError, match="labelled"):
        Classifier(ClassifierConfig(), ViTConfig(**{**TINY, "num_classes": None}))
    with pytest.raises(GenlabError, match="no samples"):
        method.sample(2)
    with pytest.raises(GenlabError, match="label"):
        method.loss({"x": torch.randn(2, 1, 8, 8)})


def test_vit_on_shapes_attribute_labels():
    """Shapes with data.labels: 24 colour x kind classes of the first shape, the recipe resolves num_classes."""
    tree = {
        "name": "vit-shapes",
        "data": {"kind": "shapes", "n": 16, "n_test": 8, "labels": True},
        "model": {"kind": "vit", "patch": 8, "dim": 16, "depth": 1, "heads": 2, "pool": "mean"},
        "method": {"kind": "classifier"},
    }
    recipe = recipe_from_dict(tree, "test")
    data = build_dataset(recipe.data)
    recipe = resolve(recipe, data)
    assert (recipe.model.num_classes, recipe.model.in_channels, recipe.model.image_size) == (24, 3, 32)
    method = Classifier(recipe.method, recipe.model)
    loss, _ = method.loss(data.batch(torch.arange(8)))
    loss.backward()
    assert loss.item() == pytest.approx(float(torch.log(torch.tensor(24.0))), abs=1.0)
    with pytest.raises(GenlabError, match="labelled"):
        unlabelled = recipe_from_dict({**tree, "data": {"kind": "shapes", "n": 4, "n_test": 4}}, "test")
        unlabelled = resolve(unlabelled, build_dataset(unlabelled.data))
        Classifier(unlabelled.method, unlabelled.model)


def test_classifier_keeps_tensors_on_the_models_device():
    """Loss on a batch on the model's device; predict / held-out metrics move CPU inputs there (checked without a
    GPU by tests.test_devices' pretend device)."""
    from tests.test_devices import PretendDevice, pretend

    data = build_digits(DigitsConfig(), split="test")
    unet = UNetConfig(in_channels=1, image_size=8, num_classes=10, channels=8, channel_mults=(1,), num_res_blocks=1)
    for method in (Classifier(ClassifierConfig(), ViTConfig(**TINY)), Classifier(ClassifierConfig(), unet)):
        batch = pretend(method, data.batch(torch.arange(4)))
        with PretendDevice():
            method.loss(batch)
            assert method.heldout_metrics(data, n=8)["n"] == 8
