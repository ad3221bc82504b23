"""Grey photographs of faces: the 100 face crops of scikit-image's `lfw_subset`, split by image.

Source: `skimage.data.lfw_subset()` (bundled with scikit-image, no download) is (200, 25, 25) float64 in [0, 1]
(its docstring says uint8; 0.26 returns float64): images 0–99 are faces picked at random from Labeled Faces in
the Wild (Huang et al.), 100–199 non-faces cut from the same photos' backgrounds. Only the faces are used. Each
is a tight grey crop (eyes to chin) resized by scikit-image to 25×25.

The split is FIXED, by image: faces 0–79 are 'train', 80–99 'test' (`TRAIN_FACES`, `TEST_FACES`). The subset
ships no names, so a person can appear on both sides: LFW is dominated by a few much-photographed people,
and by eye some faces look like the same person (0, 36, 73 and 90, say). The test split therefore measures new
photographs, not necessarily new people. No two faces are near-copies: the smallest RMS difference between two
faces, either one mirrored or not, is 0.12 on the [0, 1] scale (the median pair: 0.25).

Pipeline: x ∈ [0, 1] → uint8 round(255·x) → `center_crop_resize` to size×size (antialiased bicubic; 25 → 32
upscales) → float32 (N, 1, size, size) in [-1, 1] (`uint8_to_tensor`); no labels. With `flip` (the default) the
train split also holds every train face mirrored left–right, a fixed doubling to 160 images (faces are near
symmetric and the crops are centred, so a mirror image is another plausible face); 'test' is never mirrored
(20 images). Each split is then shuffled with numpy's PCG64 seeded by (seed, split): `seed` moves nothing else.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated

import numpy as np

from genlab.constraints import Range, Seed
from genlab.data.base import Dataset
from genlab.data.images import center_crop_resize, uint8_to_tensor
from genlab.errors import GenlabError

NUM_FACES = 100  # lfw_subset()[:100] are faces, [100:] non-faces
TRAIN_FACES = range(0, 80)
TEST_FACES = range(80, NUM_FACES)
SPLITS = {"train": TRAIN_FACES, "test": TEST_FACES}
NATIVE = 25  # lfw_subset's side in pixels


@dataclass
class FacesConfig:
    kind: str = "faces"
    size: Annotated[int, Range(8, 256)] = 32  # image side in pixels (25 is native; others are resized)
    flip: bool = True  # train split: add every face mirrored left-right (80 -> 160 images); test is never mirrored
    seed: Seed = 0  # shuffles the order of each split


@functools.cache
def load_faces() -> np.ndarray:
    """The 100 faces of `skimage.data.lfw_subset()` as read-only uint8 (100, 25, 25)."""
    try:
        import skimage.data  # imported here: only this dataset and photos need scikit-image
    except ImportError:
        raise GenlabError("data.kind faces needs scikit-image; run 'pip install scikit-image'") from None
    try:
        images = np.asarray(skimage.data.lfw_subset(), dtype=np.float64)
    except (ImportError, OSError) as e:  # the file is missing from the install and cannot be fetched
        raise GenlabError(f"cannot load scikit-image's lfw_subset ({e}); reinstall scikit-image") from None
    if images.shape != (2 * NUM_FACES, NATIVE, NATIVE):
        raise GenlabError(f"lfw_subset has shape {images.shape}, expected (200, 25, 25); reinstall scikit-image")
    faces = np.round(np.clip(images[:NUM_FACES], 0.0, 1.0) * 255.0).astype(np.uint8)  # (100, 25, 25)
    faces.flags.writeable = False
    return faces


def face_indices(cfg: FacesConfig, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(indices into `load_faces()`, mirrored flags), both (N,), in the split's shuffled order."""
    if split not in SPLITS:
        raise GenlabError(f"faces split must be one of {', '.join(SPLITS)}, got {split!r}")
    index = np.asarray(SPLITS[split], dtype=np.int64)
    mirrored = np.zeros(len(index), dtype=bool)
    if split == "train" and cfg.flip:
        index = np.concatenate([index, index])
        mirrored = np.concatenate([mirrored, ~mirrored])
    order = np.random.default_rng([cfg.seed, list(SPLITS).index(split)]).permutation(len(index))
    return index[order], mirrored[order]


def face_images(cfg: FacesConfig, split: str) -> np.ndarray:
    """uint8 (N, size, size, 1) for a split, a pure function of the config and split."""
    faces = load_faces()
    index, mirrored = face_indices(cfg, split)
    out = []
    for i, flip in zip(index, mirrored):
        face = faces[i, :, ::-1] if flip else faces[i]  # (25, 25)
        out.append(center_crop_resize(np.ascontiguousarray(face)[:, :, None], cfg.size))
    return np.stack(out)  # (N, size, size, 1)


def build_faces(cfg: FacesConfig, *, split: str = "train") -> Dataset:
    """Faces as float32 (N, 1, size, size) in [-1, 1]; split 'train' (80 faces, 160 with flips) or 'test' (20)."""
    return Dataset(x=uint8_to_tensor(face_images(cfg, split)), name="faces")
