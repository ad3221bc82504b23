"""RGB patches cut from real photographs that ship inside installed packages, split by source photograph.

Photos (all real colour photographs; synthetic images such as `colorwheel` and `logo` are left out, and of
the stereo pair only the left view is used, so no near-duplicate view can straddle the split):

    photo                  package        pixels (H×W)   split
    astronaut              scikit-image   512×512        train
    coffee                 scikit-image   400×600        train
    immunohistochemistry   scikit-image   512×512        train
    retina                 scikit-image   1411×1411      train
    hubble_deep_field      scikit-image   872×1000       train
    stereo_motorcycle      scikit-image   500×741        train   (left view)
    china                  scikit-learn   427×640        train
    chelsea                scikit-image   300×451        test
    rocket                 scikit-image   427×640        test
    flower                 scikit-learn   427×640        test

The split is FIXED (the lists above, `TRAIN_PHOTOS` / `TEST_PHOTOS`): test patches come from photographs the
model never saw. `seed` only moves the patch positions.

Scale: every photo is viewed as if resized so its shorter side is `side` pixels (default 256, below the
smallest photo's 300, so nothing is upscaled). A patch is a square of c = round(size · min(H, W) / side)
original pixels at a uniform random position, resized to size×size with `center_crop_resize` (antialiased
bicubic). So a 32-pixel patch spans 1/8 of a photo's shorter side (a face, a cup, a window) rather than a
nearly flat 32-pixel piece of a 1411-pixel retina scan, and every photo is seen at a comparable scale.

Counts: `n` train patches and `n_test` test patches, shared evenly over the split's photos (the first
n mod k photos get one more). Default config (size 32, n 4096, n_test 768): 586 patches from astronaut
and 585 from each of coffee, immunohistochemistry, retina, hubble_deep_field, stereo_motorcycle and china;
256 from each of chelsea, rocket and flower. Positions use numpy's PCG64 seeded with (seed, split, photo
index), so a photo's patches do not depend on the other photos; the patches are then shuffled with
(seed, split). Images are float32 (N, 3, size, size) in [-1, 1]; no labels.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated

import numpy as np

from genlab.constraints import PositiveInt, Range, Seed, require
from genlab.data.base import Dataset
from genlab.data.images import center_crop_resize, uint8_to_tensor
from genlab.errors import GenlabError

TRAIN_PHOTOS = (
    "astronaut",
    "coffee",
    "immunohistochemistry",
    "retina",
    "hubble_deep_field",
    "stereo_motorcycle",
    "china",
)
TEST_PHOTOS = ("chelsea", "rocket", "flower")
SPLITS = {"train": TRAIN_PHOTOS, "test": TEST_PHOTOS}
SKLEARN_PHOTOS = ("china", "flower")  # sklearn.datasets.load_sample_image; the rest are skimage.data functions
SIZES = (32, 64)


@dataclass
class PhotosConfig:
    kind: str = "photos"
    size: PositiveInt = 32  # patch side in pixels: 32 or 64
    n: PositiveInt = 4096  # patches in the 'train' split
    n_test: PositiveInt = 768  # patches in the 'test' split
    side: Annotated[int, Range(32)] = 256  # each photo is viewed at this shorter side before cutting (>= size)
    seed: Seed = 0

    def __post_init__(self) -> None:
        require(self.size in SIZES, "size", f"must be one of {', '.join(map(str, SIZES))}, got {self.size}")
        require(self.side >= self.size, "side", f"must be >= size={self.size}, got {self.side}")


@dataclass(frozen=True)
class Origin:
    """Where a patch comes from: a square of `crop` original pixels at (top, left) of `photo`."""

    photo: str
    top: int
    left: int
    crop: int


@functools.cache
def load_photo(name: str) -> np.ndarray:
    """One bundled photograph as read-only uint8 (H, W, 3)."""
    if name not in TRAIN_PHOTOS + TEST_PHOTOS:
        raise GenlabError(f"unknown photo {name!r}; use one of {', '.join(TRAIN_PHOTOS + TEST_PHOTOS)}")
    if name in SKLEARN_PHOTOS:
        from sklearn.datasets import load_sample_image  # imported here: scikit-learn is slow to import

        image = load_sample_image(f"{name}.jpg")
    else:
        try:
            import skimage.data  # imported here: only this dataset needs scikit-image
        except ImportError:
            raise GenlabError("data.kind photos needs scikit-image; run 'pip install scikit-image'") from None
        image = getattr(skimage.data, name)()
        image = image[0] if name == "stereo_motorcycle" else image  # (left, right, disparity): left view
    image = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    image.flags.writeable = False
    return image


def cut(photo: str, origins: list[Origin], size: int) -> np.ndarray:
    """uint8 (N, size, size, 3): each origin's square, resized with `center_crop_resize`."""
    image = load_photo(photo)
    return np.stack(
        [center_crop_resize(image[o.top : o.top + o.crop, o.left : o.left + o.crop], size) for o in origins]
    )


def patch_origins(photo: str, count: int, *, size: int, side: int, rng: np.random.Generator) -> list[Origin]:
    """`count` uniform random squares of round(size · min(H, W) / side) pixels inside `photo`."""
    h, w = load_photo(photo).shape[:2]
    crop = min(h, w, max(1, round(size * min(h, w) / side)))
    tops = rng.integers(0, h - crop + 1, size=count)
    lefts = rng.integers(0, w - crop + 1, size=count)
    return [Origin(photo, int(t), int(l), crop) for t, l in zip(tops, lefts)]


def photo_origins(cfg: PhotosConfig, split: str) -> list[Origin]:
    """Where each patch of a split comes from, in the split's (shuffled) order: a pure function of the config and
    split that cuts nothing."""
    if split not in SPLITS:
        raise GenlabError(f"photos split must be one of {', '.join(SPLITS)}, got {split!r}")
    photos = SPLITS[split]
    n = cfg.n if split == "train" else cfg.n_test
    split_id = list(SPLITS).index(split)
    origins = []
    for i, photo in enumerate(photos):
        count = n // len(photos) + (i < n % len(photos))
        if count:
            rng = np.random.default_rng([cfg.seed, split_id, i])
            origins += patch_origins(photo, count, size=cfg.size, side=cfg.side, rng=rng)
    order = np.random.default_rng([cfg.seed, split_id]).permutation(n)
    return [origins[j] for j in order]


def photo_patches(cfg: PhotosConfig, split: str) -> tuple[np.ndarray, list[Origin]]:
    """(uint8 (N, size, size, 3), origins) for a split, a pure function of the config and split."""
    origins = photo_origins(cfg, split)
    images = np.empty((len(origins), cfg.size, cfg.size, 3), dtype=np.uint8)
    for photo in dict.fromkeys(o.photo for o in origins):
        idx = [i for i, o in enumerate(origins) if o.photo == photo]
        images[idx] = cut(photo, [origins[i] for i in idx], cfg.size)
    return images, origins


def build_photos(cfg: PhotosConfig, *, split: str = "train") -> Dataset:
    """Photo patches as float32 (N, 3, size, size) in [-1, 1]; split 'train' or 'test' (disjoint photos)."""
    images, _ = photo_patches(cfg, split)
    return Dataset(x=uint8_to_tensor(images), name="photos")
