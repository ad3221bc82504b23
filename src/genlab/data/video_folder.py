"""A folder of the user's own videos (`data.kind: video_folder`), decoded into memory as (N, T, 3, S, S) in [-1, 1].

A video is either an animated image file in the folder (.gif, .webp, .apng, .png; decoded by Pillow) or a
sub-folder of frames (.png / .jpg / .jpeg / .bmp / .webp, in natural name order: frame2 before frame10). Video
container files (.mp4, .mov, .avi, .mkv, .webm) are decoded by PyAV when `av` can be imported; it is not a genlab
dependency (`pip install av`, or convert to GIF / a folder of frames). Captions, as for image folders
(genlab.data.folder): `root/metadata.jsonl` (one JSON object per line with `file_name`, a file or a frame folder
relative to root, and `text`), else a sidecar `NAME.txt` beside each video (root/NAME.gif or root/NAME/ ->
root/NAME.txt); every video has a caption or none does. Each video's frames are centre-cropped to a square and
resized to `size` (antialiased bicubic), and `frames` of them are taken evenly spaced over the clip (indices
round(linspace(0, n − 1, frames))); a video with fewer frames is an error. Hidden files and folders are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
from PIL import Image, UnidentifiedImageError

from genlab.constraints import Fraction, NonEmpty, PositiveInt, Range, Seed
from genlab.data.arrays import split_indices
from genlab.data.base import Dataset
from genlab.data.folder import METADATA, _all_or_none, _parse_line
from genlab.data.images import IMAGE_SUFFIXES, center_crop_resize, load_image, uint8_to_tensor
from genlab.errors import GenlabError

ANIMATION_SUFFIXES = (".gif", ".webp", ".apng", ".png")  # Pillow reads their frames
CONTAINER_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm")  # need PyAV
MAX_FRAMES = 64


@dataclass
class VideoFolderConfig:
    kind: str = "video_folder"
    path: Annotated[str, NonEmpty()] = ""
    size: PositiveInt = 32
    frames: Annotated[int, Range(2, MAX_FRAMES)] = 8
    test_fraction: Fraction = 0.0
    seed: Seed = 0


def _natural(name: str) -> list:
    """Sort key: digit runs compare as numbers ('f2' < 'f10')."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _hidden(path: Path) -> bool:
    return path.name.startswith(".")


def _is_video(path: Path) -> bool:
    if path.is_dir():
        return True
    return path.is_file() and path.suffix.lower() in ANIMATION_SUFFIXES + CONTAINER_SUFFIXES


def _scan(root: Path) -> tuple[list[Path], list[str] | None]:
    """The videos in root (sorted) and their captions (metadata.jsonl, else NAME.txt sidecars, else None)."""
    if (root / METADATA).is_file():
        meta = root / METADATA
        try:
            lines = meta.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise GenlabError(f"{meta}: is not UTF-8 text; re-save it as UTF-8 JSON lines") from None
        rows = [_parse_line(line, i, meta, root, folders=True) for i, line in enumerate(lines, 1) if line.strip()]
        if not rows:
            raise GenlabError(f"{meta}: no entries; add one JSON line per video with a 'file_name' and a 'text'")
        return [r["file"] for r in rows], _all_or_none(rows, "text", meta)
    videos = sorted((p for p in root.iterdir() if not _hidden(p) and _is_video(p)), key=lambda p: _natural(p.name))
    if not videos:
        raise GenlabError(
            f"{root}: no videos found; add animated {'/'.join(ANIMATION_SUFFIXES)} files or one sub-folder of "
            "frames per video"
        )
    sidecars = [p.with_suffix(".txt") if p.is_file() else p.parent / f"{p.name}.txt" for p in videos]
    have = [s.is_file() for s in sidecars]
    if not any(have):
        return videos, None
    if not all(have):
        missing = sidecars[have.index(False)]
        raise GenlabError(f"{root}: {missing.name} is missing but other videos have caption files; add one per video")
    return videos, [s.read_text(encoding="utf-8").strip() for s in sidecars]


def _read_animation(path: Path) -> list[np.ndarray]:
    try:
        with Image.open(path) as im:
            out = []
            for i in range(getattr(im, "n_frames", 1)):
                im.seek(i)
                out.append(np.asarray(im.convert("RGB")))
            return out
    except (OSError, UnidentifiedImageError, ValueError, EOFError) as e:
        raise GenlabError(f"{path}: unreadable video ({type(e).__name__}: {e}); re-export it or remove it") from None


def _read_container(path: Path) -> list[np.ndarray]:
    try:
        import av
    except ImportError:
        raise GenlabError(
            f"{path}: reading {path.suffix} videos needs PyAV, which genlab does not install: 'pip install av', "
            "or convert the video to a GIF or a folder of frames"
        ) from None
    try:
        with av.open(str(path)) as container:
            return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (av.error.FFmpegError, OSError, ValueError) as e:  # av.error.FFmpegError is av's base error
        raise GenlabError(f"{path}: unreadable video ({type(e).__name__}); re-export it or remove it") from None


def _read_frames_folder(path: Path) -> list[np.ndarray]:
    files = sorted(
        (p for p in path.iterdir() if p.is_file() and not _hidden(p) and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: _natural(p.name),
    )
    if not files:
        raise GenlabError(
            f"{path}: no frames ({', '.join(IMAGE_SUFFIXES)}) in this video folder; add them or remove it"
        )
    return [load_image(f, channels=3) for f in files]  # load_image names an unreadable file


def read_video(path: str | Path) -> list[np.ndarray]:
    """Every frame of one video (a file or a folder of frames) as uint8 (H, W, 3) arrays."""
    path = Path(path)
    if path.is_dir():
        return _read_frames_folder(path)
    if path.suffix.lower() in CONTAINER_SUFFIXES:
        return _read_container(path)
    return _read_animation(path)


def even_indices(n: int, frames: int) -> np.ndarray:
    """`frames` indices spread evenly over 0..n−1, the first and the last included."""
    return np.round(np.linspace(0, n - 1, frames)).astype(np.int64)


def load_video(path: str | Path, *, frames: int, size: int) -> np.ndarray:
    """uint8 (frames, size, size, 3): `frames` evenly spaced frames of a video, centre-cropped and resized."""
    path = Path(path)
    all_frames = read_video(path)
    if len(all_frames) < frames:
        raise GenlabError(
            f"{path}: {len(all_frames)} frame(s), fewer than data.frames={frames}; lower data.frames or remove it"
        )
    return np.stack([center_crop_resize(all_frames[i], size) for i in even_indices(len(all_frames), frames)])


def build_video_folder(cfg: VideoFolderConfig, *, split: str = "train") -> Dataset:
    """Videos x (N, T, 3, size, size) in [-1, 1] from `cfg.path`, with captions when the folder has them."""
    if not cfg.path:
        raise GenlabError("data.path is empty; set data.path=/path/to/video/folder")
    root = Path(cfg.path).expanduser()
    if not root.is_dir():
        raise GenlabError(f"{root}: video folder not found; set data.path to an existing folder")
    videos, texts = _scan(root)
    idx = split_indices(len(videos), split=split, test_fraction=cfg.test_fraction, seed=cfg.seed, source=str(root))
    x = np.stack([load_video(videos[i], frames=cfg.frames, size=cfg.size) for i in idx])  # (N, T, S, S, 3)
    data = Dataset(x=uint8_to_tensor(x.reshape(-1, *x.shape[2:])).unflatten(0, x.shape[:2]), name=root.name)
    if texts is not None:
        data.texts = [texts[i] for i in idx]
    return data
