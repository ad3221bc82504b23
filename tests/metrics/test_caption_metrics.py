"""Caption scores (genlab.metrics.caption): BLEU-4, the grammar's references, the checker applied to captions."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.data.shapes import Scene, Shape, render, sample_pairs
from genlab.errors import GenlabError
from genlab.metrics.caption import caption_attributes, corpus_bleu, references


def test_corpus_bleu_by_hand():
    assert corpus_bleu(["the cat sat on the mat"], [["the cat sat on the mat"]]) == pytest.approx(1.0)
    # p1..p4 = 4/5, 3/4, 2/3, 1/2; c = 5, r = 6: BP = exp(1 - 6/5)
    expected = math.exp(-0.2) * (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25
    assert corpus_bleu(["a b c d e"], [["a b c d f g", "x"]]) == pytest.approx(expected)
    assert corpus_bleu(["the the the the"], [["the cat"]], n=1) == pytest.approx(0.25)  # clipped counts
    assert corpus_bleu(["a b c"], [["a b c"]]) == 0.0  # no 4-gram at all: p4 = 0 (no smoothing)
    with pytest.raises(GenlabError, match="one non-empty list"):
        corpus_bleu(["a"], [[]])


def test_references_hold_every_caption_the_data_writes():
    _, texts, scenes = sample_pairs(300, seed=2)
    assert all(t in references(s) for t, s in zip(texts, scenes))
    one = references(Scene((Shape("red", "circle", "large"),)))
    assert len(one) == 8 and "one red circle" in one and "a picture of a large red circle" in one


def test_caption_attributes_score_the_caption_against_the_image():
    scene = Scene((Shape("red", "circle", "large"), Shape("blue", "square", "small")), "left of")
    x = render(scene, seed=1)[None].repeat(4, 1, 1, 1)
    caps = [
        "a large red circle to the left of a small blue square",
        "a large green circle to the left of a small blue square",
        "a red circle",
        "hello there",
    ]
    rows = [caption_attributes(x[i : i + 1], [c]) for i, c in enumerate(caps)]
    assert rows[0]["all"] == 1 and rows[0]["relation"] == 1 and rows[0]["in_grammar"] == 1
    assert rows[1]["colour"] == 0.5 and rows[1]["all"] == 0
    assert rows[2]["count"] == 0 and math.isnan(rows[2]["relation"]) and rows[2]["relation_stated"] == 0
    assert rows[3]["in_grammar"] == 0 and rows[3]["all"] == 0
    assert caption_attributes(x, caps)["all"] == pytest.approx(0.25)
    with pytest.raises(GenlabError, match="one caption per image"):
        caption_attributes(torch.zeros(2, 3, 32, 32), ["a red circle"])
