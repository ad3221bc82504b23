"""A GenEval-style prompt suite for the shapes domain (Ghosh et al. 2023, "GenEval"), scored procedurally.

Categories (as GenEval): single_object ("a circle": any colour), two_objects ("a circle and a square"),
counting (1–4 copies of one coloured shape), colours ("a circle that is red"), position (A left of / right of /
above / below B) and colour_attribution (two shapes in two colours, not swapped). Every spec is asked in
several wordings that are not the training captions' templates (paraphrases, word orders, "left of" /
"to the left of" / "on the left side of", articles dropped, counts as words and digits); specs with a held-out
colour×shape pair (`genlab.data.shapes.HELDOUT_PAIRS`) are marked `heldout`.

Scoring one image (`score_image`): objects are found by colour and form (`detect_objects`: nearest named
colour per pixel, 8-connected components of non-black pixels, each of its majority colour, kind from the box
fill ratio and size from the box side as `genlab.metrics.t2i.detect`, box centres). The image is right
('correct') when each spec object matches its own detected object in colour (if stated), shape and size (if
stated), a counting spec finds exactly `count` matching objects, and a position spec's relation holds on the
dominant axis of the displacement between the matched objects' centres (the rule the shapes layout uses).
Objects beyond those the spec asks for do not fail an image; they set its 'extra' flag. A category's accuracy
is the mean over its images, with a 95 % percentile-bootstrap interval that resamples specs (the wordings and
images of one spec are not independent); overall = the mean over categories, as GenEval reports it.

Prompt files (`load_suite`): JSON lines, one prompt each:
    {"prompt": "2 red squares", "category": "counting", "objects": [{"colour": "red", "shape": "square"}], "count": 2}
    {"prompt": "blue circle left of a green square", "category": "position",
     "objects": [{"colour": "blue", "shape": "circle"}, {"colour": "green", "shape": "square"}], "relation": "left of"}
Keys: prompt (text), category (any name; the builtin ones above), objects (1–4 of {shape, colour?, size?}),
count (optional, 1–4, with exactly one object), relation (optional, one of left of / right of / above / below,
of objects[0] to objects[1], with exactly two objects), spec (optional: prompts sharing it are one spec for
the interval; default: the prompt's line).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import ndimage
from torch import Tensor

from genlab.data.images import tensor_to_uint8, uint8_to_tensor
from genlab.data.shapes import (
    COLOURS,
    HALF_EXTENT,
    HELDOUT_PAIRS,
    KINDS,
    RELATIONS,
    SIZES,
    Scene,
    Shape,
    draw,
    layout,
    relation_of,
)
from genlab.errors import GenlabError
from genlab.metrics.t2i import NAMES, PALETTE, Detected, describe

CATEGORIES = ("single_object", "two_objects", "counting", "colours", "position", "colour_attribution")
MAX_COUNT = 4
KEYS = {"prompt", "category", "objects", "count", "relation", "spec"}
BOOTSTRAP = 1000
COUNT_WORDS = ("zero", "one", "two", "three", "four")


@dataclass(frozen=True)
class ObjectSpec:
    shape: str
    colour: str | None = None  # None: any colour
    size: str | None = None  # None: any size


@dataclass(frozen=True)
class Prompt:
    text: str
    category: str
    objects: tuple[ObjectSpec, ...]
    count: int | None = None  # counting: exactly this many copies of objects[0]
    relation: str | None = None  # of objects[0] to objects[1]
    spec: str = ""  # prompts with the same spec are wordings of one scene

    @property
    def n_objects(self) -> int:
        return self.count or len(self.objects)

    @property
    def heldout(self) -> bool:
        return any((o.colour, o.shape) in HELDOUT_PAIRS for o in self.objects)

    @property
    def coloured(self) -> bool:
        """Whether every object's colour is stated (then the prompt is on seen or on held-out pairs)."""
        return all(o.colour is not None for o in self.objects)

    def as_dict(self) -> dict:
        out: dict = {"prompt": self.text, "category": self.category, "spec": self.spec}
        out["objects"] = [{k: v for k, v in vars(o).items() if v is not None} for o in self.objects]
        if self.count is not None:
            out["count"] = self.count
        if self.relation is not None:
            out["relation"] = self.relation
        return out


