"""Text-to-image metrics: the procedural attribute checker, prompt sets, and evaluate_t2i end to end."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from genlab.data.images import tensor_to_uint8
from genlab.data.shapes import HELDOUT_PAIRS, Scene, Shape, parse_caption, render, sample_pairs
from genlab.errors import GenlabError
from genlab.metrics.features import CNNConfig, FeatureNet, SmallCNN
from genlab.metrics.t2i import attribute_accuracy, check, detect, evaluate_t2i, prompt_set, render_captions


@pytest.mark.parametrize("size", ["small", "large"])
@pytest.mark.parametrize("kind", ["circle", "square", "triangle"])
def test_detect_reads_kind_size_colour_and_position(kind, size):
    scene = Scene((Shape("orange", kind, size),))
    image = tensor_to_uint8(render(scene, centres=[(12, 20)])[None])[0]
    (found,) = detect(image)
    assert (found.colour, found.kind, found.size, found.cx) == ("orange", kind, size, 12)
    assert found.cy == (20.5 if kind == "triangle" else 20)  # the triangle's apex row is empty


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_checker_is_exact_on_renders_and_low_on_shuffled_captions(split):
    x, texts, _ = sample_pairs(100, split=split, seed=7)
    true = attribute_accuracy(x, texts)
    assert all(true[k] == 1.0 for k in ("count", "colour", "shape", "size", "relation", "all"))
    shuffled = texts[:]
    random.Random(0).shuffle(shuffled)
    wrong = attribute_accuracy(x, shuffled)
    assert wrong["all"] < 0.1 and wrong["colour"] < 0.4 and wrong["relation"] < 0.6


def test_checker_catches_each_attribute():
    image = tensor_to_uint8(
        render(Scene((Shape("red", "circle", "large"), Shape("blue", "square", "small")), "left of"), seed=1)[None]
    )[0]
    assert check(image, "a large red circle to the left of a small blue square")["all"] == 1
    assert check(image, "a large red circle to the right of a small blue square")["relation"] == 0
    assert check(image, "a small red circle to the left of a small blue square")["size"] == 0.5
    assert check(image, "a red triangle to the left of a blue square")["shape"] == 0.5
    assert check(image, "a green circle")["count"] == 0 and check(image, "a green circle")["colour"] == 0
    assert check(image, "hello world") is None
    noisy = np.clip(image.astype(int) + np.random.default_rng(0).integers(-40, 41, image.shape), 0, 255)
    assert check(noisy.astype(np.uint8), "a large red circle to the left of a small blue square")["all"] == 1


def test_prompt_sets_split_the_combinations():
    seen, held = prompt_set("test", 12), prompt_set("heldout", 12)
    assert len(set(seen)) == 12 and len(set(held)) == 12
    pairs = [{(s.colour, s.kind) for s in parse_caption(t).shapes} for t in seen + held]
    assert not any(p & HELDOUT_PAIRS for p in pairs[:12]) and all(p & HELDOUT_PAIRS for p in pairs[12:])
    with pytest.raises(GenlabError, match="grammar"):
        render_captions(["a purple hexagon"])


def test_evaluate_t2i_separates_a_perfect_from_a_broken_generator():
    torch.manual_seed(0)
    net = FeatureNet(module=SmallCNN(CNNConfig(in_channels=3, image_size=32, num_classes=24)).eval(), name="random")
    seen, held = prompt_set("test", 4), prompt_set("heldout", 4)

    def perfect(texts, seed):
        return render_captions(texts, seed=seed + 1)  # true images, other layouts than the reference renders

    def broken(texts, seed):
        return render_captions(["a large white square"] * len(texts), seed=seed)  # ignores the prompt

    good = evaluate_t2i(perfect, prompts_seen=seen, prompts_heldout=held, n_per_prompt=3, feature_net=net)
    bad = evaluate_t2i(broken, prompts_seen=seen, prompts_heldout=held, n_per_prompt=3, feature_net=net)
    for split in ("seen", "heldout"):
        assert good[split]["attributes"]["all"] == 1.0 == good[split]["attributes_real"]["all"]
        assert bad[split]["attributes"]["all"] < 0.3 and good[split]["images"] == 12
        assert 0 <= good[split]["fd"] < bad[split]["fd"]


def test_shipped_shapes_feature_net_loads_and_separates_kinds():
    from genlab.metrics.features import extract
    from genlab.metrics.t2i import shapes_feature_net

    net = shapes_feature_net()
    assert (net.in_channels, net.image_size, net.heldout_accuracy) == (3, 32, pytest.approx(0.508))
    x = render_captions(["a large red circle"] * 4 + ["a small blue triangle"] * 4)
    feats = extract(net, x)[0]
    assert feats.shape == (8, 64) and (feats[:4].mean(0) - feats[4:].mean(0)).norm() > 0
