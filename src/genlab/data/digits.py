"""scikit-learn's bundled handwritten digits (UCI optdigits test set): 1,797 grey 8×8 images, labels 0..9.

Pixel values v ∈ {0, …, 16} map to x = v / 8 − 1 ∈ [−1, 1]. `size != 8` resizes with bilinear
interpolation (align_corners=False; antialiased when shrinking), which stays inside [−1, 1].
The split is FIXED: `train_test_split(arange(1797), test_size=360, stratify=labels, random_state=0)`
gives 1,437 train / 360 test images, every class in both, no image in both.

`captions: true` adds a caption per image for CLIP ("a handwritten seven", "the digit seven", ...): the
template of image i is drawn from a generator seeded by the split, so the captions are fixed too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F

from genlab.constraints import Range
from genlab.data.base import Dataset
from genlab.errors import GenlabError

TEST_SIZE = 360
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CAPTION_TEMPLATES = (
    "a handwritten {}",
    "a picture of a handwritten {}",
    "the digit {}",
    "a handwritten {} on a black background",
)


@dataclass
class DigitsConfig:
    kind: str = "digits"
    size: Annotated[int, Range(2)] = 8  # pixels per side
    captions: bool = False  # True: a caption per image ("a handwritten seven"), for method.kind clip


def digit_caption(label: int, template: int = 0) -> str:
    """The caption of digit `label` in template number `template` (modulo the number of templates)."""
    return CAPTION_TEMPLATES[template % len(CAPTION_TEMPLATES)].format(NUMBER_WORDS[label])


def digits_vocabulary() -> list[str]:
    """Every word of the digit captions, sorted: the `model.vocab` of a CLIP on captioned digits."""
    from genlab.models.clip import words

    return sorted({w for t in CAPTION_TEMPLATES for w in words(t.format(""))} | set(NUMBER_WORDS))


def fixed_split(labels: np.ndarray, split: str) -> np.ndarray:
    """Sorted indices into `load_digits()` of the fixed stratified train or test split."""
    from sklearn.model_selection import train_test_split  # imported here: scikit-learn takes ~1 s to import

    train, test = train_test_split(np.arange(len(labels)), test_size=TEST_SIZE, stratify=labels, random_state=0)
    return np.sort(train if split == "train" else test)


def build_digits(cfg: DigitsConfig, *, split: str = "train") -> Dataset:
    """Digits as (N, 1, size, size) in [-1, 1] with labels 0..9 (N = 1437 train, 360 test)."""
    if split not in ("train", "test"):
        raise GenlabError(f"split must be 'train' or 'test', got {split!r}")
    if cfg.size < 2:
        raise GenlabError(f"data.size must be >= 2 pixels for digits (8 is native), got {cfg.size}")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    labels = bunch.target.astype(np.int64)
    idx = fixed_split(labels, split)
    x = torch.from_numpy(bunch.images[idx].astype(np.float32)).unsqueeze(1) / 8.0 - 1.0  # (N, 1, 8, 8)
    if cfg.size != 8:
        x = F.interpolate(x, size=(cfg.size, cfg.size), mode="bilinear", align_corners=False, antialias=cfg.size < 8)
        x = x.clamp_(-1.0, 1.0)  # (N, 1, size, size)
    texts = None
    if cfg.captions:
        templates = np.random.default_rng([0, 0 if split == "train" else 1]).integers(
            0, len(CAPTION_TEMPLATES), len(idx)
        )
        texts = [digit_caption(int(y), int(t)) for y, t in zip(labels[idx], templates)]
    return Dataset(
        x=x.contiguous(),
        labels=torch.from_numpy(labels[idx]),
        num_classes=10,
        class_names=[str(i) for i in range(10)],
        texts=texts,
        name="digits",
    )
