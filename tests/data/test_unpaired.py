"""Unpaired domains: shapes and range, black-and-white A against colour B, determinism, the split by source photo,
batches that carry both domains, and the config's rules."""

import numpy as np
import pytest
import torch

from genlab.config import recipe_from_dict
from genlab.data import build_dataset
from genlab.data.photos import TEST_PHOTOS, TRAIN_PHOTOS
from genlab.data.unpaired import GREY_TEST, GREY_TRAIN, UnpairedConfig, grey_patches, load_grey_photo, random_squares
from genlab.errors import GenlabError


@pytest.fixture(scope="module")
def splits():
    cfg = UnpairedConfig(n=40, n_test=12)
    return build_dataset(cfg, "train"), build_dataset(cfg, "test")


def test_shapes_range_and_domains(splits):
    for data, n in zip(splits, (40, 12)):
        assert data.x.shape == data.y.shape == (n, 3, 32, 32) and data.name == "unpaired"
        assert data.x.dtype == data.y.dtype == torch.float32 and data.labels is None
        assert data.x.min() >= -1 and data.x.max() <= 1 and data.y.min() >= -1 and data.y.max() <= 1
        assert torch.equal(data.x[:, 0], data.x[:, 1]) and torch.equal(data.x[:, 1], data.x[:, 2])  # A: R = G = B
        chroma = (data.y - data.y.mean(1, keepdim=True)).abs().flatten(1).mean(1)  # B: colour photographs
        assert float((chroma > 0.01).float().mean()) > 0.5
        assert len({tuple(p.flatten()[:64].tolist()) for p in data.x}) == n  # distinct patches


def test_batch_carries_both_domains(splits):
    train, _ = splits
    batch = train.batch(torch.tensor([3, 0, 7]))
    assert set(batch) == {"x", "y"}
    assert torch.equal(batch["x"], train.x[[3, 0, 7]]) and torch.equal(batch["y"], train.y[[3, 0, 7]])


def test_deterministic_from_the_seed():
    a, b = grey_patches(UnpairedConfig(n=10, seed=4), "train"), grey_patches(UnpairedConfig(n=10, seed=4), "train")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, grey_patches(UnpairedConfig(n=10, seed=5), "train"))


def test_split_by_source_photo():
    """No photograph of either domain is in both splits; each split's patches come from that split's photos only,
    shared evenly over them."""
    assert not set(GREY_TRAIN) & set(GREY_TEST) and not set(TRAIN_PHOTOS) & set(TEST_PHOTOS)
    cfg = UnpairedConfig(n=10, n_test=4, seed=2)
    for split, photos in (("train", GREY_TRAIN), ("test", GREY_TEST)):
        patches = grey_patches(cfg, split)
        n = len(patches)
        per = n // len(photos)
        for i, photo in enumerate(photos):  # regenerate each photo's patches alone and find them all
            rng = np.random.default_rng([cfg.seed, ("train", "test").index(split), i, 1])
            own = random_squares(load_grey_photo(photo), per, size=32, side=256, rng=rng)
            assert all(any(np.array_equal(p, q) for q in patches) for p in own), (split, photo)


def test_grey_photos_are_real_and_read_only():
    for name in GREY_TRAIN + GREY_TEST:
        image = load_grey_photo(name)
        assert image.ndim == 3 and image.shape[2] == 3 and min(image.shape[:2]) >= 256 and image.std() > 10
        assert not image.flags.writeable
    with pytest.raises(GenlabError, match="unknown"):
        load_grey_photo("astronaut")


def test_config_rules():
    with pytest.raises(GenlabError, match="size"):
        recipe_from_dict(
            {
                "name": "x",
                "data": {"kind": "unpaired", "size": 48},
                "model": {"kind": "patchgan"},
                "method": {"kind": "cyclegan"},
            },
            "test",
        )
    with pytest.raises(GenlabError, match="split"):
        grey_patches(UnpairedConfig(n=4), "heldout")
