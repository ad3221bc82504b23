"""CLIP zero-shot classification and retrieval (genlab.clip_tasks) and `genlab clip`; captioned digits."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from genlab.cli import main
from genlab.clip_tasks import class_embeddings, parse_labels, parse_templates, retrieve, zero_shot
from genlab.config import read_yaml
from genlab.data.digits import CAPTION_TEMPLATES, DigitsConfig, build_digits, digits_vocabulary
from genlab.data.images import tensor_to_uint8
from genlab.data.shapes import Scene, Shape, render
from genlab.errors import GenlabError
from genlab.methods.clip import ClipMethod, ClipMethodConfig
from genlab.models.clip import ClipConfig, words
from tests.conftest import ROOT, write_recipe
from tests.methods.test_clip import COMBOS, TINY

LABELS = [f"a {c} {k}" for c, k in COMBOS]


def renders(seed0: int, copies: int) -> tuple[torch.Tensor, torch.Tensor]:
    """True renders of one large shape per combo (positions from the seeds) and their combo index."""
    items = [(j, c, k) for j, (c, k) in enumerate(COMBOS) for _ in range(copies)]
    x = torch.stack([render(Scene((Shape(c, k, "large"),)), seed=seed0 + i) for i, (_, c, k) in enumerate(items)])
    return x, torch.tensor([j for j, _, _ in items])


@pytest.fixture(scope="module")
def clip():
    """A tiny CLIP fitted for 60 steps on renders of 8 colour x kind combos (a few seconds)."""
    torch.manual_seed(0)
    method = ClipMethod(ClipMethodConfig(), ClipConfig(**TINY))
    x, y = renders(0, 4)
    texts = [f"a large {COMBOS[j][0]} {COMBOS[j][1]}" for j in y.tolist()]
    opt = torch.optim.AdamW(method.parameters(), lr=3e-3)
    for step in range(60):
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(step))[:16]
        loss, _ = method.loss({"x": x[idx], "text": [texts[i] for i in idx]})
        opt.zero_grad()
        loss.backward()
        opt.step()
    return method.eval()


def test_zero_shot_on_true_renders_beats_chance_by_a_wide_margin(clip):
    x, y = renders(1000, 3)  # new positions, never seen in training
    probs = zero_shot(clip, x, LABELS)
    assert probs.shape == (24, 8)
    torch.testing.assert_close(probs.sum(1), torch.ones(24))
    accuracy = float((probs.argmax(1) == y).float().mean())
    assert accuracy >= 0.6 > 3 * (1 / 8)  # chance is 1/8
    ensemble = zero_shot(clip, x, ", ".join(LABELS).replace(", ", ","), templates="builtin")
    assert float((ensemble.argmax(1) == y).float().mean()) >= 0.5


def test_prompt_ensemble_is_the_renormalised_mean_of_unit_embeddings(clip):
    templates = parse_templates("builtin")
    assert len(templates) >= 3 and templates[0] == "{}"
    w = class_embeddings(clip, LABELS[:3], templates)
    for label, row in zip(LABELS[:3], w):
        v = clip.embed_texts([t.format(label) for t in templates])  # (T, D), unit rows
        manual = v.mean(0) / v.mean(0).norm()
        torch.testing.assert_close(row, manual)
        assert not torch.allclose(row, v[0], atol=1e-3)  # the ensemble is not just the first prompt
    single = class_embeddings(clip, LABELS[:3], parse_templates(None))
    torch.testing.assert_close(single, clip.embed_texts(LABELS[:3]))
    x, _ = renders(2000, 1)
    scale = clip.logit_scale.clamp(max=np.log(100.0)).exp()
    expected = (scale * clip.embed_images(x) @ w.T).softmax(-1)
    torch.testing.assert_close(zero_shot(clip, x, LABELS[:3], templates=templates), expected)
    assert parse_templates("a picture of {}; {}") == ["a picture of {}", "{}"]
    for bad in ("no placeholder", "{} and {}"):
        with pytest.raises(GenlabError, match="templates"):
            parse_templates(bad)
    for bad in ("", " , ", "a,a"):
        with pytest.raises(GenlabError, match="labels"):
            parse_labels(bad)


def write_pngs(folder, x: torch.Tensor) -> list:
    folder.mkdir(exist_ok=True)
    paths = []
    for i, image in enumerate(tensor_to_uint8(x)):
        paths.append(folder / f"img{i:02d}.png")
        Image.fromarray(image).save(paths[-1])
    return paths


def test_retrieval_returns_the_top_k_by_cosine(clip, tmp_path):
    x, _ = renders(3000, 2)
    query = "a red circle"
    cos = F.normalize(clip.embed_images(x), dim=-1) @ clip.embed_texts([query])[0]
    hits = retrieve(clip, x, query, k=5)
    assert [int(n) for n, _ in hits] == cos.argsort(descending=True)[:5].tolist()
    torch.testing.assert_close(torch.tensor([s for _, s in hits]), cos.sort(descending=True).values[:5])
    assert len(retrieve(clip, x, query, k=100)) == len(x)
    paths = write_pngs(tmp_path / "imgs", x)  # the renders are exact in uint8, so the files score the same
    from_files = retrieve(clip, tmp_path / "imgs", query, k=3)
    assert [n for n, _ in from_files] == [str(paths[int(n)]) for n, _ in hits[:3]]
    np.testing.assert_allclose([s for _, s in from_files], [s for _, s in hits[:3]], atol=1e-5)
    with pytest.raises(GenlabError, match="query"):
        retrieve(clip, x, "  ", k=3)
    with pytest.raises(GenlabError, match="-k"):
        retrieve(clip, x, query, k=0)
    with pytest.raises(GenlabError, match=r"\(N, 3, 32, 32\)"):
        retrieve(clip, torch.zeros(2, 1, 8, 8), query)


def test_captioned_digits_and_the_recipe_vocabulary():
    data = build_digits(DigitsConfig(captions=True), split="test")
    assert len(data.texts) == len(data) == 360
    numbers = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    assert all(numbers[y] in words(t) for t, y in zip(data.texts, data.labels.tolist()))
    assert len(set(data.texts)) == 40 and data.texts == build_digits(DigitsConfig(captions=True), split="test").texts
    assert build_digits(DigitsConfig()).texts is None and data.batch(torch.arange(3))["text"] == data.texts[:3]
    vocab = digits_vocabulary()
    assert {w for t in CAPTION_TEMPLATES for w in words(t.format("seven"))} <= set(vocab)
    recipe = read_yaml(ROOT / "recipes" / "digits-clip.yaml")
    assert recipe["model"]["vocab"] == vocab and recipe["data"]["captions"] is True


# ----------------------------------------------------------------------------- the CLI, end to end


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny CLIP run on shapes and a tiny ViT classifier run (2 steps each)."""
    tmp = tmp_path_factory.mktemp("clip-cli")
    train = {"steps": 2, "batch_size": 8, "warmup_steps": 1, "log_every": 1, "checkpoint_every": 2}
    clip_tree = {
        "name": "tiny-clip",
        "data": {"kind": "shapes", "n": 32, "n_test": 8},
        "model": {"kind": "clip", "patch": 8, "width": 16, "image_depth": 1, "text_depth": 1, "heads": 2},
        "method": {"kind": "clip"},
        "train": train,
    }
    vit_tree = {
        "name": "tiny-vit",
        "data": {"kind": "digits"},
        "model": {"kind": "vit", "patch": 4, "dim": 16, "depth": 1, "heads": 2},
        "method": {"kind": "classifier"},
        "train": train,
    }
    for name, tree in (("clip", clip_tree), ("vit", vit_tree)):
        recipe = write_recipe(tmp / f"{name}.yaml", tree)
        assert main(["train", str(recipe), "--out", str(tmp / name), "--no-progress"]) == 0
    return tmp