@dataclass
class Suite:
    prompts: list[Prompt]
    name: str = "builtin"
    meta: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- the builtin suite

_REL_FORMS = {  # wordings of "A <relation> B"; none of them is the training grammar with articles
    "left of": ("{a} left of {b}", "{a} on the left side of {b}", "{A} to the left of {B}"),
    "right of": ("{a} right of {b}", "{a} on the right side of {b}", "{A} to the right of {B}"),
    "above": ("{a} over {b}", "{a} on top of {b}", "{A} above {B}"),
    "below": ("{a} under {b}", "{a} beneath {b}", "{A} below {B}"),
}
_INVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def _np(o: ObjectSpec, *, article: bool = True) -> str:
    words = " ".join(w for w in (o.size, o.colour, o.shape) if w)
    return f"{'an' if words[0] in 'aeiou' else 'a'} {words}" if article else words


def _plural(shape: str) -> str:
    return shape + "s"


def _single_object() -> list[Prompt]:
    out = []
    for kind in KINDS:
        for size in (None, *SIZES):
            o = ObjectSpec(kind, size=size)
            spec = f"single:{size or ''}{kind}"
            texts = (f"{_np(o)} on its own", _np(o, article=False), f"draw {_np(o)}", f"an image with {_np(o)}")
            out += [Prompt(t, "single_object", (o,), spec=spec) for t in texts]
    return out


def _colours() -> list[Prompt]:
    out = []
    for kind in KINDS:
        for colour in COLOURS:
            o = ObjectSpec(kind, colour)
            texts = (f"a {kind} that is {colour}", f"{colour} {kind}", f"a {kind} coloured {colour}")
            out += [Prompt(t, "colours", (o,), spec=f"colour:{colour} {kind}") for t in texts]
    return out


def _pair_wordings(a: ObjectSpec, b: ObjectSpec, joiner: str) -> tuple[str, ...]:
    """Four wordings of "a and b": both orders, articles dropped, and `joiner` ("together with", "next to")."""
    return (
        f"{_np(a)} and {_np(b)}",
        f"{_np(b)} and {_np(a)}",
        f"{_np(a, article=False)} and {_np(b, article=False)}",
        f"{_np(a)} {joiner} {_np(b)}",
    )


def _two_objects() -> list[Prompt]:
    out = []
    for i, k1 in enumerate(KINDS):
        for k2 in KINDS[i + 1 :]:
            for s1, s2 in ((None, None), ("small", "large"), ("large", "small")):
                a, b = ObjectSpec(k1, size=s1), ObjectSpec(k2, size=s2)
                spec = f"two:{s1 or ''}{k1}+{s2 or ''}{k2}"
                out += [Prompt(t, "two_objects", (a, b), spec=spec) for t in _pair_wordings(a, b, "together with")]
    return out


def _counting() -> list[Prompt]:
    picks = (("red", "square"), ("blue", "circle"), ("white", "triangle"), ("yellow", "circle"))  # last: held out
    out = []
    for count in range(1, MAX_COUNT + 1):
        for colour, kind in picks:
            o = ObjectSpec(kind, colour)
            noun = kind if count == 1 else _plural(kind)
            texts = (
                f"{count} {colour} {noun}",
                f"exactly {COUNT_WORDS[count]} {colour} {noun}",
                f"{COUNT_WORDS[count]} {noun}, all {colour}" if count > 1 else f"a single {colour} {kind}",
            )
            out += [Prompt(t, "counting", (o,), count=count, spec=f"count:{count} {colour} {kind}") for t in texts]
    return out


def _pairs(rng: np.random.Generator, n: int, *, heldout: int) -> list[tuple[ObjectSpec, ObjectSpec]]:
    """n distinct pairs of objects with different colours and shapes; the first `heldout` hold a held-out pair."""
    out: list[tuple[ObjectSpec, ObjectSpec]] = []
    names = tuple(COLOURS)
    while len(out) < n:
        c1, c2 = rng.choice(len(names), 2, replace=False)
        k1, k2 = rng.choice(len(KINDS), 2, replace=False)
        a, b = ObjectSpec(KINDS[k1], names[c1]), ObjectSpec(KINDS[k2], names[c2])
        has = (a.colour, a.shape) in HELDOUT_PAIRS or (b.colour, b.shape) in HELDOUT_PAIRS
        if has == (len(out) < heldout) and (a, b) not in out and (b, a) not in out:
            out.append((a, b))
    return out


