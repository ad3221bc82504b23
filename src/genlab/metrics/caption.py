"""Scores of generated captions of shapes images: the procedural checker applied to the caption, and BLEU-4.

caption_attributes(images, captions)
    genlab.metrics.t2i's checker with the roles swapped: the image is the truth and the generated caption the claim.
    Per caption: count (the caption names as many objects as the image holds), colour, shape (colour and kind of
    each named object match distinct detected objects), size and relation (only over captions that state one), all
    (every stated attribute right and no other object). A caption outside the shapes grammar scores 0 on
    count/colour/shape/all; `in_grammar` is the share inside it.
references(scene)
    Every caption the shapes data could write for a scene: each template, with each subset of sizes left out, and
    for two shapes the relation-free "two shapes: ..." form too.
corpus_bleu(hypotheses, references, n=4)
    BLEU (Papineni et al. 2002) over a corpus of word lists: the geometric mean of the clipped n-gram precisions
    p_1..p_n (each n-gram counted at most as often as in the reference that has it most often), times the brevity
    penalty exp(min(0, 1 − r/c)) with c the hypotheses' total length and r the sum of each hypothesis's closest
    reference length (the shorter on ties). 0 when some p_k is 0 (no smoothing). Words are genlab.models.clip's.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import replace

import numpy as np
from torch import Tensor

from genlab.data.images import tensor_to_uint8
from genlab.data.shapes import Scene, caption
from genlab.errors import GenlabError
from genlab.metrics.t2i import check
from genlab.models.clip import words

ATTRIBUTES = ("count", "colour", "shape", "size", "relation", "all")


def references(scene: Scene) -> list[str]:
    """The distinct captions the shapes grammar gives `scene` (all templates, sizes stated or not)."""
    out: list[str] = []
    forms = [scene] if len(scene.shapes) == 1 or scene.relation is None else [scene, replace(scene, relation=None)]
    for form in forms:
        for keep in itertools.product((True, False), repeat=len(form.shapes)):
            stated = replace(form, shapes=tuple(s if k else replace(s, size=None) for s, k in zip(form.shapes, keep)))
            out += [caption(stated, template=t) for t in range(4)]
    return list(dict.fromkeys(out))


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hypotheses: list[str], refs: list[list[str]], n: int = 4) -> float:
    """Corpus BLEU-n of hypothesis strings against lists of reference strings (one list per hypothesis)."""
    if len(hypotheses) != len(refs) or not hypotheses or any(not r for r in refs):
        raise GenlabError("BLEU needs one non-empty list of references per hypothesis")
    matched, total = [0] * n, [0] * n
    hyp_len = ref_len = 0
    for hyp, rs in zip(hypotheses, refs):
        h, rw = words(hyp), [words(r) for r in rs]
        hyp_len += len(h)
        ref_len += min((abs(len(r) - len(h)), len(r)) for r in rw)[1]
        for k in range(1, n + 1):
            counts = _ngrams(h, k)
            most: Counter = Counter()
            for r in rw:
                most |= _ngrams(r, k)
            matched[k - 1] += sum(min(c, most[g]) for g, c in counts.items())
            total[k - 1] += sum(counts.values())
    if min(matched) == 0 or hyp_len == 0:
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(matched, total)) / n
    return math.exp(min(0.0, 1 - ref_len / hyp_len) + log_p)


def caption_attributes(images: Tensor, captions: list[str]) -> dict[str, float]:
    """Mean checker scores of generated captions against their images (N, 3, H, W) in [-1, 1] (see the module)."""
    if len(images) != len(captions):
        raise GenlabError(f"one caption per image: got {len(images)} images and {len(captions)} captions")
    rows = [check(p, c) for p, c in zip(tensor_to_uint8(images.detach().cpu().clamp(-1, 1)), captions)]
    out = {"in_grammar": sum(r is not None for r in rows) / len(rows)}
    for k in ATTRIBUTES:
        if k in ("size", "relation"):
            values = [r[k] for r in rows if r is not None and r[k] == r[k]]
            out[k] = float(np.mean(values)) if values else float("nan")
            out[f"{k}_stated"] = len(values) / len(rows)
        else:
            out[k] = float(np.mean([0.0 if r is None else r[k] for r in rows]))
    return out
