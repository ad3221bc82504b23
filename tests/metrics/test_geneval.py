"""The GenEval-style shapes suite: the checker's ceiling and chance rows, the suite's coverage, failure cases
of the per-image scorer, and prompt-file validation."""

import json
from dataclasses import replace

import numpy as np
import pytest

from genlab.data.shapes import HELDOUT_PAIRS, Scene, Shape, draw, layout, parse_caption
from genlab.errors import GenlabError
from genlab.metrics.geneval import (
    CATEGORIES,
    ObjectSpec,
    Prompt,
    builtin_suite,
    geneval,
    load_suite,
    markdown,
    score_image,
    suite_lines,
)


@pytest.fixture(scope="module")
def report():
    return geneval(None, builtin_suite(), n_per_prompt=2)


def test_real_renders_score_100_in_every_category(report):
    real = report["rows"]["real"]
    assert set(real["categories"]) == set(CATEGORIES)
    for cat, row in real["categories"].items():
        assert row["accuracy"] == 1.0, cat
        assert row["extra_rate"] == 0.0, cat
    assert real["overall"] == 1.0 and real["pairs"]["seen"]["accuracy"] == real["pairs"]["heldout"]["accuracy"] == 1.0
    assert real["images"] == 2 * report["suite"]["prompts"]
    assert "model" not in report["rows"]


def test_shuffled_captions_score_near_chance(report):
    shuffled = report["rows"]["shuffled"]
    assert shuffled["overall"] < 0.2
    assert shuffled["overall_ci95"][1] < 0.25
    for cat in ("counting", "position", "colour_attribution"):  # specific specs: almost never met by chance
        assert shuffled["categories"][cat]["accuracy"] < 0.1, cat
    table = markdown(report)
    assert "real renders (ceiling) | 100.0 [100.0, 100.0]" in table and "shuffled captions" in table


def test_autoencoder_row_scores_the_renders_after_the_roundtrip():
    import torch.nn.functional as F

    suite = builtin_suite()
    exact = geneval(None, suite, n_per_prompt=1, reconstruct=lambda x: x.clone())["rows"]
    assert exact["autoencoder"]["overall"] == exact["real"]["overall"] == 1.0
    blurred = geneval(
        None, suite, n_per_prompt=1, reconstruct=lambda x: F.interpolate(F.avg_pool2d(x, 4), scale_factor=4)
    )
    row = blurred["rows"]["autoencoder"]
    assert row["overall"] < 0.9 and row["images"] == len(suite.prompts)  # a coarse decoder loses shapes
    assert "through the autoencoder" in markdown(blurred)


def test_builtin_suite_covers_the_categories_in_new_wordings():
    suite = builtin_suite()
    assert {p.category for p in suite.prompts} == set(CATEGORIES)
    texts = [p.text for p in suite.prompts]
    assert len(set(texts)) == len(texts)
    assert not [t for t in texts if parse_caption(t) is not None]  # none is a training caption
    specs: dict[str, list[Prompt]] = {}
    for p in suite.prompts:
        specs.setdefault(p.spec, []).append(p)
    assert all(len(ws) >= 3 for ws in specs.values())
    counting = [p for p in suite.prompts if p.category == "counting"]
    assert {p.count for p in counting} == {1, 2, 3, 4}
    assert any(t.startswith("3 ") for t in texts) and any("three " in t for t in texts)  # digits and words
    position = [p for p in suite.prompts if p.category == "position"]
    assert {p.relation for p in position} == {"left of", "right of", "above", "below"}
    for phrase in (" left of ", " on the left side of ", " to the left of ", " right of ", " under "):
        assert any(phrase in p.text for p in position), phrase
    # every position spec is also stated the other way round ("B right of A")
    for ws in (specs[p.spec] for p in position):
        assert len({(w.objects[0], w.relation) for w in ws}) == 2
    assert any(not t.startswith(("a ", "an ")) for t in (p.text for p in position))  # articles dropped
    for cat in ("colours", "counting", "position", "colour_attribution"):
        held = {p.spec for p in suite.prompts if p.category == cat and p.heldout}
        assert held and held != {p.spec for p in suite.prompts if p.category == cat}, cat
    assert {(o.colour, o.shape) for p in suite.prompts for o in p.objects} >= HELDOUT_PAIRS
    attribution = [p for p in suite.prompts if p.category == "colour_attribution"]
    assert all(a.colour != b.colour and a.shape != b.shape for a, b in (p.objects for p in attribution))


def _image(*placed: tuple[str, str, str, int, int]) -> np.ndarray:
    scene = Scene(tuple(Shape(c, k, s) for c, k, s, _, _ in placed))
    return draw(scene, [(x, y) for *_, x, y in placed])


RED_CIRCLE, BLUE_SQUARE = ObjectSpec("circle", "red"), ObjectSpec("square", "blue")


