"""Procedural captioned shapes: 1–2 solid shapes in named colours on black, with a caption grammar.

A scene is 1–2 `Shape`s (colour from 8 fixed RGB values, kind circle/square/triangle, size small/large)
at integer centres; shapes keep a gap of >= 2 pixels, so they never touch. Two shapes carry a spatial
relation of the first to the second (left/right/above/below) that holds on the dominant axis of the centre
displacement (|dx| > |dy| for left/right); "two shapes: ..." captions state none. Each caption is drawn
from a few templates and `parse_caption` inverts every one of them. Held-out colour×kind pairs
(`HELDOUT_PAIRS`) never appear in 'train' or 'test'; every 'heldout' scene contains at least one.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace
from typing import Annotated, Literal

import numpy as np
import torch

from genlab.constraints import PositiveInt, Probability, Range, Seed, require
from genlab.data.base import Dataset
from genlab.data.images import uint8_to_tensor
from genlab.errors import GenlabError

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "magenta": (255, 0, 255),
    "cyan": (0, 255, 255),
    "white": (255, 255, 255),
    "orange": (255, 128, 0),
}
KINDS = ("circle", "square", "triangle")
SIZES = ("small", "large")
RELATIONS = ("left of", "right of", "above", "below")
HALF_EXTENT = {"small": 4, "large": 7}  # half the bounding-box side, in pixels of a 32×32 image
GAP = 2  # minimum empty pixels between two shapes' bounding boxes
HELDOUT_PAIRS = frozenset({("green", "triangle"), ("yellow", "circle"), ("magenta", "square"), ("cyan", "triangle")})
SPLITS = {"train": 0, "test": 1, "heldout": 2}
NULL_CAPTION = ""  # the empty caption, used as the unconditional prompt
MIX = (0.3, 0.15, 0.4, 0.15)  # full grammar: shares of one shape, counting, relation, unrelated pair (ShapesConfig.mix)
UNCOLOURED = 0.15  # full grammar: the share of captions that state no colour (ShapesConfig.uncoloured)


@dataclass(frozen=True)
class Shape:
    colour: str
    kind: str
    size: str | None = None  # None: not stated (a parsed caption may omit the size)


@dataclass(frozen=True)
class Scene:
    shapes: tuple[Shape, ...]
    relation: str | None = None  # relation of shapes[0] to shapes[1]; None for one shape or "two shapes:"


@dataclass
class ShapesConfig:
    kind: str = "shapes"
    n: PositiveInt = 5000  # images in the 'train' split
    n_test: PositiveInt = 500  # images in each of 'test' and 'heldout'
    size: Annotated[int, Range(32)] = 32  # the shapes are laid out for 32x32 or larger
    seed: Seed = 0
    labels: bool = False  # True: label = first shape's kind × colour (24 classes, for feature nets)
    # basic: 1–2 shapes, the captions above. full: also counting scenes (2–4 copies of one shape: "three red
    # squares"), every pair stated in either order ("B right of A" for "A left of B") and, 15 % of the time
    # (uncoloured), no colour stated (the shapes keep theirs). ordered: full, but a relation is always stated from
    # the left (top) shape ("A left of B", "A above B"), so the first-named shape's side follows from the axis
    # alone. No grammar holds a wording of the GenEval-style suite (tested)
    grammar: Literal["basic", "full", "ordered"] = "basic"
    # how a pair without a relation is captioned. prefixed: always "two shapes: A and B". varied: that or, in equal
    # shares, "A as well as B", "A plus B", "A alongside B" (PAIR_FORMS), so that two named shapes, not the prefix,
    # ask for two objects; the same scenes, images and random draws either way. None is a suite wording (tested)
    pairs: Literal["prefixed", "varied"] = "prefixed"
    # grammar full / ordered: the shares of the four kinds of scene, in this order: one shape, a counting scene, two
    # shapes with a relation, two shapes without one (the only captions of two shapes that state no relation). They
    # must add up to 1; the default is the mix every recipe before this field was trained on
    mix: tuple[Probability, Probability, Probability, Probability] = MIX
    # grammar full / ordered: the share of captions that state no colour ("a circle and a square"; the shapes keep
    # their colours)
    uncoloured: Probability = UNCOLOURED
    # grammar full / ordered: that share for the captions of two shapes without a relation alone, as the two-objects
    # prompts state no colour; None: `uncoloured`, as for every other scene
    uncoloured_pairs: Probability | None = None
    # grammar full / ordered: the share of captions reworded in a second set of templates (`reworded`: "there is a
    # red circle", "a circle in red", "both A and B", "A with B", "red circle is above blue square", "A higher than
    # B", "a group of three red squares", "3 red squares in the picture", ...), none a suite wording either
    # (tested); 0: none, the same captions and draws as before
    paraphrase: Probability = 0.0
    # the forms `paraphrase` draws from. first: those above. wider: those and more, none a suite wording either
    # (tested): relations stated from either shape in new words ("A at the left of B", "A with B to its right", "A
    # on the left and B on the right", "A higher up than B"), pairs without articles ("circle and also square",
    # "circle, square"), "just a circle", "a circle alone". relations: the first forms and, for a relation, as many
    # again in words the first forms do not use ("A atop B", "A up above B", "A underneath B", "A down below B", "A
    # leftward of B", "A at the right of B"; none a suite wording either, tested). first keeps the captions of
    # recipes trained before it
    paraphrase_forms: Literal["first", "wider", "relations"] = "first"
    # grammar full / ordered: the share of captions that open with a request or a frame (REQUESTS: "sketch three red
    # squares", "a scene with a circle plus square"), as users write prompts; none a suite opening ("draw", "an image
    # with"; tested). 0: none, the same captions and draws as before
    requests: Probability = 0.0

    def __post_init__(self) -> None:
        require(
            abs(sum(self.mix) - 1) < 1e-6,
            "mix",
            f"must add up to 1 (one shape, counting, relation, pair), got {list(self.mix)} (sum {sum(self.mix):g})",
        )


# ----------------------------------------------------------------------------- captions


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def bare(shape: Shape) -> str:
    """The words of `shape` without an article: "small red circle" (size and colour where stated)."""
    return " ".join(w for w in (shape.size, shape.colour, shape.kind) if w)


def _phrase(shape: Shape, *, article: str | None = None) -> str:
    words = bare(shape)
    return f"{article or _article(words)} {words}"


_REL_WORDS = {"left of": "to the left of", "right of": "to the right of", "above": "above", "below": "below"}
INVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
COUNT_WORDS = ("one", "two", "three", "four")
MAX_COPIES = 4  # counting scenes (grammar full) hold 2..MAX_COPIES copies of one shape


def is_count(scene: Scene) -> bool:
    """Two or more copies of one shape with no relation: captioned "three red squares" by the full grammar."""
    return len(scene.shapes) >= 2 and scene.relation is None and len(set(scene.shapes)) == 1


def is_pair(scene: Scene) -> bool:
    """Two different shapes with no relation: "two shapes: A and B" (or a varied form) by the full grammar."""
    return len(scene.shapes) == 2 and scene.relation is None and not is_count(scene)


PAIR_FORMS = ("two shapes: {a} and {b}", "{a} as well as {b}", "{a} plus {b}", "{a} alongside {b}")


def caption(scene: Scene, *, template: int = 0, pairs: str = "prefixed") -> str:
    """The caption of `scene` in template number `template` (taken modulo the number of templates); `pairs`: how a
    pair without a relation is worded (ShapesConfig.pairs)."""
    if len(scene.shapes) == 1:
        obj = scene.shapes[0]
        forms = (
            _phrase(obj),
            f"{_phrase(obj)} on a black background",
            f"a picture of {_phrase(obj)}",
            _phrase(obj, article="one"),
        )
        return forms[template % len(forms)]
    a, b = (_phrase(s) for s in scene.shapes)
    if scene.relation is None:
        return PAIR_FORMS[template % len(PAIR_FORMS) if pairs == "varied" else 0].format(a=a, b=b)
    rel = _REL_WORDS[scene.relation]
    return (f"{a} {rel} {b}", f"{a} is {rel} {b}")[template % 2]


def caption_full(
    scene: Scene,
    rng: np.random.Generator,
    *,
    ordered: bool = False,
    pairs: str = "prefixed",
    paraphrase: float = 0.0,
    words: np.random.Generator | None = None,
    forms: str = "first",
) -> str:
    """A caption of the full grammar (see ShapesConfig.grammar) for a scene whose sizes (and colours) are as stated;
    `ordered`: a relation is stated from the left (top) shape; `pairs`: ShapesConfig.pairs (the same draws from
    `rng` either way); `paraphrase`: the probability that the caption is `reworded` instead, drawn from `words`
    (default `rng`; no draw when 0) among `forms` (ShapesConfig.paraphrase_forms)."""
    if is_count(scene):
        s = scene.shapes[0]
        text = f"{COUNT_WORDS[len(scene.shapes) - 1]} {bare(s)}s"
    else:
        if len(scene.shapes) == 2:
            a, b = scene.shapes
            other_way = rng.random() < 0.5
            if ordered and scene.relation is not None:
                other_way = scene.relation in ("right of", "below")
            if other_way:  # the same picture stated the other way round
                scene = Scene((b, a), None if scene.relation is None else INVERSE[scene.relation])
        text = caption(scene, template=int(rng.integers(0, 4)), pairs=pairs)
    words = rng if words is None else words
    return reworded(scene, words, forms=forms) if paraphrase > 0 and words.random() < paraphrase else text


# the openings of ShapesConfig.requests, each followed by a whole caption of either set of templates
REQUESTS = (
    "show",
    "sketch",
    "paint",
    "make",
    "create",
    "render",
    "generate",
    "depict",
    "a scene with",
    "a canvas with",
    "a picture showing",
    "an illustration of",
)


def requested(text: str, rng: np.random.Generator) -> str:
    """`text` opened by one of REQUESTS, drawn uniformly from `rng`."""
    return f"{REQUESTS[int(rng.integers(0, len(REQUESTS)))]} {text}"


_REL_MORE = {"left of": "further left", "right of": "further right", "above": "higher", "below": "lower"}
# the wider forms (ShapesConfig.paraphrase_forms): A's relation to B in other words, B's to A ("A with B to its
# right" for A left of B) and the sides of both ("A on the left and B on the right")
_REL_AT = {
    "left of": "at the left of",
    "right of": "at the right of",
    "above": "higher up than",
    "below": "lower down than",
}
_REL_ITS = {"left of": "to its right", "right of": "to its left", "above": "below it", "below": "above it"}
_SIDES = {
    "left of": ("on the left", "on the right"),
    "right of": ("on the right", "on the left"),
    "above": ("at the top", "at the bottom"),
    "below": ("at the bottom", "at the top"),
}

# the relations forms: two more words for each relation
_REL_SYN = {
    "left of": ("at the left of", "leftward of"),
    "right of": ("at the right of", "rightward of"),
    "above": ("atop", "up above"),
    "below": ("underneath", "down below"),
}


def reworded(scene: Scene, rng: np.random.Generator, *, forms: str = "first") -> str:
    """A caption of `scene` (as stated, in its order) in the second set of templates (ShapesConfig.paraphrase),
    one drawn uniformly from the forms of its kind of scene (`forms`: ShapesConfig.paraphrase_forms);
    `parse_caption` inverts every one."""
    wider, relations = forms == "wider", forms == "relations"
    if is_count(scene):
        s, n = scene.shapes[0], len(scene.shapes)
        options = (f"a group of {COUNT_WORDS[n - 1]} {bare(s)}s", f"{COUNT_WORDS[n - 1]} {bare(s)}s in all")
        options += (f"{n} {bare(s)}s in the picture",)
    elif len(scene.shapes) == 1:
        s = scene.shapes[0]
        options = (f"there is {_phrase(s)}", f"{_phrase(s)} by itself", f"only {_phrase(s)}")
        if s.colour:
            options += (f"{_phrase(replace(s, colour=None))} in {s.colour}",)
        if wider:
            options += (f"just {_phrase(s)}", f"{_phrase(s)} alone")
    else:
        (a, b), (ba, bb) = (_phrase(s) for s in scene.shapes), (bare(s) for s in scene.shapes)
        if scene.relation is None:
            options = (f"both {a} and {b}", f"{a} with {b}", f"{ba} plus {bb}", f"{ba} with {bb}")
            if wider:
                options += (f"{ba} and also {bb}", f"{ba}, {bb}")
        else:
            r = scene.relation
            options = (f"{a} sits {_REL_WORDS[r]} {b}", f"{ba} is {_REL_WORDS[r]} {bb}", f"{a} {_REL_MORE[r]} than {b}")
            if wider:
                options += (f"{a} {_REL_AT[r]} {b}", f"{a} with {b} {_REL_ITS[r]}")
                options += (f"{a} {_SIDES[r][0]} and {b} {_SIDES[r][1]}",)
            if relations:
                one, two = _REL_SYN[r]
                options += (f"{a} {one} {b}", f"{a} {two} {b}", f"{ba} {two} {bb}")
    return options[int(rng.integers(0, len(options)))]


_OBJ = rf"(?:a|an|one) (?:({'|'.join(SIZES)}) )?(?:({'|'.join(COLOURS)}) )?({'|'.join(KINDS)})"
_ONE = re.compile(rf"^(?:a picture of )?{_OBJ}(?: on a black background)?$")
_REL = re.compile(rf"^{_OBJ} (?:is )?(to the left of|to the right of|above|below) {_OBJ}$")
_TWO = re.compile(rf"^two shapes: {_OBJ} and {_OBJ}$|^{_OBJ} (?:as well as|plus|alongside) {_OBJ}$")
_COUNT = re.compile(
    rf"^({'|'.join(COUNT_WORDS[1:])}) (?:({'|'.join(SIZES)}) )?(?:({'|'.join(COLOURS)}) )?({'|'.join(KINDS)})s$"
)
_REL_NAMES = {v: k for k, v in _REL_WORDS.items()}
# the second set of templates (`reworded`); _BARE is an object without its article
_BARE = rf"(?:({'|'.join(SIZES)}) )?(?:({'|'.join(COLOURS)}) )?({'|'.join(KINDS)})"
_ONE_AGAIN = re.compile(rf"^there is {_OBJ}$|^{_OBJ} by itself$|^only {_OBJ}$|^just {_OBJ}$|^{_OBJ} alone$")
_ONE_IN = re.compile(rf"^(?:a|an) (?:({'|'.join(SIZES)}) )?({'|'.join(KINDS)}) in ({'|'.join(COLOURS)})$")
_REL_AGAIN = re.compile(
    rf"^{_OBJ} sits (to the left of|to the right of|above|below) {_OBJ}$"
    rf"|^{_BARE} is (to the left of|to the right of|above|below) {_BARE}$"
)
_TWO_AGAIN = re.compile(
    rf"^both {_OBJ} and {_OBJ}$|^{_OBJ} with {_OBJ}$|^{_BARE} (?:plus|with|and also) {_BARE}$|^{_BARE}, {_BARE}$"
)
_REL_ITS_NAMES = {v: k for k, v in _REL_ITS.items()}
_REL_ITS_RE = re.compile(rf"^{_OBJ} with {_OBJ} ({'|'.join(_REL_ITS.values())})$")
# "A <words> B" of `reworded` other than "sits": the words name the relation ("higher than", "at the left of", "atop")
_SYN_NAMES = {w: k for k, pair in _REL_SYN.items() for w in pair}
_REL_NAMED = {**{f"{v} than": k for k, v in _REL_MORE.items()}, **{v: k for k, v in _REL_AT.items()}, **_SYN_NAMES}
_REL_WORDED = re.compile(rf"^{_OBJ} ({'|'.join(_REL_NAMED)}) {_OBJ}$|^{_BARE} ({'|'.join(_SYN_NAMES)}) {_BARE}$")
_SIDES_NAMES = {v: k for k, v in _SIDES.items()}
_SIDE = f"({'|'.join(sorted({w for pair in _SIDES.values() for w in pair}))})"
_SIDES_RE = re.compile(rf"^{_OBJ} {_SIDE} and {_OBJ} {_SIDE}$")
_WORD = rf"({'|'.join(COUNT_WORDS[1:])})"
_REQUEST = re.compile(rf"^(?:{'|'.join(REQUESTS)}) (.+)$")
_COUNT_AGAIN = re.compile(
    rf"^a group of {_WORD} {_BARE}s$|^{_WORD} {_BARE}s in all$|^([2-{MAX_COPIES}]) {_BARE}s in the picture$"
)


def _matched(m: re.Match, width: int, key: int) -> tuple:
    """The groups of the alternative of `m` that matched: the alternatives hold `width` groups each, and group
    `key` of an alternative is set exactly when it matched."""
    groups = m.groups()
    return next(groups[i : i + width] for i in range(0, len(groups), width) if groups[i + key])


def _two(m: re.Match) -> Scene:
    """The scene of two objects from a match of alternatives of two objects (size, colour, kind each)."""
    g = _matched(m, 6, 2)
    return Scene((Shape(g[1], g[2], g[0]), Shape(g[4], g[5], g[3])))


def parse_caption(text: str) -> Scene | None:
    """The scene a caption states (sizes None where unstated), or None if it is not in the grammar (either set of
    templates)."""
    text = " ".join(text.lower().strip().rstrip(".").split())
    if m := _REQUEST.match(text):  # a request opening a caption: the caption's scene
        text = m[1]
    if m := _ONE.match(text):
        return Scene((Shape(m[2], m[3], m[1]),))
    if m := _ONE_AGAIN.match(text):
        g = _matched(m, 3, 2)
        return Scene((Shape(g[1], g[2], g[0]),))
    if m := _ONE_IN.match(text):
        return Scene((Shape(m[3], m[2], m[1]),))
    if m := _REL.match(text):
        return Scene((Shape(m[2], m[3], m[1]), Shape(m[6], m[7], m[5])), _REL_NAMES[m[4]])
    if m := _REL_AGAIN.match(text):
        g = _matched(m, 7, 2)  # the "sits" form's groups or the bare form's
        return Scene((Shape(g[1], g[2], g[0]), Shape(g[5], g[6], g[4])), _REL_NAMES[g[3]])
    if m := _REL_WORDED.match(text):
        g = _matched(m, 7, 2)  # the form with articles or the bare one
        return Scene((Shape(g[1], g[2], g[0]), Shape(g[5], g[6], g[4])), _REL_NAMED[g[3]])
    if m := _REL_ITS_RE.match(text):
        return Scene((Shape(m[2], m[3], m[1]), Shape(m[5], m[6], m[4])), _REL_ITS_NAMES[m[7]])
    if (m := _SIDES_RE.match(text)) and (relation := _SIDES_NAMES.get((m[4], m[8]))):
        return Scene((Shape(m[2], m[3], m[1]), Shape(m[6], m[7], m[5])), relation)
    if m := _TWO.match(text) or _TWO_AGAIN.match(text):
        return _two(m)
    if m := _COUNT.match(text):
        return Scene((Shape(m[3], m[4], m[2]),) * (COUNT_WORDS.index(m[1]) + 1))
    if m := _COUNT_AGAIN.match(text):
        g = _matched(m, 4, 0)
        n = int(g[0]) if g[0].isdigit() else COUNT_WORDS.index(g[0]) + 1
        return Scene((Shape(g[2], g[3], g[1]),) * n)
    return None


# ----------------------------------------------------------------------------- layout and rendering


def half_extent(size_name: str, image_size: int = 32) -> int:
    return max(2, round(HALF_EXTENT[size_name] * image_size / 32))


def relation_of(dx: float, dy: float) -> str:
    """Relation of A to B from the displacement B − A (image y points down), on the dominant axis."""
    if abs(dx) > abs(dy):
        return "left of" if dx > 0 else "right of"
    return "above" if dy > 0 else "below"


def layout(scene: Scene, rng: np.random.Generator, *, image_size: int = 32, rounds: int = 50) -> list[tuple[int, int]]:
    """Integer centres (cx, cy) for the scene's shapes: inside the image, >= GAP apart, relation satisfied.

    Rejection sampling, vectorised: rounds of 64 uniform candidate layouts; the first valid one is kept.
    Three or more shapes (counting scenes, never drawn by `sample_scene`) take relation None, every pair >= GAP apart.
    """
    halves = np.array([half_extent(s.size or "small", image_size) for s in scene.shapes])
    lo, hi = np.repeat(halves, 2), np.repeat(image_size - halves + 1, 2)  # per coordinate (x0, y0, x1, y1)
    if len(halves) > 2:
        return _layout_many(scene, halves, lo, hi, rng, image_size=image_size, rounds=rounds)
    for _ in range(rounds):
        cand = rng.integers(lo, hi, size=(64, len(lo)))  # (64, 2·shapes)
        if len(halves) == 1:
            return [(int(cand[0, 0]), int(cand[0, 1]))]
        ok = _valid(cand[:, 2] - cand[:, 0], cand[:, 3] - cand[:, 1], halves.sum(), scene.relation)
        if ok.any():
            x0, y0, x1, y1 = (int(v) for v in cand[int(ok.argmax())])
            return [(x0, y0), (x1, y1)]
    raise GenlabError(f"cannot place {scene} in a {image_size}x{image_size} image; use data.size >= 32")


def _layout_many(
    scene: Scene,
    halves: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    rng: np.random.Generator,
    *,
    image_size: int,
    rounds: int,
) -> list[tuple[int, int]]:
    """Centres of 3 or more shapes (no relation): every pair of boxes >= GAP apart, as for two shapes."""
    if scene.relation is not None:
        raise GenlabError(f"a relation holds between two shapes; {len(halves)} shapes take relation=None")
    for _ in range(rounds * 4):
        cand = rng.integers(lo, hi, size=(64, len(lo))).reshape(64, len(halves), 2)  # (64, shapes, xy)
        ok = np.ones(64, dtype=bool)
        for i in range(len(halves)):
            for j in range(i + 1, len(halves)):
                d = cand[:, j] - cand[:, i]
                ok &= _valid(d[:, 0], d[:, 1], halves[i] + halves[j], None)
        if ok.any():
            return [(int(x), int(y)) for x, y in cand[int(ok.argmax())]]
    raise GenlabError(f"cannot place {scene} in a {image_size}x{image_size} image; use fewer or smaller shapes")


def _valid(dx: np.ndarray, dy: np.ndarray, extent: int, relation: str | None) -> np.ndarray:
    """Which displacements B − A keep the boxes >= GAP apart and (if given) satisfy the relation."""
    ok = (np.maximum(abs(dx), abs(dy)) >= extent + GAP) & (abs(dx) != abs(dy))
    horizontal = abs(dx) > abs(dy)
    wanted = {
        None: True,
        "left of": horizontal & (dx > 0),
        "right of": horizontal & (dx < 0),
        "above": ~horizontal & (dy > 0),
        "below": ~horizontal & (dy < 0),
    }
    return ok & wanted[relation]


@functools.lru_cache(maxsize=8)
def _pixel_centres(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    return tuple(np.mgrid[0:image_size, 0:image_size] + 0.5)  # (y, x), each (H, W)


def shape_mask(kind: str, cx: int, cy: int, half: int, image_size: int) -> np.ndarray:
    """Boolean (H, W) mask of a solid shape sampled at pixel centres; its bounding box is 2·half wide."""
    y, x = _pixel_centres(image_size)
    dx, dy = x - cx, y - cy
    if kind == "circle":
        return dx**2 + dy**2 <= half**2
    if kind == "square":
        return (np.abs(dx) <= half) & (np.abs(dy) <= half)
    if kind == "triangle":  # apex up; the apex row has no pixel centre inside, so the box is 2·half − 1 tall
        return (dy <= half) & (np.abs(dx) <= (dy + half) / 2)
    raise GenlabError(f"unknown shape kind {kind!r}; use one of {', '.join(KINDS)}")


def draw(scene: Scene, centres: list[tuple[int, int]], *, image_size: int = 32) -> np.ndarray:
    """uint8 (H, W, 3) image of a scene whose sizes are all stated, shapes at the given centres."""
    image = np.zeros((image_size, image_size, 3), dtype=np.uint8)
    for s, (cx, cy) in zip(scene.shapes, centres):
        image[shape_mask(s.kind, cx, cy, half_extent(s.size, image_size), image_size)] = COLOURS[s.colour]
    return image


def render(
    scene: Scene, *, centres: list[tuple[int, int]] | None = None, image_size: int = 32, seed: int = 0
) -> torch.Tensor:
    """The scene as float (3, H, W) in [-1, 1]; a layout (and any unstated size) is drawn from `seed`."""
    rng = np.random.default_rng(seed)
    scene = replace(scene, shapes=tuple(s if s.size else replace(s, size=_pick(rng, SIZES)) for s in scene.shapes))
    centres = centres or layout(scene, rng, image_size=image_size)
    return uint8_to_tensor(draw(scene, centres, image_size=image_size)[None])[0]  # (3, H, W)


# ----------------------------------------------------------------------------- sampling scenes


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _random_shape(rng: np.random.Generator, *, heldout: bool) -> Shape:
    """A shape whose colour×kind pair is held out (heldout=True) or seen in training (heldout=False)."""
    while True:
        s = Shape(_pick(rng, tuple(COLOURS)), _pick(rng, KINDS), _pick(rng, SIZES))
        if ((s.colour, s.kind) in HELDOUT_PAIRS) == heldout:
            return s


def sample_scene(rng: np.random.Generator, *, split: str) -> Scene:
    """One random scene: 1 shape (40 %) or 2; 'heldout' scenes contain >= 1 held-out pair, others none."""
    if rng.random() < 0.4:
        return Scene((_random_shape(rng, heldout=split == "heldout"),))
    first_new = split == "heldout" and rng.random() < 0.5
    shapes = [_random_shape(rng, heldout=first_new), _random_shape(rng, heldout=False)]
    if split == "heldout" and not first_new:
        shapes[1] = _random_shape(rng, heldout=True)
    relation = None if rng.random() < 0.2 else _pick(rng, RELATIONS)
    return Scene(tuple(shapes), relation)


def sample_scene_full(rng: np.random.Generator, *, split: str, mix: tuple[float, ...] = MIX) -> Scene:
    """A scene of the full grammar, by the shares of `mix` (ShapesConfig.mix; by default 30 % one shape, 15 % 2–4
    copies of one shape, small when 3 or more, 40 % two shapes with a relation, 15 % without); held-out pairs as in
    `sample_scene`."""
    single, counting, related = (round(sum(mix[: i + 1]), 12) for i in range(3))  # the default: 0.3, 0.45, 0.85
    r = rng.random()
    if r < single:
        return Scene((_random_shape(rng, heldout=split == "heldout"),))
    if r < counting:
        copies = int(rng.integers(2, MAX_COPIES + 1))
        shape = _random_shape(rng, heldout=split == "heldout")
        return Scene((shape if copies == 2 else replace(shape, size="small"),) * copies)
    first_new = split == "heldout" and rng.random() < 0.5
    shapes = [_random_shape(rng, heldout=first_new), _random_shape(rng, heldout=split == "heldout" and not first_new)]
    return Scene(tuple(shapes), _pick(rng, RELATIONS) if r < related else None)


def stated(scene: Scene, rng: np.random.Generator) -> Scene:
    """What a caption states: each size is dropped with probability 1/4."""
    return replace(scene, shapes=tuple(s if rng.random() >= 0.25 else replace(s, size=None) for s in scene.shapes))


def stated_full(
    scene: Scene, rng: np.random.Generator, *, uncoloured: float = UNCOLOURED, uncoloured_pairs: float | None = None
) -> Scene:
    """`stated` (the copies of a counting scene all at once), and with probability `uncoloured` no colour stated at
    all ("a circle above a square"); `uncoloured_pairs`, where given, for two shapes without a relation instead."""
    if uncoloured_pairs is not None and is_pair(scene):
        uncoloured = uncoloured_pairs
    if is_count(scene):
        keep = rng.random() >= 0.25
        scene = replace(scene, shapes=tuple(s if keep else replace(s, size=None) for s in scene.shapes))
    else:
        scene = stated(scene, rng)
    if rng.random() < uncoloured:
        scene = replace(scene, shapes=tuple(replace(s, colour=None) for s in scene.shapes))
    return scene


CONTRADICTIONS = ("relation", "swap", "colour", "kind", "fewer", "more")


def contradict(scene: Scene, rng: np.random.Generator, *, prefer: tuple[str, ...] = ()) -> tuple[str, Scene]:
    """(how, a stated scene that no image of the stated `scene` satisfies), one change drawn uniformly among those
    that apply (among those of `prefer` that apply, if any do): `relation` the opposite relation; `swap` the two
    colours exchanged; `colour` / `kind` one shape's (every copy's) colour or kind changed; `fewer` a shape (a copy)
    left out, so an image of `scene` holds an object the new one does not ask for; `more` another shape (copy) asked
    for. The hard negatives of a verifier (genlab.methods.verifier); sizes and unstated colours stay as stated."""
    shapes, n = scene.shapes, len(scene.shapes)
    count = is_count(scene)
    ways = ["kind", "fewer" if n > 1 else "more"]
    if count and n < MAX_COPIES:
        ways.append("more")
    if shapes[0].colour is not None:
        ways.append("colour")
    if n == 2 and not count:
        a, b = shapes
        kinds_or_sizes = a.kind != b.kind or (None not in (a.size, b.size) and a.size != b.size)
        colours = None not in (a.colour, b.colour) and a.colour != b.colour
        # the two descriptions must not both fit either shape, or the opposite relation can hold of the same image
        if scene.relation is not None and (kinds_or_sizes or colours):
            ways.append("relation")
        # exchanging the colours changes nothing unless a relation or the kinds (sizes) tell the shapes apart
        if colours and (scene.relation is not None or kinds_or_sizes):
            ways.append("swap")
    how = _pick(rng, tuple(w for w in ways if w in prefer) or tuple(ways))
    if how == "relation":
        return how, replace(scene, relation=INVERSE[scene.relation])
    if how == "swap":
        a, b = shapes
        return how, replace(scene, shapes=(replace(a, colour=b.colour), replace(b, colour=a.colour)))
    if how in ("colour", "kind"):
        i = 0 if count else int(rng.integers(n))
        old = getattr(shapes[i], how)
        new = _pick(rng, tuple(v for v in (COLOURS if how == "colour" else KINDS) if v != old))
        changed = replace(shapes[i], **{how: new})
        return how, replace(scene, shapes=(changed,) * n if count else shapes[:i] + (changed,) + shapes[i + 1 :])
    if how == "fewer":
        keep = shapes[0] if count else shapes[int(rng.integers(2))]
        return how, Scene((keep,) * (n - 1) if count else (keep,))
    if count:  # more copies
        return how, Scene((shapes[0],) * (n + 1))
    colour = None if shapes[0].colour is None else _pick(rng, tuple(COLOURS))
    other = Shape(colour, _pick(rng, KINDS), _pick(rng, SIZES) if shapes[0].size else None)
    pair = (shapes[0], other) if rng.random() < 0.5 else (other, shapes[0])
    return how, Scene(pair, _pick(rng, RELATIONS) if rng.random() < 0.6 else None)


# words of a relation and their opposites, replaced in one pass, longest first (a word turned is not turned back)
OPPOSITE_WORDS = {
    "on top of": "beneath",
    "left": "right",
    "right": "left",
    "leftward": "rightward",
    "rightward": "leftward",
    "above": "below",
    "below": "above",
    "over": "under",
    "under": "over",
    "beneath": "above",
    "underneath": "above",
    "atop": "below",
    "top": "bottom",
    "bottom": "top",
    "higher": "lower",
    "lower": "higher",
    "up": "down",
    "down": "up",
}
_OPPOSITE_RE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, OPPOSITE_WORDS), key=len, reverse=True)) + r")\b")
_NUMBERS = {str(i): i for i in range(1, MAX_COPIES + 1)} | {w: i + 1 for i, w in enumerate(COUNT_WORDS)}
_COUNTED = re.compile(
    rf"\b(a single|{'|'.join(_NUMBERS)})((?: (?:{'|'.join(SIZES)}|{'|'.join(COLOURS)}))* )({'|'.join(KINDS)})s?\b"
)


def _exchange(text: str, words: list[str]) -> str:
    a, b = words
    return re.sub(rf"\b({a}|{b})\b", lambda m: b if m[1] == a else a, text)


TEXT_CONTRADICTIONS = ("relation", "colours", "sizes", "colour", "kind", "size", "fewer", "more")


def text_contradictions(text: str) -> list[tuple[str, str]]:
    """Minimal contradictions of a caption made from its words alone (no parse: any wording of the domain's
    vocabulary), as (how, text): `relation`, every relation word turned to its opposite (`OPPOSITE_WORDS`);
    `colours` (`sizes`), the two colours (sizes) exchanged; `fewer` / `more`, a count one lower / higher (within
    1..MAX_COPIES); `colour` / `kind` / `size`, a colour (kind, size) word turned, wherever it is said, to each
    other one. A change is made only where it changes the meaning: a relation or an exchange needs two objects that
    differ in some other word, a changed colour (size) needs every object's colour (size) said. The contrasts of the
    generator's judgement of its own images (genlab.rerank.self_scores); [] when the caption has none of these."""
    text = " ".join(text.lower().strip().rstrip(".").split())
    words = re.findall(r"[a-z]+", text)
    found = {
        name: list(dict.fromkeys(w for w in words if w in vocab))
        for name, vocab in (("colour", COLOURS), ("size", SIZES), ("kind", {*KINDS, *(k + "s" for k in KINDS)}))
    }
    kinds = {w.rstrip("s") for w in found["kind"]}
    related = bool(_OPPOSITE_RE.search(text))
    out = []
    if related and (len(kinds) == 2 or len(found["colour"]) == 2 or len(found["size"]) == 2):
        out.append(("relation", _OPPOSITE_RE.sub(lambda m: OPPOSITE_WORDS[m[1]], text)))
    for name, other in (("colour", "size"), ("size", "colour")):
        if len(found[name]) == 2 and (related or len(kinds) == 2 or len(found[other]) == 2):
            out.append((f"{name}s", _exchange(text, found[name])))
    objects = sum(w in found["kind"] for w in words)
    for name, vocab in (("colour", tuple(COLOURS)), ("kind", KINDS), ("size", SIZES)):
        if name != "kind" and sum(w in vocab for w in words) != objects:
            continue  # an object whose colour (size) is unstated could have the new one
        for word in found[name]:  # each colour (kind, size) said turned to each other one
            stem = word.rstrip("s") if name == "kind" else word
            for other in (v for v in vocab if v != stem):
                new = other + word[len(stem) :]
                out.append((name, re.sub(rf"\b{word}\b", new, text)))
    if m := _COUNTED.search(text):
        n = 1 if m[1] == "a single" else _NUMBERS[m[1]]
        for how, k in (("fewer", n - 1), ("more", n + 1)):
            if 1 <= k <= MAX_COPIES:
                said = str(k) if m[1].isdigit() else COUNT_WORDS[k - 1]
                out.append((how, f"{text[: m.start()]}{said}{m[2]}{m[3]}{'s' if k > 1 else ''}{text[m.end() :]}"))
    out = [(how, re.sub(r"\b(?:a|an) ([a-z])", lambda m: f"{_article(m[1])} {m[1]}", c)) for how, c in out]
    return [(how, c) for how, c in out if c != text]  # "a orange" above: "an orange"


