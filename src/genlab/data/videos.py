"""Procedural captioned videos: 1–2 shapes of the shapes domain, each doing one motion, on black.

A video is T frames (N, T, 3, H, W) in [-1, 1] (time before channels, so `x.flatten(0, 1)` is a batch of
frames). Each shape (colour, kind from `genlab.data.shapes`) does one of MOTIONS over the clip: a translation
of TRAVEL pixels (right / left / up / down: centre(f) = start + f/(T−1)·TRAVEL·direction), growing or
shrinking (half extent linear from SMALL_HALF to LARGE_HALF or back, rounded to whole pixels), a colour
change (the colour switches at frame T // 2) or bouncing (the shape moves BOUNCE pixels towards a wall it touches
at mid-clip, reflects and comes back: centre(f) = start + (1 − |1 − 2f/(T−1)|)·BOUNCE·direction, the direction
drawn per video and not captioned: "a red circle bouncing"). Two shapes keep >= GAP empty pixels between their bounding
boxes at every frame. Captions: "a red circle moving to the right", "a red circle moving to the right while
a blue square falls"; `parse_video_caption` inverts every template. Held-out kind×motion pairs
(`HELDOUT_MOTIONS`) never appear in 'train' or 'test'; every 'heldout' video holds at least one.
Everything is a pure function of (seed, split, frames, bouncing). `bouncing: false` draws from OLD_MOTIONS (the
motions before bouncing existed) and reproduces that data bit for bit; the default adds bouncing, which changes
the random stream of every video (the motion draw has 8 outcomes instead of 7).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import torch

from genlab.constraints import PositiveInt, Range, Seed
from genlab.data.base import Dataset
from genlab.data.images import uint8_to_tensor
from genlab.data.shapes import COLOURS, GAP, KINDS, SPLITS, shape_mask
from genlab.errors import GenlabError

OLD_MOTIONS = ("right", "left", "up", "down", "grow", "shrink", "colour")
MOTIONS = (*OLD_MOTIONS, "bouncing")
DIRECTIONS = {"right": (1, 0), "left": (-1, 0), "up": (0, -1), "down": (0, 1)}  # image y points down
TRAVEL = 12  # pixels a translating shape moves over the clip
BOUNCE = TRAVEL // 2  # pixels a bouncing shape moves to the wall (and back): the same speed as a translation
SMALL_HALF, LARGE_HALF = 4, 7  # half extents of a growing / shrinking shape at its ends (translations: SMALL_HALF)
HELDOUT_MOTIONS = frozenset(
    {("circle", "up"), ("square", "shrink"), ("triangle", "right"), ("square", "colour"), ("circle", "bouncing")}
)
IMAGE_SIZE = 32
MIN_FRAMES = 4  # steps of <= TRAVEL / 3 pixels, so a shape is tracked by its nearest centroid
# (participle, present) phrasings; {c} is the colour a shape turns into
PHRASES = {
    "right": ("moving to the right", "moves to the right"),
    "left": ("moving to the left", "moves to the left"),
    "up": ("moving up", "rises"),
    "down": ("moving down", "falls"),
    "grow": ("growing", "grows"),
    "shrink": ("shrinking", "shrinks"),
    "colour": ("turning {c}", "turns {c}"),
    "bouncing": ("bouncing", "bounces"),
}


@dataclass
class VideosConfig:
    kind: str = "videos"
    n: PositiveInt = 2000  # videos in the 'train' split
    n_test: PositiveInt = 200  # videos in each of 'test' and 'heldout'
    frames: Annotated[int, Range(MIN_FRAMES, 16)] = 8
    seed: Seed = 0
    bouncing: bool = True  # false: only OLD_MOTIONS, the data as it was before bouncing (bit-identical)


@dataclass(frozen=True)
class Actor:
    """One shape of a video and what it does; `to_colour` is the end colour of a 'colour' motion."""

    colour: str
    kind: str
    motion: str
    to_colour: str | None = None

    def colour_at(self, frame: int, frames: int) -> str:
        return self.to_colour if self.motion == "colour" and frame >= frames // 2 else self.colour


# ----------------------------------------------------------------------------- captions


def _clause(a: Actor, form: int) -> str:
    phrase = PHRASES[a.motion][form].format(c=a.to_colour)
    return f"{'an' if a.colour[0] in 'aeiou' else 'a'} {a.colour} {a.kind} {phrase}"


def video_caption(actors: tuple[Actor, ...], *, template: int = 0) -> str:
    """'a red circle moving to the right' (template 0) or '... moves to the right' (1); a second actor is joined
    by 'while' in the present ('a red circle moving to the right while a blue square falls')."""
    return " while ".join(_clause(a, template % 2 if i == 0 else 1) for i, a in enumerate(actors))


_PHRASE_RE = "|".join(p.replace("{c}", f"(?:{'|'.join(COLOURS)})") for forms in PHRASES.values() for p in forms)
_CLAUSE = re.compile(rf"^an? ({'|'.join(COLOURS)}) ({'|'.join(KINDS)}) ({_PHRASE_RE})$")


def _motion_of(phrase: str) -> tuple[str, str | None]:
    for motion, forms in PHRASES.items():
        for form in forms:
            if "{c}" in form and phrase.startswith(form.split("{c}")[0]):
                return motion, phrase.split()[-1]
            if phrase == form:
                return motion, None
    raise AssertionError(phrase)  # unreachable: _CLAUSE only matches the phrases above


def parse_video_caption(text: str) -> tuple[Actor, ...] | None:
    """The actors a caption states, or None when it is not in the grammar."""
    actors = []
    for clause in " ".join(text.lower().strip().rstrip(".").split()).split(" while "):
        m = _CLAUSE.match(clause)
        if m is None:
            return None
        motion, to_colour = _motion_of(m[3])
        actors.append(Actor(m[1], m[2], motion, to_colour))
    return tuple(actors) if len(actors) <= 2 else None


# ----------------------------------------------------------------------------- trajectories and rendering


def _ends(a: Actor) -> tuple[float, float]:
    """Half extent at the first and the last frame."""
    return {"grow": (SMALL_HALF, LARGE_HALF), "shrink": (LARGE_HALF, SMALL_HALF)}.get(a.motion, (SMALL_HALF,) * 2)


def _move(a: Actor, direction: str | None) -> tuple[tuple[int, int], int]:
    """(unit direction, pixels of the farthest excursion) of an actor's centre; a bouncing actor heads `direction`."""
    if a.motion == "bouncing":
        return DIRECTIONS[direction], BOUNCE
    return DIRECTIONS.get(a.motion, (0, 0)), TRAVEL