def test_clip_cli_classify_and_retrieve(runs, tmp_path, capsys):
    x, _ = renders(4000, 1)
    paths = write_pngs(tmp_path / "imgs", x[:3])
    labels = "a red circle,a blue square,a green circle"
    assert main(["clip", str(runs / "clip"), "--classify", *map(str, paths), "--labels", labels, "--top", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("image") and len(out) == 4
    probs = zero_shot(runs / "clip", paths, labels)
    for line, path, p in zip(out[1:], paths, probs):
        best = int(p.argmax())
        assert line.startswith(str(path))
        assert f"{labels.split(',')[best]} {float(p[best]):.3f}" in line and line.count("|") == 1
    folder = ["--classify", str(tmp_path / "imgs"), "--labels", labels, "--templates", "builtin"]
    assert main(["clip", str(runs / "clip"), *folder]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4  # a folder expands to its images
    assert (
        main(["clip", str(runs / "clip"), "--retrieve", str(tmp_path / "imgs"), "--query", "a red circle", "-k", "2"])
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    hits = retrieve(runs / "clip", tmp_path / "imgs", "a red circle", k=2)
    assert len(out) == 4 and [line.split()[-1] for line in out[2:]] == [n for n, _ in hits]
    assert f"{hits[0][1]:.4f}" in out[2]


def test_clip_cli_errors(runs, tmp_path, capsys):
    x, _ = renders(5000, 1)
    image = str(write_pngs(tmp_path / "imgs", x[:1])[0])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    clip = str(runs / "clip")
    cases = [
        (["clip", str(runs / "vit"), "--classify", image, "--labels", "a,b"], "'classifier' run, not a CLIP"),
        (["clip", clip, "--classify", image, "--labels", " , "], "--labels needs non-empty"),
        (["clip", clip, "--classify", image], "--classify needs --labels"),
        (["clip", clip, "--classify", str(broken), "--labels", "a,b"], "cannot decode image"),
        (["clip", clip, "--classify", str(tmp_path / "missing.png"), "--labels", "a,b"], "not found"),
        (["clip", clip, "--retrieve", str(tmp_path / "imgs")], "--retrieve needs --query"),
        (["clip", clip, "--retrieve", image, "--query", "a red circle"], "not a folder"),
        (["clip", clip, "--retrieve", str(tmp_path / "empty"), "--query", "x"], "not a folder"),
        (["clip", clip], "give one of --classify"),
        (["clip", clip, "--classify", image, "--labels", "a", "--templates", "no slot"], "templates"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (argv, err)
    (tmp_path / "empty").mkdir()
    assert main(["clip", clip, "--retrieve", str(tmp_path / "empty"), "--query", "x"]) == 2
    assert "holds no images" in capsys.readouterr().err


def test_zero_shot_and_retrieval_keep_tensors_on_the_models_device(clip):
    """CPU images in, the CLIP on another device (tests.test_devices' pretend device): no mixed-device op."""
    from tests.test_devices import PretendDevice, pretend

    x, _ = renders(6000, 1)
    clip = copy.deepcopy(clip)  # the shared fixture stays untagged
    pretend(clip, {})
    with PretendDevice(), pytest.raises(AssertionError):  # the check bites: CPU images into the model
        clip.embed_images(x)
    with PretendDevice():
        assert zero_shot(clip, x, LABELS, templates="builtin").shape == (8, 8)
        assert len(retrieve(clip, x, "a red circle", k=2)) == 2
