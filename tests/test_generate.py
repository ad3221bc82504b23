"""`genlab generate`: end to end on a tiny run trained here, one-line errors, and the shipped checkpoint."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.cli import main
from genlab.config import load_recipe, recipe_to_dict
from genlab.data.shapes import MIX
from genlab.generate import SHIPPED, SHIPPED_T2I, generate, shipped_run, text_run
from genlab.runs import load_run, read_run, shipped_asset
from tests.conftest import ROOT
from tests.t2i_fixtures import tiny_t2i_runs, use_hash_encoder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_t2i_runs(tmp_path_factory.mktemp("gen"), n=64, ae_steps=2, t2i_steps=2)[2]


def test_generate_writes_a_png(run, tmp_path, monkeypatch, capsys):
    use_hash_encoder(monkeypatch)
    out = tmp_path / "red.png"
    args = ["generate", "a red square", "--run", str(run), "--n", "3", "--steps", "2", "--sampler", "euler", "-o"]
    assert main([*args, str(out)]) == 0
    assert "3 images" in capsys.readouterr().out
    grid = np.asarray(Image.open(out))
    assert grid.ndim == 3 and grid.shape[2] == 3 and grid.shape[1] > grid.shape[0]  # one row of 3 tiles
    assert main([*args, str(tmp_path / "again.png"), "--seed", "0"]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "again.png")), grid)  # seeded: reproducible


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "  "], "non-empty prompt"),
        (["generate", "a red square", "--n", "0"], "--n must be >= 1"),
        (["generate", "a red square", "--steps", "0"], "steps must be >= 1"),
        (["generate", "a red square", "--n", "100000000"], "at most 4096 images"),
        (["generate", "a red square", "-o", "out.jpg"], ".png"),
        (["generate", "a red square", "--sampler", "nope"], "unknown sampler"),
        (["generate", "a red square", "--run", "no/such/run"], "does not exist"),
        (["generate", "a red square", "--run", "shipped:no-such"], "no shipped checkpoint 'no-such': genlab ships"),
    ],
)
def test_bad_input_is_a_one_line_error(run, tmp_path, monkeypatch, capsys, argv, message):
    use_hash_encoder(monkeypatch)
    monkeypatch.chdir(tmp_path)
    if "--run" not in argv:
        argv = [*argv, "--run", str(run)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_class_conditional_run_is_refused(digits_run, capsys):
    assert main(["generate", "a seven", "--run", str(digits_run), "-o", "x.png"]) == 2
    assert "not text-to-image" in capsys.readouterr().err


@pytest.mark.parametrize("name", SHIPPED_T2I)
def test_shipped_checkpoints_are_small_and_self_describing(name):
    folder = shipped_asset(name)
    files = {p.name: p.stat().st_size for p in folder.iterdir()}
    assert set(files) >= {"config.json", "ema.safetensors"}
    assert sum(files.values()) <= 20 * 10**6  # the budget
    recipe = json.loads((folder / "config.json").read_text())["recipe"]
    assert recipe["method"]["kind"] == "latent_flow" and recipe["method"]["text_encoder"] == "minilm"
    method = recipe["method"]
    while not method["autoencoder"]:  # "": method.init's own autoencoder, recorded inside that stage's recipe
        method = method["frozen"]["init"]["method"]
    assert method["frozen"]["autoencoder"]["method"]["kind"] == "autoencoder"  # travels inside the run
    assert read_run(f"shipped:{name}") == read_run(folder)  # "shipped:NAME" names it wherever a run goes


def test_the_default_run_is_the_shipped_curriculum_model():
    assert shipped_run() == shipped_asset("shapes-t2i-curriculum") and SHIPPED_T2I[0] == SHIPPED
    assert text_run().recipe.model.text_mode == "mmdit"


def test_the_shipped_curriculum_checkpoint_loads_by_name_and_draws(tmp_path, monkeypatch):
    """shipped:shapes-t2i-curriculum (recipes/shapes-t2i-ordered.yaml, shapes-t2i-curriculum.yaml,
    shapes-t2i-finetune.yaml, shapes-t2i-mix.yaml, shapes-t2i-mix2.yaml, shapes-t2i-mix3.yaml, shapes-t2i-mix4.yaml,
    shapes-t2i-para.yaml, shapes-t2i-para2.yaml, shapes-t2i-relations.yaml, shapes-t2i-relations2.yaml,
    shapes-t2i-grow.yaml, shapes-t2i-grow2.yaml, then shapes-t2i-shift.yaml) is a standalone run: its autoencoder
    travels inside, and neither its init run nor its autoencoder run is needed."""
    monkeypatch.chdir(tmp_path)  # the run folders its recipe names (relative paths) are not there
    run = load_run("shipped:shapes-t2i-curriculum")
    recipe = run.recipe
    assert (recipe.model.text_mode, recipe.data.grammar, recipe.data.pairs) == ("mmdit", "full", "varied")
    assert not Path(recipe.method.init).exists()  # recorded, not read
    # the recipes of the earlier stages travel inside it, each in the one it started: stages 14 to 2 on the full
    # grammar (9 to 5 on one mix, 4 on a mix of its own, 14 to 10 on a third), stage 1 on the ordered one; stages 14
    # to 8 with half their captions reworded (14 to 10 in the relations forms); stage 12 grew the 4 blocks of the
    # others to 7; stages 14 and 13 at 1e-4, stages 12 to 9, 7 and 6 at 3e-4, the others at 1e-3; stage 14 alone
    # with its training times shifted towards noise
    chain, stage = [], recipe_to_dict(recipe)  # this stage's recipe, then each earlier one's
    while stage:
        chain.append(stage)
        stage = stage["method"].get("frozen", {}).get("init")

    def each(field):  # a field of every stage's recipe, latest first
        return [field(stage) for stage in chain]

    assert each(lambda s: s["data"]["grammar"]) == ["full"] * 13 + ["ordered"]
    mixes = each(lambda s: tuple(s["data"].get("mix", MIX)))
    assert mixes[:5] == [mixes[0]] * 5 and mixes[5:10] == [mixes[5]] * 5 and mixes[0] not in mixes[5:]
    assert mixes[10] != mixes[5] and MIX not in mixes[:11] and mixes[11:] == [MIX] * 3
    assert each(lambda s: s["train"]["lr"]) == [1e-4] * 2 + [3e-4] * 4 + [1e-3, 3e-4, 3e-4] + [1e-3] * 5
    assert each(lambda s: s["data"].get("paraphrase", 0)) == [0.5] * 7 + [0] * 7
    assert each(lambda s: s["data"].get("paraphrase_forms", "first")) == ["relations"] * 5 + ["first"] * 9
    depths = each(lambda s: (s["model"].get("depth"), s["method"].get("grow", False)))
    assert depths == [(7, False), (7, False), (7, True)] + [(None, False)] * 11
    assert each(lambda s: s["method"]["time"].get("shift", 1.0)) == [2.0] + [1.0] * 13
    # it samples as its recipe says: on the reverse SDE at guidance 8 on the noisier half of the steps, the earlier
    # stages with Heun at 4 on every step
    assert recipe.sample == load_recipe(ROOT / "recipes" / "shapes-t2i-shift.yaml").sample
    guidance = each(lambda s: (s["sample"]["guidance_scale"], tuple(s["sample"].get("guidance_interval", (0, 1)))))
    assert guidance == [(8.0, (0.5, 1.0))] + [(4.0, (0, 1))] * 13
    assert (
        each(lambda s: (s["sample"]["sampler"], s["sample"]["steps"])) == [("euler_maruyama", 32)] + [("heun", 16)] * 13
    )
    x = run.sample(2, prompts=["a red circle", "a blue square"], seed=0, steps=2, sampler="euler").x
    assert x.shape == (2, 3, 32, 32) and torch.isfinite(x).all() and x.std() > 0.05


def test_the_shipped_run_draws_each_image_as_the_best_of_4_by_default(tmp_path, capsys):
    """Its recipe's sample.best_of is 4 (recipes/shapes-t2i-shift.yaml): generate, `genlab generate` and the
    suite search by default; best_of=1 (`--best-of 1`) draws once, as Run.sample always does."""
    run = text_run()
    assert run.settings.best_of == 4 and load_recipe(ROOT / "recipes" / "shapes-t2i-shift.yaml").sample.best_of == 4
    fast = {"steps": 2, "sampler": "euler"}
    prompt = "a red circle above a blue square"
    default = generate(prompt, n=2, run=run, **fast)
    assert "best of 4 by the generator" in default.sampler
    assert torch.equal(default.x, generate(prompt, n=2, run=run, best_of=4, **fast).x)
    once = generate(prompt, n=2, run=run, best_of=1, **fast)
    assert torch.equal(once.x, run.sample(2, prompts=[prompt] * 2, seed=0, **fast).x) and once.nfe < default.nfe
    args = ["generate", prompt, "--n", "2", "--steps", "2", "--sampler", "euler", "-o"]
    assert main([*args, str(tmp_path / "default.png")]) == 0
    assert "each the best of 4" in capsys.readouterr().out
    assert main([*args, str(tmp_path / "once.png"), "--best-of", "1"]) == 0
    assert "best of" not in capsys.readouterr().out