def _colour_attribution(rng: np.random.Generator) -> list[Prompt]:
    out = []
    for a, b in _pairs(rng, 12, heldout=4):
        spec = f"attr:{a.colour} {a.shape}+{b.colour} {b.shape}"
        out += [Prompt(t, "colour_attribution", (a, b), spec=spec) for t in _pair_wordings(a, b, "next to")]
    return out


def _position(rng: np.random.Generator) -> list[Prompt]:
    out = []
    for i, (a, b) in enumerate(_pairs(rng, 16, heldout=4)):
        rel = RELATIONS[i % len(RELATIONS)]
        spec = f"pos:{a.colour} {a.shape} {rel} {b.colour} {b.shape}"
        na, nb = _np(a), _np(b)
        bare_a, bare_b = _np(a, article=False), _np(b, article=False)
        for form in _REL_FORMS[rel][:2]:
            out.append(Prompt(form.format(a=na, b=nb), "position", (a, b), relation=rel, spec=spec))
        out.append(Prompt(_REL_FORMS[rel][2].format(A=bare_a, B=bare_b), "position", (a, b), relation=rel, spec=spec))
        inv = _INVERSE[rel]  # the same scene stated the other way round: "B right of A"
        out.append(Prompt(_REL_FORMS[inv][0].format(a=nb, b=na), "position", (b, a), relation=inv, spec=spec))
    return out


def builtin_suite() -> Suite:
    """The fixed builtin suite (a pure function: the same prompts in every version of this module)."""
    rng = np.random.default_rng(2023)
    prompts = [
        *_single_object(),
        *_two_objects(),
        *_counting(),
        *_colours(),
        *_position(rng),
        *_colour_attribution(rng),
    ]
    return Suite(prompts, "builtin")


# ----------------------------------------------------------------------------- prompt files


def _bad(path: Path, line: int, why: str) -> GenlabError:
    return GenlabError(f"--prompts {path} line {line}: {why}; see the format in docs/geneval.md")


def _object(path: Path, line: int, item) -> ObjectSpec:
    if not isinstance(item, dict) or not set(item) <= {"shape", "colour", "size"}:
        raise _bad(path, line, 'each object must be {"shape": ..., "colour": ..., "size": ...} (colour, size optional)')
    shape, colour, size = item.get("shape"), item.get("colour"), item.get("size")
    if shape not in KINDS:
        raise _bad(path, line, f"object shape {shape!r} is not one of {', '.join(KINDS)}")
    if colour is not None and colour not in COLOURS:
        raise _bad(path, line, f"object colour {colour!r} is not one of {', '.join(COLOURS)}")
    if size is not None and size not in SIZES:
        raise _bad(path, line, f"object size {size!r} is not one of {', '.join(SIZES)}")
    return ObjectSpec(shape, colour, size)


def parse_prompt(item, *, path: Path = Path("<suite>"), line: int = 1) -> Prompt:
    """One prompt from its JSON object (see the module docstring); GenlabError naming the line when invalid."""
    if not isinstance(item, dict):
        raise _bad(path, line, "each line must be one JSON object")
    if unknown := set(item) - KEYS:
        raise _bad(path, line, f"unknown key(s) {', '.join(sorted(unknown))}; use {', '.join(sorted(KEYS))}")
    text, category = item.get("prompt"), item.get("category")
    if not isinstance(text, str) or not text.strip():
        raise _bad(path, line, '"prompt" must be a non-empty string')
    if not isinstance(category, str) or not category.strip():
        raise _bad(path, line, '"category" must be a non-empty string, e.g. one of ' + ", ".join(CATEGORIES))
    objects = item.get("objects")
    if not isinstance(objects, list) or not 1 <= len(objects) <= MAX_COUNT:
        raise _bad(path, line, f'"objects" must be a list of 1 to {MAX_COUNT} objects')
    objs = tuple(_object(path, line, o) for o in objects)
    count, relation = item.get("count"), item.get("relation")
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
            raise _bad(path, line, f'"count" must be an integer from 1 to {MAX_COUNT}')
        if len(objs) != 1:
            raise _bad(path, line, '"count" counts copies of one object: give exactly one object')
    if relation is not None:
        if relation not in RELATIONS:
            raise _bad(path, line, f'"relation" {relation!r} is not one of {", ".join(RELATIONS)}')
        if len(objs) != 2:
            raise _bad(path, line, '"relation" relates objects[0] to objects[1]: give exactly two objects')
    spec = item.get("spec", f"line {line}")
    return Prompt(" ".join(text.split()), category.strip(), objs, count, relation, str(spec))


