"""Text-to-image metrics on the shapes grammar: attribute accuracy, CLIP score and FD per prompt set.

Attribute checker: each pixel takes the nearest of black and the 8 named RGB colours; connected
components (8-neighbourhood, >= `min_pixels`) of one colour are objects, placed at their bounding-box
centres. An object's kind follows its fill ratio f = area / bounding-box area (square ≈ 1, circle ≈ π/4,
triangle ≈ ½), its size the longer box side (small 8 px, large 14 px at 32×32), and a relation holds on
the dominant axis of the displacement between centres. A caption is correct when its objects match
distinct detected objects in colour, kind and stated size, the relation holds and no other object is
present. FD compares generated images with renders of the same captions in a shapes feature network
(Heusel et al. 2017, `genlab.metrics.fid`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from genlab.data.images import tensor_to_uint8
from genlab.data.shapes import COLOURS, HALF_EXTENT, Scene, parse_caption, relation_of, render, sample_pairs
from genlab.errors import GenlabError
from genlab.metrics.features import FeatureNet, extract, load_feature_net
from genlab.metrics.fid import frechet_distance

SHAPES_ASSET = "assets/features-shapes.safetensors"
PALETTE = np.array([(0, 0, 0), *COLOURS.values()], dtype=np.float32)  # index 0 = background
NAMES = ("black", *COLOURS)
ATTRIBUTES = ("count", "colour", "shape", "size", "relation", "all")


@dataclass(frozen=True)
class Detected:
    colour: str
    kind: str
    size: str
    cx: float
    cy: float
    pixels: int


def detect(image: np.ndarray, *, min_pixels: int | None = None) -> list[Detected]:
    """Objects in one uint8 (H, W, 3) image (black background), largest first."""
    side = image.shape[0]
    scale = side / 32
    min_pixels = min_pixels or max(4, round(8 * scale**2))
    dist = ((image[:, :, None, :].astype(np.float32) - PALETTE) ** 2).sum(-1)  # (H, W, 9)
    nearest = dist.argmin(-1)  # (H, W) palette index
    threshold = (HALF_EXTENT["small"] + HALF_EXTENT["large"]) * scale  # between 8 and 14 px at 32×32
    found = []
    for c in range(1, len(PALETTE)):
        labels, count = ndimage.label(nearest == c, structure=np.ones((3, 3)))
        for k in range(1, count + 1):
            ys, xs = np.nonzero(labels == k)
            if len(ys) >= min_pixels:
                found.append(describe(ys, xs, NAMES[c], threshold))
    return sorted(found, key=lambda d: -d.pixels)


def describe(ys: np.ndarray, xs: np.ndarray, colour: str, threshold: float) -> Detected:
    """The object made of the pixels (ys, xs): kind from the box fill ratio, size from the longer box side
    (large above `threshold` pixels), position = box centre (as in the layout)."""
    h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    fill = len(ys) / (h * w)
    kind = "square" if fill > 0.9 else "circle" if fill > 0.66 else "triangle"
    size = "large" if max(h, w) > threshold else "small"
    cx, cy = (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2
    return Detected(colour, kind, size, float(cx), float(cy), len(ys))


def _score(spec: Scene, objects: tuple[Detected | None, ...], total: int) -> dict[str, float]:
    """Per-attribute scores of one assignment of detected objects (or None) to the caption's shapes."""
    pairs = list(zip(spec.shapes, objects))
    colour = sum(d is not None and d.colour == s.colour for s, d in pairs) / len(pairs)
    shape = sum(d is not None and d.colour == s.colour and d.kind == s.kind for s, d in pairs) / len(pairs)
    stated = [(s, d) for s, d in pairs if s.size is not None]
    size = (
        sum(d is not None and d.colour == s.colour and d.size == s.size for s, d in stated) / len(stated)
        if stated
        else float("nan")
    )
    relation = float("nan")
    if spec.relation is not None:
        a, b = objects
        relation = float(a is not None and b is not None and relation_of(b.cx - a.cx, b.cy - a.cy) == spec.relation)
    count = float(total == len(spec.shapes))
    every = float(
        count == 1 and colour == 1 and shape == 1 and size != 0 and relation != 0 and (size != size or size == 1)
    )  # nan (unstated) counts as met
    return {"count": count, "colour": colour, "shape": shape, "size": size, "relation": relation, "all": every}


def check(image: np.ndarray, text: str) -> dict[str, float] | None:
    """Attribute scores (ATTRIBUTES, each in [0, 1]; size and relation nan when the caption states none) of a
    uint8 (H, W, 3) image against its caption; None outside the shapes grammar. The best assignment of
    detected objects to the caption's shapes is used."""
    spec = parse_caption(text)
    if spec is None:
        return None
    found = detect(image)
    slots = [*found, *([None] * len(spec.shapes))]
    best = None
    for objects in itertools.permutations(range(len(slots)), len(spec.shapes)):
        score = _score(spec, tuple(slots[i] for i in objects), len(found))
        if best is None or np.nansum(list(score.values())) > np.nansum(list(best.values())):
            best = score
    return best