def sample_pairs(
    n: int,
    *,
    split: str = "train",
    seed: int = 0,
    image_size: int = 32,
    grammar: str = "basic",
    pairs: str = "prefixed",
    mix: tuple[float, ...] = MIX,
    uncoloured: float = UNCOLOURED,
    uncoloured_pairs: float | None = None,
    paraphrase: float = 0.0,
    paraphrase_forms: str = "first",
    requests: float = 0.0,
) -> tuple[torch.Tensor, list[str], list[Scene]]:
    """(images (n, 3, H, W) in [-1, 1], captions, scenes), a pure function of its arguments."""
    if split not in SPLITS:
        raise GenlabError(f"shapes split must be one of {', '.join(SPLITS)}, got {split!r}")
    if image_size < 32:
        raise GenlabError(f"data.size={image_size}: shapes needs images of at least 32 pixels")
    rng = np.random.default_rng([seed, SPLITS[split]])
    words = np.random.default_rng([seed, SPLITS[split], 1])  # the paraphrases' draws: the same scenes either way
    asks = np.random.default_rng([seed, SPLITS[split], 2])  # the requests' draws: the same scenes and wordings
    images, texts, scenes = [], [], []
    full = grammar in ("full", "ordered")
    for _ in range(n):
        scene = sample_scene_full(rng, split=split, mix=mix) if full else sample_scene(rng, split=split)
        centres = layout(scene, rng, image_size=image_size)
        images.append(draw(scene, centres, image_size=image_size))
        if full:
            said = stated_full(scene, rng, uncoloured=uncoloured, uncoloured_pairs=uncoloured_pairs)
            text = caption_full(
                said,
                rng,
                ordered=grammar == "ordered",
                pairs=pairs,
                paraphrase=paraphrase,
                words=words,
                forms=paraphrase_forms,
            )
            texts.append(requested(text, asks) if requests > 0 and asks.random() < requests else text)
        else:
            texts.append(caption(stated(scene, rng), template=int(rng.integers(0, 4)), pairs=pairs))
        scenes.append(scene)
    return uint8_to_tensor(np.stack(images)), texts, scenes