def load_suite(prompts: str | Path) -> Suite:
    """'builtin' or a JSON-lines prompt file (module docstring); GenlabError with a one-line fix when invalid."""
    if str(prompts) == "builtin":
        return builtin_suite()
    path = Path(prompts).expanduser()
    if not path.is_file():
        raise GenlabError(f"--prompts {path}: no such file; use --prompts builtin or a JSON-lines prompt file")
    out = []
    for i, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except json.JSONDecodeError as e:
            raise _bad(path, i, f"not valid JSON ({e.msg})") from None
        out.append(parse_prompt(item, path=path, line=i))
    if not out:
        raise GenlabError(f"--prompts {path}: the file holds no prompts; write one JSON object per line")
    return Suite(out, str(path))


# ----------------------------------------------------------------------------- scoring


def detect_objects(image: np.ndarray, *, min_pixels: int | None = None) -> list[Detected]:
    """Objects in one uint8 (H, W, 3) image, largest first: each pixel takes the nearest of black and the 8 named
    colours; an object is an 8-connected component of non-black pixels (>= min_pixels), its colour the named
    colour most of its pixels take, its kind, size and centre as `genlab.metrics.t2i.detect` reads them. Unlike
    that detector, a shape drawn in a blend of two named colours stays one object (shapes never touch in the
    data: there are >= 2 empty pixels between them)."""
    return [d for d, _ in object_masks(image, min_pixels=min_pixels)]


def object_masks(image: np.ndarray, *, min_pixels: int | None = None) -> list[tuple[Detected, np.ndarray]]:
    """The objects of `detect_objects`, each with its boolean pixel mask (H, W), largest first."""
    scale = image.shape[0] / 32
    min_pixels = min_pixels or max(4, round(8 * scale**2))
    nearest = ((image[:, :, None, :].astype(np.float32) - PALETTE) ** 2).sum(-1).argmin(-1)  # (H, W) palette index
    threshold = (HALF_EXTENT["small"] + HALF_EXTENT["large"]) * scale
    labels, count = ndimage.label(nearest > 0, structure=np.ones((3, 3)))
    found = []
    for k in range(1, count + 1):
        mask = labels == k
        ys, xs = np.nonzero(mask)
        if len(ys) >= min_pixels:
            votes = np.bincount(nearest[ys, xs], minlength=len(NAMES))
            found.append((describe(ys, xs, NAMES[int(votes[1:].argmax()) + 1], threshold), mask))
    return sorted(found, key=lambda o: -o[0].pixels)


def _matches(o: ObjectSpec, d: Detected) -> bool:
    """Whether a detected object is the spec object (an unstated colour, size or shape matches any)."""
    return (
        (o.shape is None or d.kind == o.shape)
        and (o.colour is None or d.colour == o.colour)
        and (o.size is None or d.size == o.size)
    )


def _assign(objects: tuple[ObjectSpec, ...], found: list[Detected], taken: frozenset = frozenset()):
    """A list of distinct detected indices matching `objects` in order (backtracking), or None."""
    if not objects:
        return []
    for i, d in enumerate(found):
        if i not in taken and _matches(objects[0], d):
            rest = _assign(objects[1:], found, taken | {i})
            if rest is not None:
                return [i, *rest]
    return None


