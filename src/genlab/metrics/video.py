"""Motion checker for captioned shape videos (genlab.data.videos), scored procedurally per frame.

Objects in each frame are found as the GenEval-style checker finds them (`genlab.metrics.geneval.object_masks`:
nearest named colour per pixel, 8-connected components, kind from the box fill ratio). A caption's actor is
found in frame 0 by its colour and kind, then tracked by the nearest mask centroid in each later frame (shapes
never touch). Its motion is read from the first and last points of the track, first rule that holds:
colour: the object's colour changed; grow / shrink: its pixel count changed by more than AREA_RATIO;
right / left / down / up: the centroid moved >= MIN_TRAVEL pixels, on the dominant axis; otherwise 'still'.
Per video: 'motion' (every actor found and doing what the caption says, the end colour included), 'frames'
(per-frame attribute accuracy: the share of (frame, actor) pairs where an object of the expected colour and
kind exists) and 'consistency' (the share of consecutive frame pairs with the same number of objects).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import Tensor

from genlab.data.images import tensor_to_uint8
from genlab.data.videos import Actor, parse_video_caption
from genlab.errors import GenlabError
from genlab.metrics.geneval import object_masks

AREA_RATIO = 1.6  # grow / shrink: last / first pixel count above this (or below its inverse); 4 -> 7 px is ~3x
MIN_TRAVEL = 4.0  # pixels the centroid must move for a translation (the data moves shapes 12)


@dataclass(frozen=True)
class Point:
    """One tracked object in one frame: mask centroid, pixel count, detected colour and kind."""

    x: float
    y: float
    pixels: int
    colour: str
    kind: str


def frame_objects(frame: np.ndarray) -> list[Point]:
    """The objects of one uint8 (H, W, 3) frame with their mask centroids."""
    out = []
    for d, mask in object_masks(frame):
        ys, xs = np.nonzero(mask)
        out.append(Point(float(xs.mean()) + 0.5, float(ys.mean()) + 0.5, int(mask.sum()), d.colour, d.kind))
    return out


def track(frames: list[list[Point]], colour: str, kind: str) -> list[Point] | None:
    """The object of `colour` and `kind` in frame 0 (the largest if several), followed by the nearest centroid
    through the later frames; None when it is not in frame 0 or a frame is empty."""
    start = [p for p in frames[0] if p.colour == colour and p.kind == kind]
    if not start:
        return None
    path = [start[0]]
    for objects in frames[1:]:
        if not objects:
            return None
        prev = path[-1]
        path.append(min(objects, key=lambda p: (p.x - prev.x) ** 2 + (p.y - prev.y) ** 2))
    return path


def classify_motion(path: list[Point]) -> str:
    """One of genlab.data.videos.MOTIONS, or 'still', from the first and last points of a track."""
    first, last = path[0], path[-1]
    if last.colour != first.colour:
        return "colour"
    ratio = last.pixels / max(first.pixels, 1)
    if ratio > AREA_RATIO:
        return "grow"
    if ratio < 1 / AREA_RATIO:
        return "shrink"
    dx, dy = last.x - first.x, last.y - first.y
    if max(abs(dx), abs(dy)) < MIN_TRAVEL:
        return "still"
    if abs(dx) > abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"  # image y points down


def score_video(video: np.ndarray, actors: tuple[Actor, ...]) -> dict[str, float]:
    """Scores of one uint8 (T, H, W, 3) video against the actors its caption states (module docstring)."""
    frames = [frame_objects(f) for f in video]
    n = len(frames)
    motion = True
    for a in actors:
        path = track(frames, a.colour, a.kind)
        ok = path is not None and classify_motion(path) == a.motion
        motion &= ok and (a.motion != "colour" or path[-1].colour == a.to_colour)
    hits = [
        any(p.colour == a.colour_at(f, n) and p.kind == a.kind for p in objects)
        for f, objects in enumerate(frames)
        for a in actors
    ]
    counts = [len(objects) for objects in frames]
    same = [counts[i] == counts[i + 1] for i in range(n - 1)]
    return {"motion": float(motion), "frames": float(np.mean(hits)), "consistency": float(np.mean(same or [1.0]))}


def video_scores(videos: Tensor, captions: list[str]) -> dict[str, float]:
    """Mean scores of videos (B, T, 3, H, W) in [-1, 1] against their captions (the genlab.data.videos grammar)."""
    if videos.dim() != 5 or len(captions) != videos.shape[0]:
        raise GenlabError(f"need videos (B, T, 3, H, W) and B captions, got {tuple(videos.shape)}, {len(captions)}")
    per = []
    for video, text in zip(videos, captions):
        actors = parse_video_caption(text)
        if actors is None:
            raise GenlabError(f"caption {text!r} is not in the videos grammar; see genlab.data.videos")
        per.append(score_video(tensor_to_uint8(video), actors))
    return {k: float(np.mean([s[k] for s in per])) for k in per[0]}
