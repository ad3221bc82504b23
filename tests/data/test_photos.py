"""Photo patches: shapes and range, determinism from the seed, the split by source photo, recipes and eval."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genlab.config import load_recipe
from genlab.data import build_dataset
from genlab.data.images import center_crop_resize, tensor_to_uint8
from genlab.data.photos import TEST_PHOTOS, TRAIN_PHOTOS, PhotosConfig, load_photo, photo_patches
from genlab.errors import GenlabError
from tests.conftest import TINY_DIGITS, write_recipe


@pytest.mark.parametrize("size", [32, 64])
def test_shapes_and_range(size):
    cfg = PhotosConfig(size=size, n=30, n_test=12)
    train, test = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    assert train.x.shape == (30, 3, size, size) and test.x.shape == (12, 3, size, size)
    assert train.x.dtype == torch.float32 and train.labels is None and train.name == "photos"
    assert train.x.min() >= -1 and train.x.max() <= 1
    assert train.x.std(dim=(1, 2, 3)).min() > 0.01  # real image content, not flat or empty patches
    assert len({tuple(p.flatten()[:64].tolist()) for p in train.x}) == 30  # distinct patches


def test_deterministic_from_the_seed():
    cfg = PhotosConfig(n=21, n_test=6, seed=5)
    a, b = build_dataset(cfg, "train"), build_dataset(PhotosConfig(n=21, n_test=6, seed=5), "train")
    assert torch.equal(a.x, b.x)
    c = build_dataset(PhotosConfig(n=21, n_test=6, seed=6), "train")
    assert not torch.equal(a.x, c.x)
    _, origins_a = photo_patches(cfg, "train")
    _, origins_c = photo_patches(PhotosConfig(n=21, n_test=6, seed=6), "train")
    assert sorted(o.photo for o in origins_a) == sorted(o.photo for o in origins_c)  # seed moves positions only


def test_no_source_photo_in_both_splits():
    assert not set(TRAIN_PHOTOS) & set(TEST_PHOTOS)
    cfg = PhotosConfig(n=70, n_test=30, seed=1)
    for split, photos in (("train", TRAIN_PHOTOS), ("test", TEST_PHOTOS)):
        images, origins = photo_patches(cfg, split)
        counts = {p: sum(o.photo == p for o in origins) for p in photos}
        assert counts == {p: len(origins) // len(photos) for p in photos}  # every split photo, evenly
        for k in range(0, len(origins), 7):  # each patch really is its stated square of its stated photo
            o = origins[k]
            square = load_photo(o.photo)[o.top : o.top + o.crop, o.left : o.left + o.crop]
            assert np.array_equal(images[k], center_crop_resize(square, cfg.size))
        assert np.array_equal(tensor_to_uint8(build_dataset(cfg, split).x), images)


def test_photos_are_real_rgb_and_scaled_to_the_configured_side():
    for name in TRAIN_PHOTOS + TEST_PHOTOS:
        photo = load_photo(name)
        assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3 and min(photo.shape[:2]) >= 256
        assert not (photo[..., 0] == photo[..., 1]).all()  # colour, not grey
    _, origins = photo_patches(PhotosConfig(n=7, n_test=3, side=128), "train")
    for o in origins:
        assert o.crop == round(32 * min(load_photo(o.photo).shape[:2]) / 128)


def test_recipe_with_photos_loads_and_rejects_bad_sizes(tmp_path):
    tree = {**TINY_DIGITS, "data": {"kind": "photos", "size": 64, "n": 100, "seed": 3}}
    recipe = load_recipe(write_recipe(tmp_path / "photos.yaml", tree))
    assert isinstance(recipe.data, PhotosConfig) and recipe.data.size == 64 and recipe.data.n == 100
    assert build_dataset(recipe.data, "train").x.shape == (100, 3, 64, 64)
    for bad, key in (({"size": 48}, "size"), ({"size": 64, "side": 32}, "side"), ({"n": 0}, "n")):
        path = write_recipe(tmp_path / "bad.yaml", {**tree, "data": {"kind": "photos", **bad}})
        with pytest.raises(GenlabError, match=f"data.{key}"):
            load_recipe(path)
    with pytest.raises(GenlabError, match="split"):
        photo_patches(PhotosConfig(), "heldout")


def test_eval_samples_against_photos(tmp_path):
    from genlab.cli import main
    from genlab.evaluate import data_config

    assert data_config("photos:64") == PhotosConfig(size=64)
    assert data_config("photos", like=torch.zeros(2, 3, 64, 64)).size == 64
    test = build_dataset(PhotosConfig(n_test=40), "test")
    np.savez(tmp_path / "s.npz", images=tensor_to_uint8(test.x))
    out = tmp_path / "eval"
    assert main(["eval", "--samples", str(tmp_path / "s.npz"), "--data", "photos", "--out", str(out)]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["settings"]["samples"] == str(tmp_path / "s.npz")
