"""Faces from scikit-image's lfw_subset: shapes and range, determinism, the fixed split by image, bad configs, a
missing scikit-image, and a tiny Palette inpainting step and run on them."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.cli import main
from genlab.config import load_recipe
from genlab.data import build_dataset
from genlab.data.faces import TEST_FACES, TRAIN_FACES, FacesConfig, face_images, face_indices, load_faces
from genlab.data.images import center_crop_resize, tensor_to_uint8
from genlab.errors import GenlabError
from genlab.methods.image2image import PairedFlowConfig, PairedFlowMethod
from genlab.models.unet import UNetConfig
from tests.conftest import ROOT, TINY_DIGITS, write_recipe


@pytest.mark.parametrize("size", [16, 25, 32])
def test_shapes_and_range(size):
    cfg = FacesConfig(size=size)
    train, test = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    assert train.x.shape == (160, 1, size, size) and test.x.shape == (20, 1, size, size)
    assert build_dataset(FacesConfig(size=size, flip=False), "train").x.shape == (80, 1, size, size)
    assert train.x.dtype == torch.float32 and train.labels is None and train.name == "faces"
    assert train.x.min() >= -1 and train.x.max() <= 1 and test.x.min() >= -1 and test.x.max() <= 1
    assert train.x.std(dim=(1, 2, 3)).min() > 0.1  # real faces, not flat images
    assert len({tuple(p.flatten().tolist()) for p in train.x}) == 160  # no face equals another or its mirror


def test_faces_are_the_first_hundred_of_lfw_subset_at_native_size():
    import skimage.data

    raw = skimage.data.lfw_subset()
    faces = load_faces()
    assert faces.shape == (100, 25, 25) and faces.dtype == np.uint8 and not faces.flags.writeable
    assert np.abs(faces / 255.0 - raw[:100]).max() <= 0.5 / 255 + 1e-9  # 8-bit rounding of the faces, not non-faces
    test = face_images(FacesConfig(size=25), "test")[..., 0]  # (20, 25, 25): native size is not resampled
    index, _ = face_indices(FacesConfig(size=25), "test")
    assert np.array_equal(test, faces[index])


def test_deterministic_and_the_seed_only_shuffles():
    a = build_dataset(FacesConfig(seed=3), "train").x
    assert torch.equal(a, build_dataset(FacesConfig(seed=3), "train").x)
    b = build_dataset(FacesConfig(seed=4), "train").x
    assert not torch.equal(a, b)
    key = lambda x: sorted(tuple(p.flatten().tolist()) for p in x)  # noqa: E731
    assert key(a) == key(b)  # the same images in another order


def test_split_is_fixed_disjoint_and_train_holds_no_test_face():
    assert list(TRAIN_FACES) == list(range(80)) and list(TEST_FACES) == list(range(80, 100))
    for seed in (0, 7):
        train_idx, mirrored = face_indices(FacesConfig(seed=seed), "train")
        test_idx, test_mirrored = face_indices(FacesConfig(seed=seed), "test")
        assert sorted(train_idx[~mirrored]) == sorted(train_idx[mirrored]) == list(range(80))  # each face and mirror
        assert sorted(test_idx) == list(range(80, 100)) and not test_mirrored.any()
    faces = load_faces()
    cfg = FacesConfig(size=32, seed=1)
    train, test = face_images(cfg, "train"), face_images(cfg, "test")
    index, mirrored = face_indices(cfg, "train")
    for k in range(0, len(index), 9):  # each train image really is its stated face, mirrored as stated
        face = faces[index[k], :, ::-1] if mirrored[k] else faces[index[k]]
        assert np.array_equal(train[k], center_crop_resize(np.ascontiguousarray(face)[:, :, None], 32))
    flat_train = train.reshape(len(train), -1).astype(np.int16)
    for image in test:  # no test face, nor its mirror, is (or is within 8-bit noise of) any train image
        for view in (image, image[:, ::-1]):
            assert np.abs(flat_train - view.reshape(1, -1)).max(axis=1).min() > 8
    assert np.array_equal(tensor_to_uint8(build_dataset(cfg, "test").x), test)


def test_recipe_with_faces_loads_and_rejects_bad_config(tmp_path):
    tree = {**TINY_DIGITS, "data": {"kind": "faces", "size": 16, "seed": 2, "flip": False}}
    recipe = load_recipe(write_recipe(tmp_path / "faces.yaml", tree))
    assert recipe.data == FacesConfig(size=16, flip=False, seed=2)
    for bad, message in (
        ({"size": 4}, r"data.size must be an integer in \[8, 256\]"),
        ({"size": 512}, r"data.size must be"),
        ({"seed": -1}, r"data.seed must be"),
        ({"flip": "maybe"}, r"data.flip: expected bool"),
        ({"n": 10}, r"unknown key 'n'"),
    ):
        path = write_recipe(tmp_path / "bad.yaml", {**tree, "data": {"kind": "faces", **bad}})
        with pytest.raises(GenlabError, match=message):
            load_recipe(path)
    with pytest.raises(GenlabError, match="split"):
        build_dataset(FacesConfig(), "heldout")


def test_missing_scikit_image_is_a_genlab_error(monkeypatch):
    load_faces.cache_clear()
    monkeypatch.setitem(sys.modules, "skimage.data", None)  # makes `import skimage.data` raise ImportError
    try:
        with pytest.raises(GenlabError, match="pip install scikit-image"):
            build_dataset(FacesConfig(), "train")
    finally:
        load_faces.cache_clear()


def test_tiny_paired_flow_inpainting_step_on_faces():
    x = build_dataset(FacesConfig(size=16), "train").x[:8]  # (8, 1, 16, 16)
    torch.manual_seed(0)
    unet = UNetConfig(in_channels=1, image_size=16, num_classes=0, channels=8, channel_mults=(1, 2))
    m = PairedFlowMethod(PairedFlowConfig(task="inpaint"), unet)
    assert m.model.cfg.cond_channels == 2  # the masked face and the mask
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        loss, logs = m.loss({"x": x}, "model")
        loss.backward()
        opt.step()
        assert torch.isfinite(loss) and float(loss.detach()) > 0
        assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
    given = m.degrade(x[:2], generator=torch.Generator().manual_seed(0))
    out = m.translate(given["source"], mask=given["mask"], generator=torch.Generator().manual_seed(0)).x
    keep = given["mask"] == 0
    assert out.shape == (2, 1, 16, 16) and torch.equal(out[keep.expand_as(out)], x[:2][keep.expand_as(out)])


def test_faces_inpaint_recipe_trains_and_edits_a_test_face(tmp_path):
    steps = ["--train.steps=2", "--train.batch_size=8", "--train.warmup_steps=0", "--train.log_every=1"]
    steps += ["--train.checkpoint_every=2", "--data.size=16", "--no-progress"]
    run = tmp_path / "run"
    assert main(["train", str(ROOT / "recipes" / "faces-inpaint.yaml"), "--out", str(run), *steps]) == 0
    face = tensor_to_uint8(build_dataset(FacesConfig(size=16), "test").x[:1])[0, :, :, 0]  # (16, 16) uint8
    Image.fromarray(face).save(tmp_path / "face.png")
    mask = np.zeros((16, 16), np.uint8)
    mask[4:10, 5:12] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    args = ["edit", str(run), "--task", "inpaint", "--image", str(tmp_path / "face.png")]
    out = tmp_path / "edits.npz"
    assert main([*args, "--mask", str(tmp_path / "mask.png"), "--n", "2", "--steps", "2", "-o", str(out)]) == 0
    edits = np.load(out)["images"]  # (2, 16, 16, 1) uint8
    assert edits.shape == (2, 16, 16, 1) and (edits[:, mask == 0, 0] == face[mask == 0]).all()  # kept exactly
