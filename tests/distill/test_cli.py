"""`genlab distill` end to end on a tiny digits teacher: every method writes an ordinary run that samples and
evaluates, resumes bit-identically, and bad input is refused in one line."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from genlab.cli import main
from genlab.distill import student_recipe, write_pairs
from genlab.errors import GenlabError
from genlab.runs import load_run
from genlab.train import Trainer, train

TINY = ["--train.steps=2", "--train.batch_size=16", "--train.log_every=1", "--train.checkpoint_every=2"]
EXTRA = {
    "progressive": ["--method.teacher_steps=4", "--method.rounds=2", "--method.steps_per_round=1"],
    "reflow": [],
    "consistency": ["--method.n_start=4", "--method.n_end=8"],
    "guidance_distill": [],
    "meanflow": [],
}


@pytest.mark.parametrize("method", list(EXTRA))
def test_every_method_distills_samples_and_evaluates(tmp_path, digits_run, method, capsys):
    out = tmp_path / method
    args = ["distill", str(digits_run), "--method", method, "-o", str(out), "--no-progress", "--pairs", "32"]
    assert main([*args, *TINY, *EXTRA[method]]) == 0
    run = load_run(out)
    assert run.recipe.method.kind == method and run.step == 2
    assert run.recipe.method.frozen["teacher"]["name"] == "tiny-digits"  # the teacher travels with the run
    teacher_size = sum(p.numel() for p in load_run(digits_run).method.parameters())
    info = run.info()  # the teacher is counted apart from what the run trains
    assert info["frozen_parameters"] >= teacher_size and info["parameters"] > 0
    x = run.sample(10, seed=0)
    assert x.x.shape == (10, 1, 8, 8) and torch.isfinite(x.x).all()
    if method in ("consistency", "meanflow"):
        assert x.nfe == 1  # one network evaluation
    assert main(["sample", str(out), "-o", str(tmp_path / "s.png"), "--n", "10"]) == 0
    assert main(["eval", str(out), "--n", "10", "--likelihood-n", "0"]) == 0
    report = json.loads((out / "eval" / "eval.json").read_text())
    assert report["metrics"]


def test_student_recipe_inherits_the_teacher_and_takes_overrides(digits_run):
    recipe = student_recipe(digits_run, "progressive", ["--method.rounds=1", "--method.steps_per_round=7"])
    teacher = load_run(digits_run).recipe
    assert recipe.model == teacher.model and recipe.data == teacher.data
    assert recipe.method.teacher_guidance == teacher.sample.guidance_scale  # the guided prediction is distilled
    assert recipe.method.teacher_guidance_interval == teacher.sample.guidance_interval  # at the times it is guided
    assert recipe.sample.guidance_scale == 1.0  # ... so the student samples without CFG
    assert recipe.train.steps == 7 and recipe.sample.steps == recipe.method.teacher_steps // 2
    g = student_recipe(digits_run, "guidance_distill")
    assert g.sample.guidance_scale == teacher.sample.guidance_scale  # it takes the scale as an input


def test_reflow_pairs_are_deterministic_from_the_seed(tmp_path, digits_run):
    a = write_pairs(digits_run, tmp_path / "a.npz", n=12, seed=3, progress=False)
    b = write_pairs(digits_run, tmp_path / "b.npz", n=12, seed=3, progress=False)
    c = write_pairs(digits_run, tmp_path / "c.npz", n=12, seed=4, progress=False)
    za, zb, zc = (np.load(p) for p in (a, b, c))
    assert np.array_equal(za["noise"], zb["noise"]) and np.array_equal(za["x"], zb["x"])
    assert not np.array_equal(za["noise"], zc["noise"])
    assert list(za["labels"][:11]) == [*range(10), 0]  # classes cycled
    prov = json.loads(str(za["provenance"]))
    assert prov["teacher"] == str(digits_run) and prov["seed"] == 3 and prov["n"] == 12


def test_reflow_pairs_of_a_stochastic_teacher_recipe_come_from_its_ode(tmp_path, digits_run):
    sde = tmp_path / "sde"
    shutil.copytree(digits_run, sde)
    config = json.loads((sde / "checkpoint" / "config.json").read_text())
    config["recipe"]["sample"].update(sampler="euler_maruyama", steps=8)
    (sde / "checkpoint" / "config.json").write_text(json.dumps(config))
    ode = tmp_path / "ode"
    shutil.copytree(digits_run, ode)
    config["recipe"]["sample"].update(sampler="heun")  # Euler–Maruyama's ODE, on its steps
    (ode / "checkpoint" / "config.json").write_text(json.dumps(config))
    a = np.load(write_pairs(sde, tmp_path / "a.npz", n=6, seed=1, progress=False))
    b = np.load(write_pairs(ode, tmp_path / "b.npz", n=6, seed=1, progress=False))
    assert np.array_equal(a["x"], b["x"])  # a coupling is a function of the noise: no fresh noise on the way
    assert json.loads(str(a["provenance"]))["settings"]["sampler"] == "heun"


@pytest.mark.parametrize("method", ["progressive", "consistency"])
def test_distilled_runs_resume_bit_identically(tmp_path, digits_run, method):
    extra = {
        "progressive": ["--method.teacher_steps=8", "--method.rounds=2", "--method.steps_per_round=2"],
        "consistency": ["--method.target_ema=0.5", "--method.n_start=2", "--method.n_end=8"],
    }[method]
    recipe = student_recipe(digits_run, method, ["--train.steps=4", "--train.batch_size=8", *extra])
    train(recipe, tmp_path / "full", progress=False)
    half = Trainer(recipe, tmp_path / "half")
    (tmp_path / "half").mkdir()
    for _ in range(3):  # stops inside round 1 (progressive) / with an EMA target that has moved (consistency)
        half.train_step()
    half.save()
    train(recipe, tmp_path / "half", resume=True, progress=False)
    for w in ("model", "ema"):
        a = load_file(str(tmp_path / "full" / "checkpoint" / f"{w}.safetensors"))
        b = load_file(str(tmp_path / "half" / "checkpoint" / f"{w}.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bad_input_is_refused_in_one_line(tmp_path, digits_run, gan_run, capsys):
    assert main(["distill", str(tmp_path / "none"), "--method", "reflow"]) == 2
    assert "no such run folder" in capsys.readouterr().err
    assert main(["distill", str(gan_run), "--method", "consistency", "-o", str(tmp_path / "x")]) == 2
    assert "distill a run sampled by an ODE" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    with pytest.raises(GenlabError, match="divisible by 2"):
        student_recipe(digits_run, "progressive", ["--method.teacher_steps=6", "--method.rounds=2"])
