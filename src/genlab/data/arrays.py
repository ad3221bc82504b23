"""Datasets stored as one NumPy `.npz` archive (never unpickled: `allow_pickle=False`).

Image data: `images` uint8 (N, H, W, C) with C ∈ {1, 3} (or (N, H, W) for grey), mapped to
x = u / 127.5 − 1 ∈ [−1, 1], shape (N, C, H, W). Vector data: `x` float (N, D), kept as float32.
Optional: `labels` integer (N,) ≥ 0, `class_names` str (K,), and captions `prompts` or `texts` str (N,).
num_classes = len(class_names) if given, else max(labels) + 1. With test_fraction = f > 0, a seeded
permutation holds out round(f·N) items as the test split (`split_indices`, shared with imagefolder).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import torch

from genlab.constraints import Fraction, NonEmpty, Seed
from genlab.data.base import Dataset
from genlab.data.images import uint8_to_tensor
from genlab.errors import GenlabError


@dataclass
class ArraysConfig:
    kind: str = "npz"
    path: Annotated[str, NonEmpty()] = ""
    test_fraction: Fraction = 0.0
    seed: Seed = 0


def split_indices(n: int, *, split: str, test_fraction: float, seed: int, source: str) -> np.ndarray:
    """Sorted indices of the train or test part of n items; `source` names the data in errors."""
    if split not in ("train", "test"):
        raise GenlabError(f"{source}: split must be 'train' or 'test', got {split!r}")
    if not 0.0 <= test_fraction < 1.0:
        raise GenlabError(f"{source}: data.test_fraction must be in [0, 1), got {test_fraction}")
    if test_fraction == 0.0:
        if split == "test":
            raise GenlabError(f"{source}: there is no test split; set data.test_fraction (e.g. 0.1) to hold one out")
        return np.arange(n)
    n_test = max(1, round(n * test_fraction))
    if n_test >= n:
        raise GenlabError(f"{source}: test_fraction={test_fraction} leaves no training items of {n}; lower it")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:n_test] if split == "test" else perm[n_test:])


def label_names(labels: np.ndarray, names: list[str] | None, source: str) -> list[str]:
    """Class names for integer labels: the given names (checked to cover every label) or '0'..str(max)."""
    top = int(labels.max()) if labels.size else -1
    if names is None:
        return [str(i) for i in range(top + 1)]
    if top >= len(names):
        raise GenlabError(f"{source}: label {top} has no class name ({len(names)} given); add names or fix labels")
    return list(names)


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an .npz archive, refusing pickles, .pt files and object arrays."""
    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"{path}: file not found; set data.path to an existing .npz file")
    if not zipfile.is_zipfile(path):
        raise GenlabError(f"{path} is not an .npz archive; save the data with numpy.savez (pickles are not read)")
    with zipfile.ZipFile(path) as zf:
        odd = [m for m in zf.namelist() if not m.endswith(".npy")]
    if odd:
        raise GenlabError(
            f"{path} is not an .npz archive (it holds {odd[0]!r}, e.g. a torch .pt file); use numpy.savez"
        )
    out = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            for key in npz.files:
                out[key] = _member(npz, key, path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise GenlabError(f"{path}: damaged .npz archive ({type(e).__name__}); re-save it with numpy.savez") from None
    return out


def _member(npz, key: str, path: Path) -> np.ndarray:
    try:
        return npz[key]
    except ValueError as e:
        if "pickle" not in str(e):
            raise
        raise GenlabError(
            f"{path}: array {key!r} holds Python objects; store numbers or fixed-width strings "
            "(np.array(list_of_str)) instead"
        ) from None


def _images(a: np.ndarray, path: Path) -> np.ndarray:
    if a.ndim == 3:
        a = a[..., None]  # (N, H, W) grey -> (N, H, W, 1)
    if a.dtype != np.uint8 or a.ndim != 4 or a.shape[3] not in (1, 3):
        raise GenlabError(
            f"{path}: 'images' must be uint8 (N, H, W, C) with C = 1 or 3, got {a.dtype} {a.shape}; "
            "convert floats with (x * 255).round().astype(np.uint8)"
        )
    return a


def _vectors(a: np.ndarray, path: Path) -> np.ndarray:
    if a.dtype.kind != "f" or a.ndim != 2:
        raise GenlabError(f"{path}: 'x' must be float32 vectors (N, D), got {a.dtype} {a.shape}")
    if not np.isfinite(a).all():
        raise GenlabError(f"{path}: 'x' contains NaN or inf values; clean the data")
    return a.astype(np.float32)


def _labels(a: np.ndarray, n: int, path: Path) -> np.ndarray:
    if a.dtype.kind not in "iu" or a.ndim != 1:
        raise GenlabError(f"{path}: 'labels' must be integers of shape (N,), got {a.dtype} {a.shape}")
    if len(a) != n:
        raise GenlabError(f"{path}: 'labels' has {len(a)} entries but the data has {n}; give one label per item")
    if a.size and a.min() < 0:
        raise GenlabError(f"{path}: 'labels' must be >= 0, found {a.min()}; map classes to 0..K-1")
    return a.astype(np.int64)


def _strings(a: np.ndarray, key: str, n: int | None, path: Path) -> list[str]:
    if a.dtype.kind not in "US" or a.ndim != 1 or (n is not None and len(a) != n):
        want = f"({n},)" if n is not None else "(K,)"
        raise GenlabError(f"{path}: {key!r} must be a string array of shape {want}, got {a.dtype} {a.shape}")
    return [s.decode("utf-8", "replace") if isinstance(s, bytes) else str(s) for s in a.tolist()]


def _data(arrays: dict[str, np.ndarray], path: Path) -> np.ndarray:
    if ("images" in arrays) == ("x" in arrays):
        raise GenlabError(
            f"{path}: needs exactly one of 'images' (uint8 N,H,W,C) or 'x' (float N,D); has {sorted(arrays)}"
        )
    data = _images(arrays["images"], path) if "images" in arrays else _vectors(arrays["x"], path)
    if len(data) == 0:
        raise GenlabError(f"{path}: holds no items; add data")
    return data


def build_arrays(cfg: ArraysConfig, *, split: str = "train") -> Dataset:
    """Images (N, C, H, W) in [-1, 1] or vectors (N, D) from `cfg.path`, with optional labels/captions."""
    if not cfg.path:
        raise GenlabError("data.path is empty; set data.path=/path/to/data.npz")
    path = Path(cfg.path).expanduser()
    arrays = read_npz(path)
    data = _data(arrays, path)
    n = len(data)
    if "prompts" in arrays and "texts" in arrays:
        raise GenlabError(f"{path}: has both 'prompts' and 'texts'; keep one caption array")
    caption_key = "prompts" if "prompts" in arrays else "texts"
    texts = _strings(arrays[caption_key], caption_key, n, path) if caption_key in arrays else None
    labels = _labels(arrays["labels"], n, path) if "labels" in arrays else None
    names = _strings(arrays["class_names"], "class_names", None, path) if "class_names" in arrays else None
    idx = split_indices(n, split=split, test_fraction=cfg.test_fraction, seed=cfg.seed, source=str(path))
    x = uint8_to_tensor(data[idx]) if data.ndim == 4 else torch.from_numpy(data[idx])
    if labels is None:
        return Dataset(x=x, texts=None if texts is None else [texts[i] for i in idx], name=path.stem)
    class_names = label_names(labels, names, str(path))
    return Dataset(
        x=x,
        labels=torch.from_numpy(labels[idx]),
        num_classes=len(class_names),
        class_names=class_names,
        texts=None if texts is None else [texts[i] for i in idx],
        name=path.stem,
    )
