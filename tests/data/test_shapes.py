"""Procedural shapes: determinism, held-out splits, caption grammar, rendering, captioned folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.data import build_dataset
from genlab.data.folder import ImageFolderConfig
from genlab.data.images import tensor_to_uint8
from genlab.data.shapes import (
    COLOURS,
    HELDOUT_PAIRS,
    Scene,
    Shape,
    ShapesConfig,
    caption,
    parse_caption,
    render,
    sample_pairs,
)
from genlab.errors import GenlabError


def pairs_of(texts):
    return {(s.colour, s.kind) for t in texts for s in parse_caption(t).shapes}


def test_deterministic_from_seed_and_shapes():
    cfg = ShapesConfig(n=60, n_test=20, seed=3)
    a, b = build_dataset(cfg, "train"), build_dataset(cfg, "train")
    assert torch.equal(a.x, b.x) and a.texts == b.texts
    assert a.x.shape == (60, 3, 32, 32) and a.x.dtype == torch.float32 and len(a.texts) == 60
    assert a.x.min() == -1 and a.x.max() == 1 and a.labels is None
    c = build_dataset(ShapesConfig(n=60, seed=4), "train")
    assert not torch.equal(a.x, c.x)
    # every pixel is black or one of the 8 named colours
    rgb = {tuple(v) for v in tensor_to_uint8(a.x).reshape(-1, 3).tolist()}
    assert rgb <= {(0, 0, 0), *COLOURS.values()}


def test_splits_disjoint_in_attribute_combinations():
    cfg = ShapesConfig(n=400, n_test=200)
    train, test, held = (build_dataset(cfg, s) for s in ("train", "test", "heldout"))
    assert not pairs_of(train.texts) & HELDOUT_PAIRS and not pairs_of(test.texts) & HELDOUT_PAIRS
    assert all(pairs_of([t]) & HELDOUT_PAIRS for t in held.texts)  # every held-out caption has a new pair
    assert not torch.equal(train.x[:200], test.x)  # test images are new draws of seen combinations
    # every colour and every kind is still seen in training
    assert {c for c, _ in pairs_of(train.texts)} == set(COLOURS)
    assert {k for _, k in pairs_of(train.texts)} == {"circle", "square", "triangle"}


def test_caption_parser_round_trip():
    _, texts, scenes = sample_pairs(300, seed=1)
    for text, scene in zip(texts, scenes):
        spec = parse_caption(text)
        assert spec is not None, text
        assert spec.relation == scene.relation
        for said, true in zip(spec.shapes, scene.shapes):
            assert (said.colour, said.kind) == (true.colour, true.kind) and said.size in (None, true.size)
        assert caption(spec, template=0) == caption(parse_caption(caption(spec, template=0)), template=0)
    assert len({t.split()[0] for t in texts}) >= 3  # several templates are used
    assert {s.relation for s in scenes} == {None, "left of", "right of", "above", "below"}
    assert parse_caption("a purple hexagon") is None and parse_caption("") is None
    assert parse_caption("An orange Circle.") == Scene((Shape("orange", "circle"),))


def test_render_is_solid_and_respects_the_relation():
    scene = Scene((Shape("red", "circle", "large"), Shape("blue", "square", "small")), "left of")
    for seed in range(5):
        img = tensor_to_uint8(render(scene, seed=seed)[None])[0]  # (H, W, 3)
        red = np.argwhere((img == COLOURS["red"]).all(-1))
        blue = np.argwhere((img == COLOURS["blue"]).all(-1))
        assert len(blue) == 64  # a small square is 8×8 pixels
        assert red[:, 1].mean() < blue[:, 1].mean()  # red centroid left of blue
    with pytest.raises(GenlabError, match="split"):
        sample_pairs(2, split="valid")


def test_labels_for_feature_nets():
    data = build_dataset(ShapesConfig(n=50, labels=True), "train")
    assert data.num_classes == 24 and data.labels.shape == (50,) and len(data.class_names) == 24
    first = parse_caption(data.texts[0]).shapes[0]
    assert data.class_names[int(data.labels[0])] == f"{first.colour} {first.kind}"


def test_captioned_image_folder_batches_carry_text(tmp_path):
    x, texts, _ = sample_pairs(6, seed=2)
    rows = []
    for i, img in enumerate(tensor_to_uint8(x)):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        rows.append(json.dumps({"file_name": f"{i}.png", "text": texts[i]}))
    (tmp_path / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    data = build_dataset(ImageFolderConfig(path=str(tmp_path)), "train")
    batch = data.batch(torch.tensor([4, 1]))
    assert batch["text"] == [texts[4], texts[1]] and torch.equal(batch["x"], x[[4, 1]])
    shapes_batch = build_dataset(ShapesConfig(n=8), "train").batch(torch.tensor([0, 3]))
    assert isinstance(shapes_batch["text"], list) and len(shapes_batch["text"]) == 2


def test_full_grammar_covers_counting_pairs_and_both_ways_relations():
    from genlab.data.shapes import INVERSE, caption_full, is_count, sample_pairs

    x, texts, scenes = sample_pairs(600, split="train", seed=5, grammar="full")
    parsed = [parse_caption(t) for t in texts]
    assert all(p is not None for p in parsed), [t for t, p in zip(texts, parsed) if p is None][:3]
    counts = {len(s.shapes) for s in scenes if is_count(s)}
    assert counts == {2, 3, 4}
    assert any(t.startswith("three ") for t in texts)
    from genlab.metrics.geneval import builtin_suite

    assert not {p.text for p in builtin_suite().prompts} & set(texts)  # the suite's wordings stay unseen
    swapped = direct = 0
    for p, s in zip(parsed, scenes):
        assert len(p.shapes) == len(s.shapes)
        if s.relation is None:
            continue
        # the caption states the drawn relation, either as "A rel B" or as "B inverse(rel) A"
        if p.relation == s.relation and p.shapes[0].kind == s.shapes[0].kind and p.shapes[1].kind == s.shapes[1].kind:
            direct += 1
        else:
            assert (p.relation, p.shapes[0].kind, p.shapes[1].kind) == (
                INVERSE[s.relation],
                s.shapes[1].kind,
                s.shapes[0].kind,
            )
            swapped += 1
    assert swapped > 50 and direct > 50
    uncoloured = sum(all(sh.colour is None for sh in p.shapes) for p in parsed)
    assert 40 < uncoloured < 160  # about 15 % of 600
    # no held-out pair in training, one in every held-out scene; the basic grammar is what it was
    assert not {(s.colour, s.kind) for sc in scenes for s in sc.shapes} & HELDOUT_PAIRS
    _, _, held = sample_pairs(200, split="heldout", seed=5, grammar="full")
    assert all({(s.colour, s.kind) for s in sc.shapes} & HELDOUT_PAIRS for sc in held)
    assert sample_pairs(20, seed=5)[1] == sample_pairs(20, seed=5, grammar="basic")[1]
    rng = np.random.default_rng(0)
    assert caption_full(Scene((Shape("red", "square", "small"),) * 3), rng) == "three small red squares"
    # ordered: the same scenes and images, every relation stated from the left (top) shape
    xo, ordered, scenes_o = sample_pairs(600, split="train", seed=5, grammar="ordered")
    assert torch.equal(xo, x) and scenes_o == scenes
    assert not {p.text for p in builtin_suite().prompts} & set(ordered)
    for t, sc in zip(ordered, scenes):
        if sc.relation:  # the drawn relation, stated from the left (top) shape
            p, direct = parse_caption(t), sc.relation in ("left of", "above")
            first, second = sc.shapes if direct else sc.shapes[::-1]
            assert p.relation == (sc.relation if direct else INVERSE[sc.relation]) in ("left of", "above")
            assert (p.shapes[0].kind, p.shapes[1].kind) == (first.kind, second.kind)
    assert [t for t, s in zip(ordered, scenes) if not s.relation] == [
        t for t, s in zip(texts, scenes) if not s.relation
    ]
    assert parse_caption("four triangles") == Scene((Shape(None, "triangle"),) * 4)
    # varied pairs: the same images; a pair without a relation in four wordings (parsed), none of them the suite's
    xv, varied, scenes_v = sample_pairs(600, split="train", seed=5, grammar="full", pairs="varied")
    assert torch.equal(xv, x) and scenes_v == scenes
    assert [t for t, s in zip(varied, scenes) if s.relation or len(s.shapes) == 1 or is_count(s)] == [
        t for t, s in zip(texts, scenes) if s.relation or len(s.shapes) == 1 or is_count(s)
    ]
    free = [(t, parse_caption(t)) for t, s in zip(varied, scenes) if len(s.shapes) == 2 and not s.relation]
    assert {t.split(" ")[0] == "two" for t, _ in free} == {True, False}
    assert {w for t, _ in free for w in ("plus", "as well as", "alongside") if f" {w} " in t} == {
        "plus",
        "as well as",
        "alongside",
    }
    assert all(p is not None and p.relation is None and len(p.shapes) == 2 for _, p in free)
    assert not {p.text for p in builtin_suite().prompts} & set(varied)
    assert parse_caption("a circle and a square") is None  # the suite's wording is not in any grammar


def test_full_grammar_mix_sets_the_share_of_each_kind_of_scene():
    from genlab.config import load_recipe
    from genlab.data.shapes import MIX, is_count, sample_pairs

    def kinds(scenes):
        return [
            "one" if len(s.shapes) == 1 else "count" if is_count(s) else "relation" if s.relation else "pair"
            for s in scenes
        ]

    x, texts, scenes = sample_pairs(400, seed=3, grammar="full")
    xd, texts_d, scenes_d = sample_pairs(400, seed=3, grammar="full", mix=MIX)  # the default is the old mix
    assert torch.equal(x, xd) and texts == texts_d
    for mix in ((0.15, 0.25, 0.35, 0.25), (0.0, 0.5, 0.0, 0.5)):
        found = kinds(sample_pairs(2000, seed=3, grammar="full", mix=mix)[2])
        shares = [found.count(k) / len(found) for k in ("one", "count", "relation", "pair")]
        np.testing.assert_allclose(shares, mix, atol=0.035)  # 2000 draws: sd <= 0.011
    recipe = Path(__file__).resolve().parents[2] / "recipes/shapes-t2i-finetune.yaml"
    assert load_recipe(recipe, ["--data.mix=[0.1, 0.2, 0.3, 0.4]"]).data.mix == (0.1, 0.2, 0.3, 0.4)
    with pytest.raises(GenlabError, match=r"data\.mix must add up to 1"):
        load_recipe(recipe, ["--data.mix=[0.1, 0.2, 0.3, 0.3]"])
    with pytest.raises(GenlabError, match=r"data\.mix\[0\]"):
        load_recipe(recipe, ["--data.mix=[-0.1, 0.3, 0.4, 0.4]"])


def test_uncoloured_pairs_sets_the_colourless_share_of_unrelated_pairs_alone():
    from genlab.config import load_recipe
    from genlab.data.shapes import COLOURS, is_pair, sample_pairs

    def colourless(texts, scenes, pair):  # the share of captions that name no colour, over pairs or the rest
        picked = [t for t, s in zip(texts, scenes) if is_pair(s) == pair]
        return sum(not any(c in t.split() for c in COLOURS) for t in picked) / len(picked)

    x, texts, scenes = sample_pairs(600, seed=4, grammar="full")
    xs, texts_s, _ = sample_pairs(600, seed=4, grammar="full", uncoloured=0.15, uncoloured_pairs=0.15)
    assert torch.equal(x, xs) and texts == texts_s  # None is `uncoloured`: the same draws
    _, texts_1, scenes_1 = sample_pairs(2000, seed=4, grammar="full", uncoloured_pairs=1.0)
    _, texts_0, scenes_0 = sample_pairs(2000, seed=4, grammar="full", uncoloured_pairs=0.0)
    assert colourless(texts_1, scenes_1, True) == 1.0 and colourless(texts_0, scenes_0, True) == 0.0
    for other in (colourless(texts_1, scenes_1, False), colourless(texts_0, scenes_0, False)):
        assert 0.10 < other < 0.20  # every other scene keeps the 15 % of `uncoloured` (2000 draws: sd ~0.009)
    recipe = Path(__file__).resolve().parents[2] / "recipes/shapes-t2i-finetune.yaml"
    assert load_recipe(recipe, ["--data.uncoloured_pairs=0.5"]).data.uncoloured_pairs == 0.5
    with pytest.raises(GenlabError, match=r"data\.uncoloured_pairs"):
        load_recipe(recipe, ["--data.uncoloured_pairs=1.5"])


def _states(said: Scene, true: Scene) -> bool:
    """Whether the parsed caption `said` states the scene `true` (unstated colours and sizes left open)."""
    return (
        len(said.shapes) == len(true.shapes)
        and said.relation == true.relation
        and all(
            (a.kind, a.colour or b.colour, a.size or b.size) == (b.kind, b.colour, b.size)
            for a, b in zip(said.shapes, true.shapes)
        )
    )


def assert_states(texts: list[str], scenes: list[Scene]) -> None:
    """Every caption parses back to its scene, as drawn or stated the other way round."""
    from genlab.data.shapes import INVERSE

    for text, scene in zip(texts, scenes):
        said = parse_caption(text)
        assert said is not None, text
        other_way = Scene(scene.shapes[::-1], scene.relation and INVERSE[scene.relation])
        assert _states(said, scene) or _states(said, other_way), (text, scene)


def test_paraphrase_rewords_captions_of_the_same_scenes_and_each_parses_back():
    from genlab.config import load_recipe
    from genlab.data.shapes import sample_pairs

    x, texts, scenes = sample_pairs(1500, seed=6, grammar="full", pairs="varied")
    x0, texts_0, _ = sample_pairs(1500, seed=6, grammar="full", pairs="varied", paraphrase=0.0)
    assert torch.equal(x, x0) and texts == texts_0  # 0: the same captions and draws as before
    x1, texts_1, scenes_1 = sample_pairs(1500, seed=6, grammar="full", pairs="varied", paraphrase=1.0)
    assert torch.equal(x, x1) and scenes == scenes_1  # the same scenes and images, other words
    assert not set(texts) & set(texts_1)  # every caption reworded: no template of the first set

    assert_states(texts_1, scenes_1)
    firsts = {" ".join(t.split()[:2]) for t in texts_1}
    assert {"there is", "a group", "both a"} <= firsts  # the forms of one shape, counting and pairs
    assert any(" in all" in t for t in texts_1) and any(" than " in t for t in texts_1)
    assert any(" sits " in t for t in texts_1) and any(" in the picture" in t for t in texts_1)
    _, half, _ = sample_pairs(1500, seed=6, grammar="full", pairs="varied", paraphrase=0.5)
    share = sum(a != b for a, b in zip(half, texts)) / len(texts)
    assert 0.43 < share < 0.57  # 1500 draws: sd ~0.013
    recipe = Path(__file__).resolve().parents[2] / "recipes/shapes-t2i-finetune.yaml"
    assert load_recipe(recipe, ["--data.paraphrase=0.5"]).data.paraphrase == 0.5
    with pytest.raises(GenlabError, match=r"data\.paraphrase"):
        load_recipe(recipe, ["--data.paraphrase=-0.1"])


def test_wider_and_relations_paraphrases_add_forms_that_parse_back_and_keep_the_first_forms_draws():
    from genlab.config import load_recipe
    from genlab.data.shapes import sample_pairs

    kw = dict(seed=6, grammar="full", pairs="varied", paraphrase=1.0)
    x, first, scenes = sample_pairs(1500, **kw)
    x_same, same, _ = sample_pairs(1500, **kw, paraphrase_forms="first")
    assert torch.equal(x, x_same) and same == first  # the default: the captions of recipes trained before
    x_wide, wide, scenes_wide = sample_pairs(1500, **kw, paraphrase_forms="wider")
    assert torch.equal(x, x_wide) and scenes_wide == scenes  # the same scenes and images, more forms
    assert_states(wide, scenes_wide)
    new = set(wide) - set(first)
    for form in (" at the left of ", " to its right", " on the left and ", " higher up than ", " and also ", ", "):
        assert any(form in t for t in new), form
    assert any(t.startswith("just ") for t in new) and any(t.endswith(" alone") for t in new)
    # "A with B below it" states B below A: A above B
    said = parse_caption("a red circle with a blue square below it")
    assert said == Scene((Shape("red", "circle", None), Shape("blue", "square", None)), "above")
    assert parse_caption("a red circle on the left and a blue square on the left") is None  # no side stated twice
    _, rel, scenes_rel = sample_pairs(1500, **kw, paraphrase_forms="relations")
    assert scenes_rel == scenes
    assert_states(rel, scenes_rel)
    new = set(rel) - set(first)
    for word in ("atop", "up above", "underneath", "down below", "at the left of", "leftward of", "rightward of"):
        assert any(f" {word} " in t for t in new), word
    assert not [t for t in new if parse_caption(t).relation is None]  # only relations get new forms
    recipe = Path(__file__).resolve().parents[2] / "recipes/shapes-t2i-para.yaml"
    assert load_recipe(recipe, ["--data.paraphrase_forms=wider"]).data.paraphrase_forms == "wider"
    with pytest.raises(GenlabError, match=r"data\.paraphrase_forms"):
        load_recipe(recipe, ["--data.paraphrase_forms=all"])


def test_requests_open_captions_of_the_same_scenes_that_parse_back_and_no_suite_prompt_parses():
    from genlab.config import load_recipe
    from genlab.data.shapes import REQUESTS, sample_pairs
    from genlab.metrics.geneval import builtin_suite

    kw = dict(seed=6, grammar="full", pairs="varied", paraphrase=0.5, paraphrase_forms="relations")
    x, plain, scenes = sample_pairs(1500, **kw)
    x0, none, _ = sample_pairs(1500, **kw, requests=0.0)
    assert torch.equal(x, x0) and none == plain  # 0: the same captions and draws as before
    x1, asked, scenes_1 = sample_pairs(1500, **kw, requests=0.5)
    assert torch.equal(x, x1) and scenes_1 == scenes  # the same scenes and images
    opened = [(a, p) for a, p in zip(asked, plain) if a != p]
    assert 0.4 < len(opened) / len(plain) < 0.6
    assert all(a.endswith(" " + p) and a[: -len(p) - 1] in REQUESTS for a, p in opened)  # the same words, opened
    assert {a[: -len(p) - 1] for a, p in opened} == set(REQUESTS)  # every opening drawn
    assert_states(asked, scenes_1)
    assert parse_caption("sketch three red squares") == parse_caption("three red squares")
    assert parse_caption("sketch") is None and parse_caption("sketch sketch a circle") is None
    suite = [p.text for p in builtin_suite().prompts]
    assert not [t for t in suite if parse_caption(t)]  # "draw a circle", "an image with a circle": not openings
    assert any(t.startswith("draw ") for t in suite) and any(t.startswith("an image with ") for t in suite)
    recipe = Path(__file__).resolve().parents[2] / "recipes/shapes-t2i-relations.yaml"
    assert load_recipe(recipe, ["--data.requests=0.3"]).data.requests == 0.3
    with pytest.raises(GenlabError, match=r"data\.requests"):
        load_recipe(recipe, ["--data.requests=2"])