def attribute_accuracy(images: Tensor, texts: list[str]) -> dict[str, float]:
    """Mean attribute scores over (image, caption) pairs; images (N, 3, H, W) in [-1, 1].

    'size' and 'relation' average over the captions that state them; captions outside the grammar are
    counted in 'skipped'."""
    if len(images) != len(texts):
        raise GenlabError(f"attribute accuracy needs one caption per image, got {len(images)} and {len(texts)}")
    pixels = tensor_to_uint8(images.detach().cpu().clamp(-1, 1))  # (N, H, W, 3)
    rows = [r for r in (check(img, t) for img, t in zip(pixels, texts)) if r is not None]
    if not rows:
        raise GenlabError("no caption is in the shapes grammar: attribute accuracy needs shapes captions")
    out = {}
    for k in ATTRIBUTES:
        values = [r[k] for r in rows if r[k] == r[k]]
        out[k] = float(np.mean(values)) if values else float("nan")
    out["skipped"] = len(texts) - len(rows)
    return out


def render_captions(texts: list[str], *, seed: int = 0, image_size: int = 32) -> Tensor:
    """Ground-truth renders (N, 3, H, W) of shapes captions, layout i drawn from seed·1_000_003 + i."""
    scenes = [parse_caption(t) for t in texts]
    if any(s is None for s in scenes):
        raise GenlabError("render_captions: every caption must be in the shapes grammar")
    return torch.stack([render(s, seed=seed * 1_000_003 + i, image_size=image_size) for i, s in enumerate(scenes)])


def prompt_set(split: str, n: int, *, seed: int = 0) -> list[str]:
    """n distinct captions of the shapes split 'test' (seen combinations) or 'heldout' (never seen)."""
    _, texts, _ = sample_pairs(4 * n + 16, split=split, seed=seed + 1)
    prompts = list(dict.fromkeys(texts))[:n]
    if len(prompts) < n:
        raise GenlabError(f"could not draw {n} distinct {split} prompts; ask for fewer")
    return prompts


def shapes_feature_net(path: str | Path | None = None) -> FeatureNet:
    """The shapes feature net: `path` (from 'genlab features train shapes') or the shipped asset."""
    path = Path(path) if path else Path(str(files("genlab").joinpath(SHAPES_ASSET)))
    return load_feature_net(path)


def evaluate_t2i(
    generate: Callable[[list[str], int], Tensor],
    *,
    prompts_seen: list[str],
    prompts_heldout: list[str],
    n_per_prompt: int = 8,
    clip_run: str | Path | None = None,
    feature_net: str | Path | FeatureNet | None = None,
    seed: int = 0,
) -> dict:
    """Attribute accuracy, CLIP score and FD of `generate(prompts, seed) -> images (N, 3, H, W) in [-1, 1]`
    on seen and held-out prompt sets (each prompt repeated n_per_prompt times). The real side of FD and of
    the reference rows are renders of the same captions. Returns {'seen': {...}, 'heldout': {...}, 'settings'}."""
    net = feature_net if isinstance(feature_net, FeatureNet) else shapes_feature_net(feature_net)
    clip = None
    if clip_run is not None:
        from genlab.text.clip import load_clip

        clip = load_clip(clip_run)
    report = {
        "settings": {
            "n_per_prompt": n_per_prompt,
            "seed": seed,
            "feature_net": net.name,
            "clip_run": None if clip_run is None else str(clip_run),
        }
    }
    for name, prompts in (("seen", prompts_seen), ("heldout", prompts_heldout)):
        texts = [p for p in prompts for _ in range(n_per_prompt)]
        start = time.perf_counter()
        fake = generate(texts, seed).detach().cpu().float().clamp(-1, 1)
        seconds = time.perf_counter() - start
        if fake.shape[0] != len(texts) or fake.dim() != 4:
            raise GenlabError(f"generate returned {tuple(fake.shape)} for {len(texts)} prompts; expected (N, 3, H, W)")
        real = render_captions(texts, seed=seed, image_size=fake.shape[-1])
        report[name] = _measure(fake, real, texts, net=net, clip=clip)
        report[name].update(prompts=len(prompts), images=len(texts), generate_seconds=round(seconds, 2))
    return report


def _measure(fake: Tensor, real: Tensor, texts: list[str], *, net: FeatureNet, clip) -> dict:
    """Attribute accuracy (generated and, as a ceiling, rendered), FD against the renders, CLIP scores."""
    out = {"attributes": attribute_accuracy(fake, texts), "attributes_real": attribute_accuracy(real, texts)}
    out["fd"] = frechet_distance(extract(net, fake)[0], extract(net, real)[0])
    if clip is not None:
        from genlab.text.clip import clip_score

        out["clip_score"] = clip_score(fake, texts, clip)
        out["clip_score_real"] = clip_score(real, texts, clip)
    return out