def test_swapped_colours_fail_colour_attribution():
    p = Prompt("a red circle and a blue square", "colour_attribution", (RED_CIRCLE, BLUE_SQUARE))
    right = score_image(_image(("red", "circle", "large", 9, 9), ("blue", "square", "large", 24, 22)), p)
    assert right["correct"] and right["objects"] and not right["extra"]
    swapped = score_image(_image(("blue", "circle", "large", 9, 9), ("red", "square", "large", 24, 22)), p)
    assert not swapped["correct"] and not swapped["objects"]
    assert swapped["colour"] and swapped["shape"]  # each colour and each shape is there, bound wrongly


def test_relation_count_and_extra_objects():
    left = Prompt("red circle left of a blue square", "position", (RED_CIRCLE, BLUE_SQUARE), relation="left of")
    image = _image(("red", "circle", "small", 6, 16), ("blue", "square", "small", 25, 14))
    assert score_image(image, left)["correct"]
    wrong = score_image(image, replace(left, relation="right of"))
    assert wrong["objects"] and not wrong["relation"] and not wrong["correct"]
    three = _image(*(("red", "square", "small", x, 6) for x in (5, 16, 27)))
    count = Prompt("2 red squares", "counting", (ObjectSpec("square", "red"),), count=2)
    assert score_image(three, count)["objects"] and not score_image(three, count)["count"]
    assert not score_image(three, count)["correct"]
    assert score_image(three, replace(count, count=3))["correct"]
    single = Prompt("a square", "single_object", (ObjectSpec("square"),))
    assert score_image(three, single)["correct"] and score_image(three, single)["extra"]
    assert not score_image(three, replace(single, objects=(ObjectSpec("square", size="large"),)))["correct"]


def test_a_shape_in_blended_colours_is_one_object_of_its_majority_colour():
    image = _image(("orange", "square", "large", 16, 16))
    image[10:14, 9:24] = (255, 255, 0)  # a yellow band across the orange square: still one square
    square = Prompt("a square", "single_object", (ObjectSpec("square"),))
    scores = score_image(image, square)
    assert scores["correct"] and not scores["extra"]
    assert score_image(image, Prompt("orange square", "colours", (ObjectSpec("square", "orange"),)))["correct"]
    assert not score_image(image, Prompt("yellow square", "colours", (ObjectSpec("square", "yellow"),)))["correct"]


def test_counting_layout_places_four_shapes_apart():
    scene = Scene(tuple(Shape("white", "triangle", "small") for _ in range(4)))
    for seed in range(20):
        centres = layout(scene, np.random.default_rng(seed))
        assert len(centres) == 4
        for i in range(4):
            for j in range(i + 1, 4):
                dx, dy = (abs(a - b) for a, b in zip(centres[i], centres[j]))
                assert max(dx, dy) >= 8 + 2  # the boxes keep the gap
    with pytest.raises(GenlabError, match="relation"):
        layout(replace(scene, relation="above"), np.random.default_rng(0))


def test_prompt_file_round_trip(tmp_path):
    suite = builtin_suite()
    path = tmp_path / "suite.jsonl"
    path.write_text(suite_lines(suite))
    again = load_suite(path)
    assert again.prompts == suite.prompts


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("not json", "line 2: not valid JSON"),
        ('{"prompt": "x", "category": "c", "objects": []}', "1 to 4 objects"),
        ('{"prompt": "x", "category": "c", "objects": [{"shape": "hexagon"}]}', "hexagon"),
        ('{"prompt": "x", "category": "c", "objects": [{"shape": "circle", "colour": "pink"}]}', "pink"),
        ('{"prompt": "x", "category": "c", "objects": [{"shape": "circle"}], "relation": "above"}', "two objects"),
        ('{"prompt": "x", "category": "c", "objects": [{"shape": "circle"}], "count": 5}', "from 1 to 4"),
        ('{"prompt": "", "category": "c", "objects": [{"shape": "circle"}]}', "non-empty"),
        ('{"prompt": "x", "category": "c", "objects": [{"shape": "circle"}], "colour": "red"}', "unknown key"),
        ("[1, 2]", "one JSON object"),
    ],
)
def test_bad_prompt_files_name_the_line(tmp_path, line, match):
    good = json.dumps({"prompt": "a circle", "category": "single_object", "objects": [{"shape": "circle"}]})
    path = tmp_path / "bad.jsonl"
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(GenlabError, match=match) as err:
        load_suite(path)
    assert "\n" not in str(err.value) and "bad.jsonl" in str(err.value)


def test_missing_and_empty_prompt_files(tmp_path):
    with pytest.raises(GenlabError, match="no such file"):
        load_suite(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(GenlabError, match="no prompts"):
        load_suite(tmp_path / "empty.jsonl")
