"""Motion checker for captioned shape videos (genlab.data.videos), scored procedurally per frame.

Objects in each frame are found as the GenEval-style checker finds them (`genlab.metrics.geneval.object_masks`:
nearest named colour per pixel, 8-connected components, kind from the box fill ratio). A caption's actor is
found in frame 0 by its colour and kind, then tracked by the nearest mask centroid in each later frame (shapes
never touch). Its motion is read from the track, first rule that holds:
colour: the object's colour changed from the first to the last frame; grow / shrink: its pixel count changed by
more than AREA_RATIO; bouncing: the centroid reversed direction once (it went >= MIN_TRAVEL pixels out to its
farthest point, rising along that direction until then, and >= MIN_TRAVEL back, falling after; 1-pixel jitter
allowed); right / left / down / up: the centroid moved >= MIN_TRAVEL pixels from the first to the last frame, on
the dominant axis; otherwise 'still'.
Per video: 'motion' (every actor found and doing what the caption says, the end colour included), 'frames'
(per-frame attribute accuracy: the share of (frame, actor) pairs where an object of the expected colour and
kind exists), 'consistency' (the share of consecutive frame pairs with the same number of objects) and
'identity' (temporal consistency of each tracked object: the share of consecutive frame pairs along an actor's
track where the object keeps its kind and its colour, one colour switch allowed for a 'colour' actor; an actor
not found in frame 0 or lost in an empty frame scores 0).
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


def bounced(path: list[Point]) -> bool:
    """Whether the centroid went out to a farthest point inside the clip and came back (one reversal)."""
    xy = np.array([(p.x, p.y) for p in path])
    dist = np.hypot(*(xy - xy[0]).T)
    far = int(dist.argmax())
    if far in (0, len(path) - 1) or dist[far] < MIN_TRAVEL:
        return False
    along = (xy - xy[0]) @ ((xy[far] - xy[0]) / dist[far])  # position along the outward direction
    steps = np.diff(along)
    return bool(along[far] - along[-1] >= MIN_TRAVEL and (steps[:far] >= -1.0).all() and (steps[far:] <= 1.0).all())


def classify_motion(path: list[Point]) -> str:
    """One of genlab.data.videos.MOTIONS, or 'still', from a track (module docstring)."""
    first, last = path[0], path[-1]
    if last.colour != first.colour:
        return "colour"
    ratio = last.pixels / max(first.pixels, 1)
    if ratio > AREA_RATIO:
        return "grow"
    if ratio < 1 / AREA_RATIO:
        return "shrink"
    if bounced(path):
        return "bouncing"
    dx, dy = last.x - first.x, last.y - first.y
    if max(abs(dx), abs(dy)) < MIN_TRAVEL:
        return "still"
    if abs(dx) > abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"  # image y points down


def identity(path: list[Point] | None, actor: Actor) -> float:
    """The share of consecutive frame pairs of a track where the object keeps its kind and colour (a 'colour'
    actor may switch colour once); 0 for a lost track."""
    if path is None:
        return 0.0
    switches = 1 if actor.motion == "colour" else 0
    kept = 0
    for p, q in zip(path, path[1:]):
        same = p.kind == q.kind and p.colour == q.colour
        if not same and switches and p.kind == q.kind:
            switches, same = 0, True
        kept += same
    return kept / max(len(path) - 1, 1)


def score_video(video: np.ndarray, actors: tuple[Actor, ...]) -> dict[str, float]:
    """Scores of one uint8 (T, H, W, 3) video against the actors its caption states (module docstring)."""
    frames = [frame_objects(f) for f in video]
    n = len(frames)
    motion, kept = True, []
    for a in actors:
        path = track(frames, a.colour, a.kind)
        ok = path is not None and classify_motion(path) == a.motion
        motion &= ok and (a.motion != "colour" or path[-1].colour == a.to_colour)
        kept.append(identity(path, a))
    hits = [
        any(p.colour == a.colour_at(f, n) and p.kind == a.kind for p in objects)
        for f, objects in enumerate(frames)
        for a in actors
    ]
    counts = [len(objects) for objects in frames]
    same = [counts[i] == counts[i + 1] for i in range(n - 1)]
    return {
        "motion": float(motion),
        "frames": float(np.mean(hits)),
        "consistency": float(np.mean(same or [1.0])),
        "identity": float(np.mean(kept)),
    }


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


# ----------------------------------------------------------------------------- reconstruction of videos

LEVELS = 127.5  # [-1, 1] units -> 8-bit levels


def _check_videos(recon: Tensor, video: Tensor) -> None:
    if recon.shape != video.shape or video.dim() != 5 or video.shape[1] < 2:
        raise GenlabError(
            f"need two video batches (B, T >= 2, C, H, W) of the same shape, got {tuple(recon.shape)}, "
            f"{tuple(video.shape)}"
        )


def frame_psnr(recon: Tensor, video: Tensor) -> Tensor:
    """Reconstruction PSNR in dB of every frame, (B, T), for videos (B, T, C, H, W) in [-1, 1]
    (genlab.metrics.image.psnr of each frame pair: 10·log10(4 / MSE over the frame's channels and pixels))."""
    from genlab.metrics.image import psnr

    _check_videos(recon, video)
    return psnr(recon.flatten(0, 1).float(), video.flatten(0, 1).float()).view(video.shape[:2])


def flicker(recon: Tensor, video: Tensor) -> dict[str, Tensor]:
    """Temporal flicker of reconstructions of videos (B, T, C, H, W) in [-1, 1], both in 8-bit levels, (B,) each:

    'flicker': mean over t, channels and pixels of |Δr_t − Δx_t|, Δx_t = x_{t+1} − x_t the change between
      consecutive frames: how far the reconstruction's frame-to-frame change is from the true one (0: the
      reconstruction changes exactly as the video does, however large its per-frame error);
    'static_flicker': mean of |Δr_t| over the positions (t, pixel, all channels) where the video does not change
      (Δx_t = 0): the change a viewer sees where nothing moves; 0 for a video with no static pixel.
    Both clamp to [-1, 1] first (the video as it would be saved)."""
    import torch

    _check_videos(recon, video)
    r, x = recon.float().clamp(-1, 1), video.float().clamp(-1, 1)
    dr, dx = r.diff(dim=1), x.diff(dim=1)  # (B, T - 1, C, H, W)
    err = (dr - dx).abs().flatten(1).mean(1) * LEVELS
    static = (dx == 0).all(dim=2, keepdim=True).expand_as(dr)  # (B, T - 1, C, H, W)
    moved = (dr.abs() * static).flatten(1).sum(1)
    count = static.flatten(1).sum(1)
    still = torch.where(count > 0, moved / count.clamp_min(1), torch.zeros_like(moved)) * LEVELS
    return {"flicker": err, "static_flicker": still}


def reconstruction_scores(recon: Tensor, video: Tensor) -> dict[str, float]:
    """Means over the videos: 'psnr_db' (over all frames), 'psnr_db_frame_<t>' per frame index, 'flicker' and
    'static_flicker' (see `frame_psnr` and `flicker`)."""
    per_frame = frame_psnr(recon, video)  # (B, T)
    out = {"psnr_db": float(per_frame.mean())}
    out.update({f"psnr_db_frame_{t}": float(v) for t, v in enumerate(per_frame.mean(0))})
    out.update({k: float(v.mean()) for k, v in flicker(recon, video).items()})
    return out