def score_image(image: np.ndarray, prompt: Prompt) -> dict[str, bool]:
    """Scores of one uint8 (H, W, 3) image: 'correct' and its parts ('objects': each object found in colour,
    shape and size; 'colour' / 'shape': each found by that alone; 'count': exactly `count` copies (counting
    specs; None otherwise); 'relation': objects found and the relation holds (position specs; None otherwise))
    and 'extra': more objects than the spec asks for."""
    found = detect_objects(image)
    objects = prompt.objects if prompt.count is None else prompt.objects * prompt.count
    colour_ok = _assign_any(tuple(replace(o, shape=None, size=None) for o in objects), found)
    shape_ok = _assign_any(tuple(replace(o, colour=None, size=None) for o in objects), found)
    relation = True
    if prompt.relation is None:
        match = _assign(objects, found)
    else:  # the relation decides between assignments when several objects match
        match, relation = None, False
        for i, d in enumerate(found):
            if not _matches(objects[0], d):
                continue
            for j, e in enumerate(found):
                if j != i and _matches(objects[1], e):
                    match = [i, j]
                    if relation_of(e.cx - d.cx, e.cy - d.cy) == prompt.relation:
                        relation = True
                        break
            if relation:
                break
    present = match is not None
    count = present
    if prompt.count is not None:
        count = sum(_matches(prompt.objects[0], d) for d in found) == prompt.count
    return {
        "correct": present and count and relation,
        "objects": present,
        "colour": colour_ok,
        "shape": shape_ok,
        "count": count if prompt.count is not None else None,
        "relation": (present and relation) if prompt.relation is not None else None,
        "extra": len(found) > len(objects),
    }


def _assign_any(objects: tuple[ObjectSpec, ...], found: list[Detected]) -> bool:
    """Whether distinct detected objects match `objects` (in any assignment)."""
    pools = [[i for i, d in enumerate(found) if _matches(o, d)] for o in objects]

    def go(k: int, taken: frozenset) -> bool:
        if k == len(pools):
            return True
        return any(go(k + 1, taken | {i}) for i in pools[k] if i not in taken)

    return go(0, frozenset())


def scene_of(prompt: Prompt, rng: np.random.Generator) -> Scene:
    """A shapes scene that satisfies the prompt: unstated colours (distinct) and sizes drawn from `rng`; counting
    scenes of three or more shapes are small where the size is unstated, so that they fit."""
    objects = prompt.objects if prompt.count is None else prompt.objects * prompt.count
    free = [c for c in COLOURS if c not in {o.colour for o in objects}]
    shapes = []
    for o in objects:
        colour = o.colour or free.pop(int(rng.integers(len(free))))
        size = o.size or ("small" if len(objects) > 2 else SIZES[int(rng.integers(len(SIZES)))])
        shapes.append(Shape(colour, o.shape, size))
    return Scene(tuple(shapes), prompt.relation)


def render_prompts(prompts: list[Prompt], *, seed: int = 0, image_size: int = 32) -> Tensor:
    """Renders (N, 3, H, W) in [-1, 1] of the prompts' specs by the shapes renderer, prompt i from (seed, i)."""
    images = []
    for i, p in enumerate(prompts):
        rng = np.random.default_rng([seed, i])
        scene = scene_of(p, rng)
        images.append(draw(scene, layout(scene, rng, image_size=image_size), image_size=image_size))
    return uint8_to_tensor(np.stack(images))