def class_names() -> list[str]:
    """Names of the 24 labels (kind × colour of the first shape), label = kind index · 8 + colour index."""
    return [f"{c} {k}" for k in KINDS for c in COLOURS]


def label_of(scene: Scene) -> int:
    first = scene.shapes[0]
    return KINDS.index(first.kind) * len(COLOURS) + list(COLOURS).index(first.colour)


def build_shapes(cfg: ShapesConfig, *, split: str = "train") -> Dataset:
    """Captioned shapes (N, 3, size, size) in [-1, 1]; split 'train', 'test' (seen pairs) or 'heldout'."""
    n = cfg.n if split == "train" else cfg.n_test
    if n < 1:
        raise GenlabError(f"data.n and data.n_test must be >= 1, got {n} for split {split!r}")
    x, texts, scenes = sample_pairs(
        n,
        split=split,
        seed=cfg.seed,
        image_size=cfg.size,
        grammar=cfg.grammar,
        pairs=cfg.pairs,
        mix=cfg.mix,
        uncoloured=cfg.uncoloured,
        uncoloured_pairs=cfg.uncoloured_pairs,
        paraphrase=cfg.paraphrase,
        paraphrase_forms=cfg.paraphrase_forms,
        requests=cfg.requests,
    )
    data = Dataset(x=x, texts=texts, name="shapes")
    if cfg.labels:
        data.labels = torch.tensor([label_of(s) for s in scenes], dtype=torch.long)
        data.num_classes, data.class_names = len(KINDS) * len(COLOURS), class_names()
    return data
