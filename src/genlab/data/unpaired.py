"""Two unpaired image domains cut from bundled real photographs, split by source photograph (CycleGAN's data).

Domain A (`x`): black-and-white photographs shipped with scikit-image, stored as RGB with R = G = B.
Domain B (`y`): the colour photographs of `genlab.data.photos`, with its split and patches (see there).

    domain A photo   pixels (H×W)   split        domain B photos (genlab.data.photos)
    brick            512×512        train        astronaut, coffee, immunohistochemistry, retina,
    coins            303×384        train        hubble_deep_field, stereo_motorcycle, china  (train)
    grass            512×512        train
    gravel           512×512        train
    moon             512×512        train
    camera           512×512        test         chelsea, rocket, flower  (test)
    clock            300×400        test

Why these two domains: among the bundled images, colour against black-and-white is the one attribute that sets
apart two groups of real photographs with several photographs in each (so the split by photograph holds for both
domains) and that survives being cut into 32-pixel patches; other attributes (cat vs person, sky vs tissue) belong
to a single photograph each. The translation is visible (colour appears or goes) and learnable at 32×32: A→B is
unpaired colorization, an ill-posed task the adversarial term has to solve, B→A is desaturation with a known
answer (the luminance), and the grey versions of held-out colour patches give A→B a paired check that CycleGAN
never trains on (benchmarks/cyclegan.py). Scanned text (`page`, `text`), microscopy (`cell`) and synthetic images
are left out of A. The test photographs are a scene (the cameraman: a person, grass, sky, buildings) and an
object (a wall clock), neither seen in training.

Patches follow `genlab.data.photos`: each photo viewed at shorter side `side` (256; nothing here is upscaled), a
square of round(size · min(H, W) / side) original pixels at a uniform random position, antialiased-bicubic resized
to size×size. Counts: `n` train and `n_test` test patches PER DOMAIN (so `y[i]` exists for every `x[i]`; the rows
are shuffled independently and row i of `y` is not a pair of row i of `x`), shared evenly over each domain's split
photos (the first n mod k get one more). Default (size 32, n 4096, n_test 768): A train 820 from brick and 819
from each other photo, A test 384 per photo; B as in `genlab.data.photos`. Images are float32 (N, 3, S, S) in
[-1, 1]; no labels.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated

import numpy as np

from genlab.constraints import PositiveInt, Range, Seed, require
from genlab.data.base import Dataset
from genlab.data.images import center_crop_resize, uint8_to_tensor
from genlab.data.photos import SIZES, PhotosConfig, photo_patches
from genlab.errors import GenlabError

GREY_TRAIN = ("brick", "coins", "grass", "gravel", "moon")
GREY_TEST = ("camera", "clock")
GREY_SPLITS = {"train": GREY_TRAIN, "test": GREY_TEST}


@dataclass
class UnpairedConfig:
    kind: str = "unpaired"
    size: PositiveInt = 32  # patch side in pixels: 32 or 64
    n: PositiveInt = 4096  # patches per domain in the 'train' split
    n_test: PositiveInt = 768  # patches per domain in the 'test' split
    side: Annotated[int, Range(32)] = 256  # each photo is viewed at this shorter side before cutting (>= size)
    seed: Seed = 0

    def __post_init__(self) -> None:
        require(self.size in SIZES, "size", f"must be one of {', '.join(map(str, SIZES))}, got {self.size}")
        require(self.side >= self.size, "side", f"must be >= size={self.size}, got {self.side}")


@functools.cache
def load_grey_photo(name: str) -> np.ndarray:
    """One bundled black-and-white photograph as read-only uint8 (H, W, 3) with R = G = B."""
    if name not in GREY_TRAIN + GREY_TEST:
        raise GenlabError(f"unknown black-and-white photo {name!r}; use one of {', '.join(GREY_TRAIN + GREY_TEST)}")
    try:
        import skimage.data  # imported here: only the photo datasets need scikit-image
    except ImportError:
        raise GenlabError("data.kind unpaired needs scikit-image; run 'pip install scikit-image'") from None
    image = np.asarray(getattr(skimage.data, name)(), dtype=np.uint8)  # (H, W)
    image = np.ascontiguousarray(np.repeat(image[..., None], 3, axis=2))  # (H, W, 3)
    image.flags.writeable = False
    return image


def random_squares(image: np.ndarray, count: int, *, size: int, side: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 (count, size, size, 3): squares of round(size · min(H, W) / side) pixels at uniform random positions of
    `image`, each resized with `center_crop_resize` (the patches of genlab.data.photos)."""
    h, w = image.shape[:2]
    crop = min(h, w, max(1, round(size * min(h, w) / side)))
    tops = rng.integers(0, h - crop + 1, size=count)
    lefts = rng.integers(0, w - crop + 1, size=count)
    return np.stack([center_crop_resize(image[t : t + crop, l : l + crop], size) for t, l in zip(tops, lefts)])


def grey_patches(cfg: UnpairedConfig, split: str) -> np.ndarray:
    """uint8 (N, size, size, 3) patches of domain A's `split`, a pure function of the config and split."""
    if split not in GREY_SPLITS:
        raise GenlabError(f"unpaired split must be one of {', '.join(GREY_SPLITS)}, got {split!r}")
    photos = GREY_SPLITS[split]
    n = cfg.n if split == "train" else cfg.n_test
    split_id = list(GREY_SPLITS).index(split)
    parts = []
    for i, photo in enumerate(photos):
        count = n // len(photos) + (i < n % len(photos))
        if count:
            rng = np.random.default_rng([cfg.seed, split_id, i, 1])  # 1: domain A (photos uses 3 entries)
            parts.append(random_squares(load_grey_photo(photo), count, size=cfg.size, side=cfg.side, rng=rng))
    order = np.random.default_rng([cfg.seed, split_id, 1]).permutation(n)
    return np.concatenate(parts)[order]


def build_unpaired(cfg: UnpairedConfig, *, split: str = "train") -> Dataset:
    """Domain A (black-and-white) in `x`, domain B (colour) in `y`, each float32 (N, 3, size, size) in [-1, 1]."""
    colour, _ = photo_patches(
        PhotosConfig(size=cfg.size, n=cfg.n, n_test=cfg.n_test, side=cfg.side, seed=cfg.seed), split
    )
    return Dataset(x=uint8_to_tensor(grey_patches(cfg, split)), y=uint8_to_tensor(colour), name="unpaired")