def _interval(values: dict[str, list[float]], seed: int) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the image-weighted mean, resampling specs (dict: spec -> scores)."""
    groups = list(values.values())
    if len(groups) < 2:
        return (float("nan"), float("nan"))
    sums = np.array([sum(g) for g in groups])
    sizes = np.array([len(g) for g in groups])
    pick = np.random.default_rng(seed).integers(0, len(groups), size=(BOOTSTRAP, len(groups)))
    means = sums[pick].sum(1) / sizes[pick].sum(1)
    return (float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975)))


def _mean(values: list) -> float:
    """Mean of the values that apply (None: the part does not apply to the prompt); nan when none applies."""
    kept = [float(v) for v in values if v is not None]
    return float(np.mean(kept)) if kept else float("nan")


def report_row(scores: list[dict], prompts: list[Prompt], *, seed: int) -> dict:
    """Per-category accuracy (+ interval, parts, extra rate), overall, seen vs held-out pairs."""
    by_cat: dict[str, dict[str, list]] = {}
    for s, p in zip(scores, prompts):
        by_cat.setdefault(p.category, {}).setdefault(p.spec, []).append(s)
    categories = {}
    for cat in [c for c in CATEGORIES if c in by_cat] + sorted(set(by_cat) - set(CATEGORIES)):
        groups = by_cat[cat]
        flat = [s for g in groups.values() for s in g]
        correct = {k: [float(s["correct"]) for s in g] for k, g in groups.items()}
        lo, hi = _interval(correct, seed)
        categories[cat] = {
            "accuracy": float(np.mean([s["correct"] for s in flat])),
            "ci95": [lo, hi],
            "images": len(flat),
            "specs": len(groups),
            "extra_rate": float(np.mean([s["extra"] for s in flat])),
            **{k: _mean([s[k] for s in flat]) for k in ("objects", "colour", "shape", "count", "relation")},
        }
    overall = float(np.mean([c["accuracy"] for c in categories.values()]))
    # overall's interval: bootstrap each category's specs independently, average the category means
    rng = np.random.default_rng(seed + 1)
    draws = np.zeros(BOOTSTRAP)
    for cat in categories:
        groups = list(by_cat[cat].values())
        sums = np.array([sum(float(s["correct"]) for s in g) for g in groups])
        sizes = np.array([len(g) for g in groups])
        pick = rng.integers(0, len(groups), size=(BOOTSTRAP, len(groups)))
        draws += sums[pick].sum(1) / sizes[pick].sum(1)
    draws /= len(categories)
    split = {}
    for name, keep in (("seen", False), ("heldout", True)):
        groups: dict[str, list[float]] = {}
        for s, p in zip(scores, prompts):
            if p.coloured and p.heldout == keep:
                groups.setdefault(p.spec, []).append(float(s["correct"]))
        flat = [v for g in groups.values() for v in g]
        split[name] = {
            "accuracy": float(np.mean(flat)) if flat else float("nan"),
            "ci95": list(_interval(groups, seed)),
            "images": len(flat),
            "specs": len(groups),
        }
    return {
        "overall": overall,
        "overall_ci95": [float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))],
        "categories": categories,
        "pairs": split,
        "heldout_gap": split["seen"]["accuracy"] - split["heldout"]["accuracy"],
        "extra_rate": float(np.mean([s["extra"] for s in scores])),
        "images": len(scores),
    }


def score_images(images: Tensor, prompts: list[Prompt], *, seed: int = 0) -> dict:
    """The report row of images (N, 3, H, W) in [-1, 1], image i made for prompts[i]."""
    if len(images) != len(prompts):
        raise GenlabError(f"scoring needs one prompt per image, got {len(images)} images and {len(prompts)} prompts")
    pixels = tensor_to_uint8(images.detach().cpu().float().clamp(-1, 1))
    return report_row([score_image(img, p) for img, p in zip(pixels, prompts)], prompts, seed=seed)


def shuffled(prompts: list[Prompt], *, seed: int = 0) -> list[Prompt]:
    """The prompts reassigned so that none keeps a prompt of its own spec (for the chance row): specs in a
    seeded order, laid end to end, each position taking the prompt one largest-spec length further on."""
    rng = np.random.default_rng(seed)
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(p.spec, []).append(i)
    keys = list(groups)
    order = [i for k in rng.permutation(len(keys)) for i in rng.permutation(groups[keys[k]])]
    shift = max(len(g) for g in groups.values())
    if 2 * shift > len(prompts):
        raise GenlabError("cannot shuffle the prompts away from their own specs: no spec may hold half the prompts")
    out: list[Prompt | None] = [None] * len(prompts)
    for pos, i in enumerate(order):
        out[i] = prompts[order[(pos + shift) % len(order)]]
    return out


def geneval(
    generate: Callable[[list[str], int], Tensor] | None,
    suite: Suite,
    *,
    n_per_prompt: int = 4,
    seed: int = 0,
    image_size: int = 32,
    reconstruct: Callable[[Tensor], Tensor] | None = None,
) -> dict:
    """The report: rows 'model' (`generate(texts, seed) -> images (N, 3, H, W) in [-1, 1]`, each prompt
    n_per_prompt times; skipped when generate is None), 'real' (the specs rendered by the shapes renderer and
    scored by the same checker: the ceiling, 100 % by construction), 'autoencoder' (those renders through
    `reconstruct`, a latent model's encode -> decode: the ceiling its decoder leaves; only when given) and
    'shuffled' (renders scored against another spec's prompt: chance)."""
    if n_per_prompt < 1:
        raise GenlabError(f"--n-per-prompt must be >= 1, got {n_per_prompt}")
    prompts = [p for p in suite.prompts for _ in range(n_per_prompt)]
    real = render_prompts(prompts, seed=seed, image_size=max(32, image_size))
    rows = {}
    if generate is not None:
        import time

        start = time.perf_counter()
        fake = generate([p.text for p in prompts], seed)
        seconds = time.perf_counter() - start
        if fake.dim() != 4 or fake.shape[0] != len(prompts):
            raise GenlabError(
                f"generate returned {tuple(fake.shape)} for {len(prompts)} prompts; expected (N, 3, H, W)"
            )
        rows["model"] = {**score_images(fake, prompts, seed=seed), "generate_seconds": round(seconds, 2)}
    rows["real"] = score_images(real, prompts, seed=seed)
    if reconstruct is not None:
        rows["autoencoder"] = score_images(reconstruct(real), prompts, seed=seed)
    rows["shuffled"] = score_images(real, shuffled(prompts, seed=seed), seed=seed)
    counts = {c: sum(p.category == c for p in suite.prompts) for c in dict.fromkeys(p.category for p in suite.prompts)}
    return {
        "suite": {
            "name": suite.name,
            "prompts": len(suite.prompts),
            "specs": len({p.spec for p in suite.prompts}),
            "prompts_per_category": counts,
            "n_per_prompt": n_per_prompt,
            "seed": seed,
        },
        "rows": rows,
    }


# ----------------------------------------------------------------------------- the markdown report

ROW_NAMES = {
    "model": "model",
    "real": "real renders (ceiling)",
    "autoencoder": "real renders through the autoencoder (the decoder's ceiling)",
    "shuffled": "shuffled captions (chance)",
}


def _pct(v: float | None) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def _ci(ci) -> str:
    lo, hi = ci
    return "" if lo is None or (isinstance(lo, float) and math.isnan(lo)) else f" [{_pct(lo)}, {_pct(hi)}]"


def markdown(report: dict, *, title: str = "GenEval-style prompt suite (shapes)") -> str:
    """geneval.md: one row per image source, accuracy % [95 % interval] per category, overall, pairs, extras."""
    rows = report["rows"]
    cats = list(next(iter(rows.values()))["categories"])
    head = ["images", "overall", *cats, "seen pairs", "held-out pairs", "extra object"]
    lines = [
        f"# {title}",
        "",
        f"suite: {report['suite']['name']}, {report['suite']['prompts']} prompts "
        f"({report['suite']['specs']} specs), {report['suite']['n_per_prompt']} image(s) per prompt; "
        "accuracy in % with a 95 % bootstrap interval over specs; overall = mean over categories.",
        "",
    ]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, r in rows.items():
        cells = [ROW_NAMES.get(key, key), f"{_pct(r['overall'])}{_ci(r['overall_ci95'])}"]
        cells += [f"{_pct(r['categories'][c]['accuracy'])}{_ci(r['categories'][c]['ci95'])}" for c in cats]
        cells += [f"{_pct(r['pairs'][s]['accuracy'])}{_ci(r['pairs'][s]['ci95'])}" for s in ("seen", "heldout")]
        cells.append(_pct(r["extra_rate"]))
        lines.append("| " + " | ".join(cells) + " |")
    if "model" in rows:
        lines += [
            "",
            "Parts of the model's images (%): every object found (colour, shape, size as stated), colours alone, "
            "shapes alone, count (counting), relation (position), images with an extra object.",
            "",
        ]
        parts = ("objects", "colour", "shape", "count", "relation", "extra_rate")
        lines += ["| category | " + " | ".join(parts) + " |", "|---|" + "---|" * len(parts)]
        for c in cats:
            lines.append(f"| {c} | " + " | ".join(_pct(rows["model"]["categories"][c][k]) for k in parts) + " |")
    return "\n".join(lines) + "\n"


def write_geneval(report: dict, out: str | Path) -> Path:
    """Write geneval.json and geneval.md into the folder `out` atomically; return geneval.json's path."""
    from genlab.atomic import atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = atomic_write_text(out / "geneval.json", json.dumps(json_safe(report), indent=2))
    atomic_write_text(out / "geneval.md", markdown(report))
    return path


def json_safe(value):
    """`value` with non-finite floats as None (JSON null)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def suite_lines(suite: Suite) -> str:
    """The suite as JSON lines (the --prompts FILE format)."""
    return "".join(json.dumps(p.as_dict()) + "\n" for p in suite.prompts)
