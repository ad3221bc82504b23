"""genlab's CLIP: symmetric InfoNCE, learning, retrieval, the trainer hook, text encoder and CLIP score."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from genlab.config import recipe_from_dict
from genlab.data.shapes import Scene, Shape, render
from genlab.errors import GenlabError
from genlab.methods.clip import ClipMethod, ClipMethodConfig
from genlab.models.clip import ClipConfig, shapes_vocabulary, words
from genlab.text import build_text_encoder
from genlab.text.clip import clip_score, load_clip, retrieval_accuracy
from genlab.train import train
from tests.conftest import ROOT

TINY = dict(in_channels=3, image_size=32, patch=8, width=32, image_depth=1, text_depth=1, heads=2)
COMBOS = [
    ("red", "circle"),
    ("blue", "square"),
    ("green", "circle"),
    ("white", "triangle"),
    ("orange", "square"),
    ("cyan", "circle"),
    ("yellow", "triangle"),
    ("magenta", "triangle"),
]


def tiny_set(copies: int = 4):
    texts = [f"a large {c} {k}" for c, k in COMBOS for _ in range(copies)]
    x = torch.stack(
        [
            render(Scene((Shape(c, k, "large"),)), seed=i)
            for i, (c, k) in enumerate((c, k) for c, k in COMBOS for _ in range(copies))
        ]
    )
    return x, texts


def fit(method: ClipMethod, x, texts, steps: int) -> list[float]:
    opt = torch.optim.AdamW(method.parameters(), lr=3e-3)
    losses = []
    for step in range(steps):
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(step))[:16]
        loss, _ = method.loss({"x": x[idx], "text": [texts[i] for i in idx]})
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_loss_is_symmetric_infonce():
    torch.manual_seed(0)
    method = ClipMethod(ClipMethodConfig(), ClipConfig(**TINY))
    x, texts = tiny_set(1)
    loss, logs = method.loss({"x": x, "text": texts})
    u, v = method.embed_images(x), method.embed_texts(texts)
    torch.testing.assert_close(u.norm(dim=1), torch.ones(8))
    logits = (1 / 0.07) * u @ v.T
    target = torch.arange(8)
    expected = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)
    assert {"loss", "acc_i2t", "logit_scale"} <= set(logs)
    loss.backward()
    assert method.logit_scale.grad is not None and method.model.text.embed.weight.grad.abs().sum() > 0


def test_loss_decreases_and_retrieval_beats_chance():
    torch.manual_seed(0)
    method = ClipMethod(ClipMethodConfig(), ClipConfig(**TINY))
    x, texts = tiny_set()
    before = retrieval_accuracy(x, texts, method)
    losses = fit(method, x, texts, 60)
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    after = retrieval_accuracy(x, texts, method.eval())
    assert after >= 0.5 > 1 / len(COMBOS) and after > before  # chance is 1/8
    shuffled = texts[len(texts) // 2 :] + texts[: len(texts) // 2]
    assert clip_score(x, texts, method) > clip_score(x, shuffled, method)


def test_tokenizer_and_vocabulary_are_deterministic():
    vocab = shapes_vocabulary()
    assert vocab == sorted(set(vocab)) and {"red", "triangle", "left", ":"} <= set(vocab)
    assert words("Two shapes: a RED circle.") == ["two", "shapes", ":", "a", "red", "circle", "."]
    tower = ClipMethod(ClipMethodConfig(), ClipConfig(**TINY)).model.text
    ids, keep = tower.tokenize(["a red circle", "", "a purple circle"])
    assert ids[0, 0] == ids[1, 0] == 2 and keep.sum(1).tolist() == [4, 1, 4] and ids[2, 2] == 1  # <unk>
    with pytest.raises(GenlabError, match="repeated"):
        ClipMethod(ClipMethodConfig(), ClipConfig(**TINY, vocab=["red", "red"]))


def test_clip_run_round_trip_as_text_encoder(tmp_path):
    tree = {
        "name": "tiny-clip",
        "data": {"kind": "shapes", "n": 64, "n_test": 8},
        "model": {k: v for k, v in TINY.items() if k not in ("in_channels", "image_size")} | {"kind": "clip"},
        "method": {"kind": "clip"},
        "train": {"steps": 2, "batch_size": 16, "warmup_steps": 1, "log_every": 1, "checkpoint_every": 2},
    }
    run = train(recipe_from_dict(tree, "test"), tmp_path / "run", progress=False)
    assert not (run / "samples.png").exists()  # not generative: no grid
    config = json.loads((run / "checkpoint" / "config.json").read_text())
    assert config["recipe"]["model"]["vocab"] == shapes_vocabulary()  # the vocabulary travels with the run
    encoder = build_text_encoder(f"clip:{run}")
    clip = load_clip(run)
    texts = ["a small red circle to the left of a blue square", ""]
    out = encoder.encode(texts)
    assert out.tokens.shape == (2, 12, 32) and out.mask.sum(1).tolist() == [12, 1] and encoder.dim == 32
    torch.testing.assert_close(out.pooled, clip.embed_texts(texts))
    assert encoder.name == f"clip:{run}" and list(encoder.parameters()) == []
    assert torch.equal(build_text_encoder(f"clip:{run}").encode(texts[:1]).pooled, out.pooled[:1])
    with pytest.raises(GenlabError, match="not generative"):
        clip.sample(4)


def test_shipped_recipe_parses_and_round_trips():
    from genlab.config import load_recipe, recipe_to_dict

    recipe = load_recipe(ROOT / "recipes" / "shapes-clip.yaml")
    assert recipe.method.kind == recipe.model.kind == "clip" and recipe.data.kind == "shapes"
    assert recipe_from_dict(recipe_to_dict(recipe), "x") == recipe