def trajectory(a: Actor, start: tuple[int, int], frames: int, direction: str | None = None) -> np.ndarray:
    """(frames, 3) float: centre x, centre y and half extent of the actor at each frame; a bouncing actor moves
    towards `direction` (one of DIRECTIONS) for the first half of the clip and back for the second."""
    f = np.linspace(0.0, 1.0, frames)
    (dx, dy), dist = _move(a, direction)
    h0, h1 = _ends(a)
    half = np.round(h0 + (h1 - h0) * f)  # whole pixels: a circle of half extent 4.5 reads as a square
    reach = 1.0 - np.abs(1.0 - 2.0 * f) if a.motion == "bouncing" else f
    return np.stack([start[0] + dx * dist * reach, start[1] + dy * dist * reach, half], axis=1)


def _start_range(a: Actor, size: int, direction: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Bounds [lo, hi) of the integer start centre (x, y) that keep the whole trajectory inside the image; a
    bouncing actor's start on its axis is the one from which it touches the wall at its farthest point."""
    half = max(_ends(a))
    (dx, dy), dist = _move(a, direction)
    lo = np.array([half - min(dx, 0) * dist, half - min(dy, 0) * dist])
    hi = np.array([size - half - max(dx, 0) * dist, size - half - max(dy, 0) * dist]) + 1
    if a.motion == "bouncing":  # at its farthest the centre is `half` from the wall: the box touches it
        axis, sign = (0, dx) if dx else (1, dy)
        lo[axis] = hi[axis] - 1 if sign > 0 else lo[axis]
        hi[axis] = lo[axis] + 1
    return lo, hi


def _apart(p: np.ndarray, q: np.ndarray) -> bool:
    """Whether two trajectories' boxes keep >= GAP empty pixels between them at every frame."""
    d = np.maximum(np.abs(p[:, 0] - q[:, 0]), np.abs(p[:, 1] - q[:, 1]))  # (T,) Chebyshev distance of the centres
    return bool((d >= p[:, 2] + q[:, 2] + GAP).all())


def place(actors: tuple[Actor, ...], rng: np.random.Generator, frames: int, *, tries: int = 200) -> list[np.ndarray]:
    """A trajectory per actor, starts uniform over the valid range, redrawn until the shapes stay apart."""
    for _ in range(tries):
        paths = []
        for a in actors:
            direction = _pick(rng, tuple(DIRECTIONS)) if a.motion == "bouncing" else None
            lo, hi = _start_range(a, IMAGE_SIZE, direction)
            paths.append(trajectory(a, tuple(int(v) for v in rng.integers(lo, hi)), frames, direction))
        if len(paths) == 1 or _apart(*paths):
            return paths
    raise GenlabError(f"cannot place {actors} in a {IMAGE_SIZE}x{IMAGE_SIZE} video; use one shape")


def draw_video(actors: tuple[Actor, ...], paths: list[np.ndarray], frames: int) -> np.ndarray:
    """uint8 (T, H, W, 3) frames of the actors along their trajectories."""
    video = np.zeros((frames, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    for f in range(frames):
        for a, path in zip(actors, paths):
            cx, cy, half = path[f]
            video[f][shape_mask(a.kind, cx, cy, half, IMAGE_SIZE)] = COLOURS[a.colour_at(f, frames)]
    return video


# ----------------------------------------------------------------------------- sampling


def _pick(rng: np.random.Generator, options) -> str:
    return options[int(rng.integers(len(options)))]


def _actor(
    rng: np.random.Generator, *, heldout: bool, avoid: tuple[str, ...] = (), motions: tuple[str, ...] = MOTIONS
) -> Actor:
    """A random actor whose kind×motion pair is held out (heldout=True) or not, in a colour not in `avoid`."""
    colours = tuple(c for c in COLOURS if c not in avoid)
    while True:
        kind, motion = _pick(rng, KINDS), _pick(rng, motions)
        if ((kind, motion) in HELDOUT_MOTIONS) == heldout:
            break
    colour = _pick(rng, colours)
    to = _pick(rng, tuple(c for c in colours if c != colour)) if motion == "colour" else None
    return Actor(colour, kind, motion, to)


def sample_actors(rng: np.random.Generator, *, split: str, motions: tuple[str, ...] = MOTIONS) -> tuple[Actor, ...]:
    """One actor (50 %) or two of different colours (a colour change never turns into the other's colour)."""
    held = split == "heldout"
    if rng.random() < 0.5:
        return (_actor(rng, heldout=held, motions=motions),)
    first_new = held and rng.random() < 0.5
    a = _actor(rng, heldout=first_new, motions=motions)
    avoid = tuple(c for c in (a.colour, a.to_colour) if c)
    b = _actor(rng, heldout=held and not first_new, avoid=avoid, motions=motions)
    if a.to_colour == b.colour:  # a turns into b's colour: redraw a's end colour
        a = Actor(a.colour, a.kind, a.motion, _pick(rng, tuple(c for c in COLOURS if c not in (a.colour, b.colour))))
    return a, b


def sample_videos(
    n: int, *, split: str = "train", seed: int = 0, frames: int = 8, bouncing: bool = True
) -> tuple[torch.Tensor, list[str], list[tuple[Actor, ...]]]:
    """(videos (n, T, 3, 32, 32) in [-1, 1], captions, actors), a pure function of (split, seed, frames, bouncing);
    bouncing=False draws only OLD_MOTIONS (the data of earlier versions, bit for bit)."""
    if split not in SPLITS:
        raise GenlabError(f"videos split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not MIN_FRAMES <= frames <= 16:
        raise GenlabError(f"videos have {MIN_FRAMES} to 16 frames, got {frames}: set data.frames")
    rng = np.random.default_rng([seed, SPLITS[split], 17])
    motions = MOTIONS if bouncing else OLD_MOTIONS
    videos, texts, casts = [], [], []
    for _ in range(n):
        actors = sample_actors(rng, split=split, motions=motions)
        videos.append(draw_video(actors, place(actors, rng, frames), frames))
        texts.append(video_caption(actors, template=int(rng.integers(0, 2))))
        casts.append(actors)
    x = uint8_to_tensor(np.concatenate(videos)).unflatten(0, (n, frames))  # (n, T, 3, H, W)
    return x, texts, casts


def build_videos(cfg: VideosConfig, *, split: str = "train") -> Dataset:
    """Captioned videos x (N, T, 3, 32, 32) in [-1, 1]; split 'train', 'test' (seen pairs) or 'heldout'."""
    n = cfg.n if split == "train" else cfg.n_test
    x, texts, _ = sample_videos(n, split=split, seed=cfg.seed, frames=cfg.frames, bouncing=cfg.bouncing)
    return Dataset(x=x, texts=texts, name="videos")
