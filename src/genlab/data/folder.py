"""A folder of images in the Hugging Face `imagefolder` layout, decoded into memory.

Either `root/metadata.jsonl` (one JSON object per line: `file_name` relative to root, optional `label`
int or str, optional `text` caption; every line or none has each key), or class sub-folders
`root/<class>/**/*.png` (label ids follow the sorted folder names), or images directly in root
(unlabelled). Integer labels give num_classes = max + 1; string labels are numbered in sorted order.
With `size` set, each image is centre-cropped to a square and resized to size×size (antialiased
bicubic); without it all images must share one size. Hidden files and folders are skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch

from genlab.constraints import Fraction, NonEmpty, OptPositiveInt, Seed
from genlab.data.arrays import label_names, split_indices
from genlab.data.base import Dataset
from genlab.data.images import IMAGE_SUFFIXES, center_crop_resize, load_image, uint8_to_tensor
from genlab.errors import GenlabError

METADATA = "metadata.jsonl"


@dataclass
class ImageFolderConfig:
    kind: str = "imagefolder"
    path: Annotated[str, NonEmpty()] = ""
    size: OptPositiveInt = None
    channels: Literal[1, 3] = 3
    test_fraction: Fraction = 0.0
    seed: Seed = 0


@dataclass
class _Listing:
    files: list[Path]
    labels: list | None  # raw labels (int or str), one per file
    texts: list[str] | None
    source: Path  # what errors about labels name: metadata.jsonl or the folder


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _scan_folders(root: Path) -> _Listing:
    files = sorted(
        (p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not _hidden(p, root)),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    if not files:
        raise GenlabError(f"{root}: no images found ({', '.join(IMAGE_SUFFIXES)}); add images or class sub-folders")
    top = [p for p in files if p.parent == root]
    if top and len(top) < len(files):
        raise GenlabError(
            f"{root}: images both at the top level ({top[0].name}) and in sub-folders; "
            "put every image in a class sub-folder, or none"
        )
    labels = None if top else [p.relative_to(root).parts[0] for p in files]
    return _Listing(files, labels, None, root)


def _parse_line(line: str, lineno: int, meta: Path, root: Path, *, folders: bool = False) -> dict:
    """One metadata.jsonl line; `folders` also lets file_name name a folder (a video's frames)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        raise GenlabError(f"{meta}: line {lineno} is not valid JSON; fix or delete it") from None
    if not isinstance(row, dict) or not isinstance(row.get("file_name"), str):
        raise GenlabError(f"{meta}: line {lineno} needs an object with a 'file_name' string")
    file = root / row["file_name"]
    if not file.resolve().is_relative_to(root.resolve()):
        raise GenlabError(f"{meta}: line {lineno}: file_name {row['file_name']!r} points outside {root}")
    if not (file.is_file() or (folders and file.is_dir())):
        kind = "a file or folder" if folders else "a file"
        raise GenlabError(f"{meta}: line {lineno} names {row['file_name']!r}, which is not {kind} in {root}")
    label, text = row.get("label"), row.get("text")
    if label is not None and (isinstance(label, bool) or not isinstance(label, (int, str))):
        raise GenlabError(f"{meta}: line {lineno}: 'label' must be an int or a string, got {label!r}")
    if text is not None and not isinstance(text, str):
        raise GenlabError(f"{meta}: line {lineno}: 'text' must be a string, got {text!r}")
    return {"file": file, "label": label, "text": text, "line": lineno}


def _all_or_none(rows: list[dict], key: str, meta: Path) -> list | None:
    missing = [r["line"] for r in rows if r[key] is None]
    if len(missing) == len(rows):
        return None
    if missing:
        raise GenlabError(f"{meta}: line {missing[0]} has no {key!r} but others do; give every line a {key!r} or none")
    return [r[key] for r in rows]


def _read_metadata(root: Path) -> _Listing:
    meta = root / METADATA
    try:
        lines = meta.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise GenlabError(f"{meta}: is not UTF-8 text; re-save it as UTF-8 JSON lines") from None
    rows = [_parse_line(line, i, meta, root) for i, line in enumerate(lines, 1) if line.strip()]
    if not rows:
        raise GenlabError(f"{meta}: no entries; add one JSON line per image with a 'file_name'")
    files = [r["file"] for r in rows]
    return _Listing(files, _all_or_none(rows, "label", meta), _all_or_none(rows, "text", meta), meta)


def _encode_labels(raw: list, source: Path) -> tuple[np.ndarray, list[str]]:
    """Label ids and class names: ints are kept (names '0'..), strings are numbered in sorted order."""
    if all(isinstance(v, int) for v in raw):
        labels = np.asarray(raw, dtype=np.int64)
        if labels.min() < 0:
            raise GenlabError(f"{source}: labels must be >= 0, found {labels.min()}; map classes to 0..K-1")
        return labels, label_names(labels, None, str(source))
    if not all(isinstance(v, str) for v in raw):
        raise GenlabError(f"{source}: labels mix ints and strings; use one type for every 'label'")
    names = sorted(set(raw))
    ids = {name: i for i, name in enumerate(names)}
    return np.asarray([ids[v] for v in raw], dtype=np.int64), names


def _decode(files: list[Path], root: Path, *, size: int | None, channels: int) -> np.ndarray:
    """uint8 (N, H, W, C) from image files; without `size` every image must share one size."""
    images = []
    for file in files:
        image = load_image(file, channels=channels)
        if size is not None:
            image = center_crop_resize(image, size)
        elif images and image.shape != images[0].shape:
            (h0, w0), (h, w) = images[0].shape[:2], image.shape[:2]
            raise GenlabError(
                f"{root}: images differ in size ({files[0].relative_to(root)} is {w0}x{h0}, "
                f"{file.relative_to(root)} is {w}x{h}); set data.size=N to resize (centre crop + resize)"
            )
        images.append(image)
    return np.stack(images)


def build_imagefolder(cfg: ImageFolderConfig, *, split: str = "train") -> Dataset:
    """Images (N, C, H, W) in [-1, 1] from `cfg.path`, with labels and captions when the folder has them."""
    if not cfg.path:
        raise GenlabError("data.path is empty; set data.path=/path/to/image/folder")
    root = Path(cfg.path).expanduser()
    if not root.is_dir():
        raise GenlabError(f"{root}: image folder not found; set data.path to an existing folder")
    if cfg.size is not None and cfg.size < 1:
        raise GenlabError(f"data.size must be a positive number of pixels or null, got {cfg.size}")
    if cfg.channels not in (1, 3):
        raise GenlabError(f"data.channels must be 1 (grey) or 3 (RGB), got {cfg.channels}")
    listing = _read_metadata(root) if (root / METADATA).is_file() else _scan_folders(root)
    idx = split_indices(
        len(listing.files), split=split, test_fraction=cfg.test_fraction, seed=cfg.seed, source=str(root)
    )
    images = _decode([listing.files[i] for i in idx], root, size=cfg.size, channels=cfg.channels)
    data = Dataset(x=uint8_to_tensor(images), name=root.name)
    if listing.labels is not None:
        labels, names = _encode_labels(listing.labels, listing.source)
        data.labels, data.num_classes, data.class_names = torch.from_numpy(labels[idx]), len(names), names
    if listing.texts is not None:
        data.texts = [listing.texts[i] for i in idx]
    return data
