"""`genlab caption` and genlab.caption end to end on tiny runs, and the captioner shipped in the package."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from genlab.caption import caption, shipped_captioner
from genlab.cli import main
from genlab.data.images import tensor_to_uint8
from genlab.data.shapes import Scene, Shape, parse_caption, render
from genlab.errors import GenlabError
from genlab.runs import load_run
from tests.conftest import ROOT, write_recipe

TRAIN = {"steps": 2, "batch_size": 8, "warmup_steps": 1, "log_every": 1, "checkpoint_every": 2}
CAPTIONER = {
    "data": {"kind": "shapes", "n": 32, "n_test": 8},
    "model": {"kind": "captioner", "dim": 16, "depth": 1, "heads": 2, "projector_hidden": 16},
    "train": TRAIN,
}


def write_pngs(folder, x):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(tensor_to_uint8(x)):
        paths.append(folder / f"{i}.png")
        Image.fromarray(img).save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny CLIP run, a stage-1 captioner on its image tower and a stage-2 captioner from that (2 steps each)."""
    tmp = tmp_path_factory.mktemp("caption-cli")
    clip = {
        "name": "tiny-clip",
        "data": {"kind": "shapes", "n": 32, "n_test": 8},
        "model": {"kind": "clip", "patch": 8, "width": 16, "image_depth": 1, "text_depth": 1, "heads": 2},
        "method": {"kind": "clip"},
        "train": TRAIN,
    }
    stage1 = {
        **CAPTIONER,
        "name": "tiny-cap1",
        "method": {"kind": "captioner", "stage": 1, "encoder": str(tmp / "clip")},
    }
    stage2 = {**CAPTIONER, "name": "tiny-cap2", "method": {"kind": "captioner", "stage": 2, "init": str(tmp / "cap1")}}
    for name, tree in (("clip", clip), ("cap1", stage1), ("cap2", stage2)):
        recipe = write_recipe(tmp / f"{name}.yaml", tree)
        assert main(["train", str(recipe), "--out", str(tmp / name), "--no-progress"]) == 0
    return tmp


def test_caption_cli_end_to_end(runs, tmp_path, capsys):
    x = torch.stack([render(Scene((Shape(c, "circle", "large"),)), seed=i) for i, c in enumerate(("red", "blue"))])
    paths = [str(p) for p in write_pngs(tmp_path / "imgs", x)]
    run = str(runs / "cap2")
    assert main(["caption", *paths, "--run", run]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(": ", 1)[0] for line in out] == paths
    assert [line.split(": ", 1)[1] for line in out] == caption(paths, run=run)  # the CLI prints the API's captions
    assert caption(x, run=run) == caption(paths, run=run)  # a tensor or its PNGs: the same captions
    sampled = ["caption", *paths, "--run", run, "--temperature", "1.5", "--top-p", "0.9", "--seed", "3"]
    draws = []
    for _ in range(2):
        assert main(sampled) == 0
        draws.append(capsys.readouterr().out.splitlines())
    assert draws[0] == draws[1] and len(draws[0]) == 2  # seeded: the same draw twice
    assert main(["caption", paths[0], "--run", run, "--question", "what colour is the circle?"]) == 0
    answer = capsys.readouterr().out.strip().split(": ", 1)[1]
    assert answer == caption(paths[0], run=run, question="what colour is the circle?")[0]
    loaded = load_run(runs / "cap2")  # a saved stage-2 run rebuilds its nested frozen parts and loads its weights
    assert loaded.method.cfg.stage == 2 and loaded.recipe.method.frozen["init"]["method"]["stage"] == 1
    assert torch.equal(loaded.method.encoder.model.image.pos, load_run(runs / "clip").method.model.image.pos)


def test_caption_cli_errors(runs, tmp_path, capsys):
    image = str(write_pngs(tmp_path / "imgs", render(Scene((Shape("red", "square", "large"),)))[None])[0])
    run = str(runs / "cap2")
    cases = [
        (["caption", image, "--run", str(runs / "clip")], "'clip' run, not a captioner"),
        (["caption", image, "--run", run, "--question", "where is the zebra?"], "cannot read the question"),
        (["caption", image, "--run", run, "--question", "  "], "--question needs some text"),
        (["caption", image, "--run", run, "--top-p", "0"], "--top-p must be in (0, 1]"),
        (["caption", image, "--run", run, "--temperature", "-1"], "--temperature must be >= 0"),
        (["caption", str(tmp_path / "missing.png"), "--run", run], "not found"),
        (["caption", image, "--run", str(tmp_path / "nothing")], "does not exist"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (argv, err)
    with pytest.raises(GenlabError, match="images must be"):
        caption(torch.zeros(1, 3, 16, 16), run=run)


def test_shipped_captioner_captions_true_renders():
    folder = shipped_captioner()
    files = {p.name: p.stat().st_size for p in folder.iterdir()}
    assert set(files) == {"config.json", "ema.safetensors"} and sum(files.values()) <= 20 * 2**20
    package_data = [
        line for line in (ROOT / "pyproject.toml").read_text().splitlines() if line.startswith("genlab = [")
    ]
    assert len(package_data) == 1 and '"assets/*/*"' in package_data[0]  # the asset folder ships in the wheel
    scenes = [
        Scene((Shape("red", "circle", "large"),)),
        Scene((Shape("blue", "square", "large"),)),
        Scene((Shape("white", "triangle", "large"),)),
    ]
    x = torch.stack([render(s, seed=i) for i, s in enumerate(scenes)])
    for scene, text in zip(scenes, caption(x)):
        spec = parse_caption(text)
        assert spec is not None and len(spec.shapes) == 1, text
        assert (spec.shapes[0].colour, spec.shapes[0].kind) == (scene.shapes[0].colour, scene.shapes[0].kind), text
    assert caption(x[1], question="what colour is the square?") == ["blue"]
