"""Data builders: shapes, ranges, splits, and one-line GenlabErrors for every bad input."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.data import DATA_CONFIGS, DATASETS, build_dataset
from genlab.data.arrays import ArraysConfig, build_arrays, split_indices
from genlab.data.digits import DigitsConfig, build_digits
from genlab.data.folder import ImageFolderConfig, build_imagefolder
from genlab.data.images import load_image, save_grid, tensor_to_uint8, uint8_to_tensor
from genlab.data.toy2d import SAMPLERS, Toy2DConfig, build_toy2d, sample_toy2d
from genlab.errors import GenlabError


def write_png(path, size=(8, 8), color=(255, 0, 0), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


# ---------------------------------------------------------------- registry


def test_registry_kinds_match_configs():
    assert (
        set(DATA_CONFIGS)
        == set(DATASETS)
        == {
            "toy2d",
            "digits",
            "imagefolder",
            "npz",
            "shapes",
            "photos",
            "faces",
            "unpaired",
            "text",
            "videos",
            "video_folder",
        }
    )
    for kind, cls in DATA_CONFIGS.items():
        assert cls().kind == kind


# ---------------------------------------------------------------- digits


def test_digits_fixed_stratified_split():
    train, test = build_digits(DigitsConfig(), split="train"), build_digits(DigitsConfig(), split="test")
    assert train.x.shape == (1437, 1, 8, 8) and test.x.shape == (360, 1, 8, 8)
    assert train.x.dtype == torch.float32 and train.x.min() == -1.0 and train.x.max() == 1.0
    assert train.num_classes == 10 and train.class_names == [str(i) for i in range(10)]
    assert set(train.labels.tolist()) == set(test.labels.tolist()) == set(range(10))
    assert train.labels.dtype == torch.int64
    from sklearn.datasets import load_digits

    from genlab.data.digits import fixed_split

    labels = load_digits().target
    tr, te = fixed_split(labels, "train"), fixed_split(labels, "test")
    assert len(set(tr) & set(te)) == 0 and len(set(tr) | set(te)) == 1797
    np.testing.assert_array_equal(train.labels.numpy(), labels[tr])


def test_digits_upscaled_bilinear():
    ds = build_dataset(DigitsConfig(size=16), split="test")
    assert ds.x.shape == (360, 1, 16, 16) and ds.is_image
    assert ds.x.min() >= -1.0 and ds.x.max() <= 1.0
    with pytest.raises(GenlabError, match="data.size"):
        build_digits(DigitsConfig(size=0))


# ---------------------------------------------------------------- toy2d


def test_toy2d_deterministic_and_test_split_differs():
    a, b = build_toy2d(Toy2DConfig(n=500)), build_toy2d(Toy2DConfig(n=500))
    test = build_toy2d(Toy2DConfig(n=500), split="test")
    other = build_toy2d(Toy2DConfig(n=500, seed=1))
    assert a.x.shape == (500, 2) and a.x.dtype == torch.float32 and a.labels is None and a.num_classes == 0
    assert torch.equal(a.x, b.x)
    assert not torch.allclose(a.x, test.x) and not torch.allclose(a.x, other.x)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_toy2d_roughly_unit_scale(name):
    x = sample_toy2d(name, 20000, 0)
    assert x.shape == (20000, 2) and torch.isfinite(x).all()
    assert x.mean(0).abs().max() < 0.1
    assert 0.9 < x.pow(2).mean().sqrt() < 1.1


def test_sample_toy2d_generators():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(sample_toy2d("moons", 10, g1), sample_toy2d("moons", 10, g2))
    assert not torch.equal(sample_toy2d("moons", 10, g1), sample_toy2d("moons", 10, g1))  # fresh draws
    rng = np.random.default_rng(0)
    assert sample_toy2d("circles", 7, rng).shape == (7, 2)
    with pytest.raises(GenlabError, match="unknown toy distribution"):
        sample_toy2d("swissroll", 10, 0)


# ---------------------------------------------------------------- imagefolder


def test_imagefolder_class_subfolders(tmp_path):
    for i in range(3):
        write_png(tmp_path / "dog" / f"{i}.png", color=(0, 255, 0))
        write_png(tmp_path / "cat" / f"{i}.jpg", color=(255, 0, 0))
    write_png(tmp_path / ".hidden" / "x.png")  # skipped
    ds = build_imagefolder(ImageFolderConfig(path=str(tmp_path)))
    assert ds.x.shape == (6, 3, 8, 8) and ds.class_names == ["cat", "dog"] and ds.num_classes == 2
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.allclose(ds.x[0, :, 0, 0], torch.tensor([1.0, -1.0, -1.0]), atol=0.05)  # red cat (jpeg)
    assert torch.equal(ds.x[3, :, 0, 0], torch.tensor([-1.0, 1.0, -1.0]))  # green dog
    grey = build_imagefolder(ImageFolderConfig(path=str(tmp_path), channels=1))
    assert grey.x.shape == (6, 1, 8, 8)


def test_imagefolder_metadata_labels_and_text(tmp_path):
    rows = []
    for i in range(4):
        write_png(tmp_path / "img" / f"{i}.png")
        rows.append({"file_name": f"img/{i}.png", "label": ["b", "a"][i % 2], "text": f"picture {i}"})
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ds = build_imagefolder(ImageFolderConfig(path=str(tmp_path)))
    assert ds.class_names == ["a", "b"] and ds.labels.tolist() == [1, 0, 1, 0]
    assert ds.texts == [f"picture {i}" for i in range(4)]

    rows = [{"file_name": f"img/{i}.png", "label": 2 * i} for i in range(4)]
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    ds = build_imagefolder(ImageFolderConfig(path=str(tmp_path)))
    assert ds.labels.tolist() == [0, 2, 4, 6] and ds.num_classes == 7 and ds.texts is None


def test_imagefolder_resize_mixed_sizes(tmp_path):
    write_png(tmp_path / "a.png", size=(32, 16))
    write_png(tmp_path / "b.png", size=(8, 8))
    with pytest.raises(GenlabError, match=r"b\.png is 8x8.*set data\.size=N"):
        build_imagefolder(ImageFolderConfig(path=str(tmp_path)))
    ds = build_imagefolder(ImageFolderConfig(path=str(tmp_path), size=12))
    assert ds.x.shape == (2, 3, 12, 12) and ds.labels is None and ds.name == tmp_path.name
    assert ds.x.min() >= -1.0 and ds.x.max() <= 1.0


def test_imagefolder_seeded_split(tmp_path):
    for i in range(10):
        write_png(tmp_path / f"{i}.png", color=(i * 20, 0, 0))
    cfg = ImageFolderConfig(path=str(tmp_path), test_fraction=0.3, seed=1)
    train, test = build_imagefolder(cfg), build_imagefolder(cfg, split="test")
    assert len(train) == 7 and len(test) == 3
    reds = lambda d: set(d.x[:, 0, 0, 0].tolist())  # noqa: E731
    assert reds(train).isdisjoint(reds(test))
    assert torch.equal(test.x, build_imagefolder(cfg, split="test").x)
    with pytest.raises(GenlabError, match="data.test_fraction"):
        build_imagefolder(ImageFolderConfig(path=str(tmp_path)), split="test")


def _junk(root):
    (root / "junk.png").write_bytes(b"not an image at all")


def _truncated(root):
    write_png(root / "cut.png", size=(64, 64), color=(1, 2, 3))
    data = (root / "cut.png").read_bytes()
    (root / "cut.png").write_bytes(data[: len(data) // 2])


def _metadata(text):
    def setup(root):
        write_png(root / "a.png")
        (root / "metadata.jsonl").write_text(text)

    return setup


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        (lambda root: None, "no images found"),
        (_junk, r"junk\.png: cannot decode"),
        (_truncated, r"cut\.png: cannot decode"),
        (_metadata('{"file_name": "a.png"}\n{oops\n'), r"metadata\.jsonl: line 2 is not valid JSON"),
        (_metadata('{"file_name": "gone.png"}\n'), r"metadata\.jsonl: line 1 names 'gone\.png'"),
        (_metadata('{"file_name": "a.png", "label": 1}\n{"file_name": "a.png"}'), "line 2 has no 'label'"),
    ],
)
def test_imagefolder_bad_inputs(tmp_path, setup, match):
    root = tmp_path / "data"
    root.mkdir()
    setup(root)
    with pytest.raises(GenlabError, match=match) as err:
        build_imagefolder(ImageFolderConfig(path=str(root)))
    assert str(root) in str(err.value) and "\n" not in str(err.value)


def test_imagefolder_missing_folder(tmp_path):
    with pytest.raises(GenlabError, match=r"nowhere: image folder not found"):
        build_imagefolder(ImageFolderConfig(path=str(tmp_path / "nowhere")))
    with pytest.raises(GenlabError, match="data.path is empty"):
        build_imagefolder(ImageFolderConfig())


@pytest.mark.parametrize("side", [12, 40])  # > MAX pixels warns in Pillow, > 2*MAX raises: both are errors here
def test_decompression_bomb_rejected(tmp_path, monkeypatch, side):
    write_png(tmp_path / "big.png", size=(side, side))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(GenlabError, match=r"big\.png: .*decompression-bomb"):
        build_imagefolder(ImageFolderConfig(path=str(tmp_path)))


# ---------------------------------------------------------------- npz


def test_npz_images_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 5, 4, 3), dtype=np.uint8)
    prompts = np.array([f"a photo {i}" for i in range(6)])
    np.savez(tmp_path / "d.npz", images=images, labels=np.array([0, 1, 2, 0, 1, 4]), prompts=prompts)
    ds = build_arrays(ArraysConfig(path=str(tmp_path / "d.npz")))
    assert ds.x.shape == (6, 3, 5, 4) and ds.num_classes == 5 and ds.class_names == ["0", "1", "2", "3", "4"]
    np.testing.assert_array_equal(tensor_to_uint8(ds.x), images)
    assert ds.texts == list(prompts) and ds.labels.tolist() == [0, 1, 2, 0, 1, 4] and ds.name == "d"

    np.savez(tmp_path / "g.npz", images=images[..., 0])  # (N, H, W) grey
    cfg = ArraysConfig(path=str(tmp_path / "g.npz"), test_fraction=0.5)
    train, test = build_arrays(cfg), build_arrays(cfg, split="test")
    assert train.x.shape == (3, 1, 5, 4) and test.x.shape == (3, 1, 5, 4) and train.labels is None


def test_npz_vectors_round_trip(tmp_path):
    x = np.random.default_rng(0).standard_normal((20, 3)).astype(np.float32)
    np.savez(tmp_path / "v.npz", x=x, labels=np.arange(20) % 2, class_names=np.array(["even", "odd"]))
    ds = build_arrays(ArraysConfig(path=str(tmp_path / "v.npz")))
    assert torch.equal(ds.x, torch.from_numpy(x)) and ds.class_names == ["even", "odd"] and ds.num_classes == 2
    assert not ds.is_image


class _Exploit:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_pickle_and_pt_rejected_without_unpickling(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "evil.npz").write_bytes(pickle.dumps({"images": _Exploit(str(marker))}))
    with pytest.raises(GenlabError, match=r"evil\.npz is not an \.npz archive"):
        build_arrays(ArraysConfig(path=str(tmp_path / "evil.npz")))
    torch.save({"x": torch.zeros(3, 2)}, tmp_path / "model.pt")
    with pytest.raises(GenlabError, match=r"model\.pt is not an \.npz archive"):
        build_arrays(ArraysConfig(path=str(tmp_path / "model.pt")))
    assert not marker.exists()


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"images": np.zeros((2, 4, 4, 3), np.float32)}, "'images' must be uint8"),
        ({"images": np.zeros((2, 4, 4, 2), np.uint8)}, "C = 1 or 3"),
        ({"x": np.zeros((2, 3), np.int64)}, "'x' must be float32"),
        ({"x": np.zeros((2, 3), np.float32), "labels": np.zeros(3, np.int64)}, "'labels' has 3 entries"),
        ({"x": np.zeros((2, 3), np.float32), "labels": np.zeros(2, np.float32)}, "'labels' must be integers"),
        (
            {"x": np.zeros((2, 3), np.float32), "labels": np.array([{"a": 1}, 2], dtype=object)},
            "Python objects",
        ),
        ({"y": np.zeros((2, 3), np.float32)}, "exactly one of 'images'"),
    ],
)
def test_npz_bad_contents(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(GenlabError, match=match) as err:
        build_arrays(ArraysConfig(path=str(path)))
    assert "bad.npz" in str(err.value) and "\n" not in str(err.value)


def test_npz_missing_file(tmp_path):
    with pytest.raises(GenlabError, match=r"nope\.npz: file not found"):
        build_arrays(ArraysConfig(path=str(tmp_path / "nope.npz")))


def test_split_indices_partition():
    train = split_indices(50, split="train", test_fraction=0.2, seed=3, source="s")
    test = split_indices(50, split="test", test_fraction=0.2, seed=3, source="s")
    assert len(test) == 10 and sorted(np.concatenate([train, test]).tolist()) == list(range(50))
    with pytest.raises(GenlabError, match="test_fraction"):
        split_indices(5, split="train", test_fraction=1.5, seed=0, source="s")


# ---------------------------------------------------------------- images


def test_image_conversions_round_trip(tmp_path):
    u = np.random.default_rng(0).integers(0, 256, (2, 3, 5, 3), dtype=np.uint8)
    x = uint8_to_tensor(u)
    assert x.shape == (2, 3, 3, 5) and x.min() >= -1 and x.max() <= 1
    np.testing.assert_array_equal(tensor_to_uint8(x), u)
    write_png(tmp_path / "g.png", mode="L", color=200)
    assert load_image(tmp_path / "g.png", channels=1).shape == (8, 8, 1)
    assert load_image(tmp_path / "g.png", channels=3).shape == (8, 8, 3)


def test_save_grid_pixel_size(tmp_path):
    images = torch.rand(10, 3, 8, 8) * 2 - 1
    save_grid(images, tmp_path / "auto.png", nrow=4)  # 8x8 tiles upscaled x8, 3 rows of 4
    with Image.open(tmp_path / "auto.png") as im:
        assert im.size == (4 * 65 + 1, 3 * 65 + 1) and im.mode == "RGB"
    save_grid(images[:, :1], tmp_path / "grey.png", nrow=5, scale=1, padding=2)
    with Image.open(tmp_path / "grey.png") as im:
        assert im.size == (5 * 10 + 2, 2 * 10 + 2) and im.mode == "L"
    save_grid(images, tmp_path / "sub" / "lab.png", nrow=4, row_labels=["one", "two", "three"])
    with Image.open(tmp_path / "sub" / "lab.png") as im:
        assert im.size[0] > 4 * 65 + 1 and im.size[1] == 3 * 65 + 1
