"""Every recipe value is checked at load (file, command-line override, checkpoint config.json), before any work."""

import json
import typing

import pytest
import torch

from genlab.checkpoint import read_checkpoint_config
from genlab.config import TrainConfig, load_recipe, recipe_from_dict, recipe_to_dict
from genlab.errors import GenlabError
from genlab.settings import SampleSettings
from tests.conftest import ROOT, TINY_TOY, write_recipe

RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))

BAD = [  # (override, key the message must name)
    ("--train.grad_accum=0", "train.grad_accum"),  # was ZeroDivisionError in the trainer
    ("--train.log_every=0", "train.log_every"),  # was ZeroDivisionError
    ("--train.checkpoint_every=0", "train.checkpoint_every"),  # was ZeroDivisionError
    ("--train.batch_size=0", "train.batch_size"),  # was a traceback
    ("--train.lr=-1", "train.lr"),  # was a traceback
    ("--train.lr=nan", "train.lr"),  # was a traceback
    ("--train.lr=.inf", "train.lr"),
    ("--method.label_dropout=2", "method.label_dropout"),  # was silently accepted
    ("--train.warmup_steps=-5", "train.warmup_steps"),  # was silently accepted
    ("--train.steps=-3", "train.steps"),  # trained nothing, exit 0
    ("--train.steps=-5", "train.steps"),
    ("--model.hidden=0", "model.hidden"),  # was silently accepted
    ("--sample.sampler=heunn", "sample.sampler"),  # was reported only after training
    ("--sample.grid=unifrom", "sample.grid"),
    ("--sample.steps=0", "sample.steps"),
    ("--sample.guidance_scale=nan", "sample.guidance_scale"),
    ("--sample.guidance_interval=[0.8, 0.2]", "sample.guidance_interval"),  # guides nowhere
    ("--sample.guidance_interval=[0.5, 1.5]", "sample.guidance_interval[1]"),
    ("--sample.best_of=0", "sample.best_of"),
    ("--sample.best_of=65", "sample.best_of"),
    ("--train.betas=[0.9, 1.0]", "train.betas[1]"),
    ("--train.ema_decay=1.5", "train.ema_decay"),
    ("--train.min_lr_ratio=-0.1", "train.min_lr_ratio"),
    ("--train.grad_clip=-1", "train.grad_clip"),
    ("--train.time_limit_minutes=-1", "train.time_limit_minutes"),
    ("--seed=-1", "seed"),
    ("--name=../elsewhere", "name"),
    ("--data.n=0", "data.n"),
    ("--data.seed=-2", "data.seed"),
    ("--model.time_embed=33", "model.time_embed"),  # odd: the sinusoid has cos and sin halves
    ("--model.dropout=1", "model.dropout"),
    ("--method.path=rectifed", "method.path"),
    ("--method.target=velocity", "method.target"),
    ("--method.loss_weight=snr", "method.loss_weight"),
    ("--method.sigma_data=0", "method.sigma_data"),
    ("--method.time.kind=normal", "method.time.kind"),
    ("--method.time.std=0", "method.time.std"),
    ("--method.time.t_min=1", "method.time.t_max"),  # the window t_min < t_max is empty
]


@pytest.mark.parametrize(("override", "key"), BAD, ids=[b[0].lstrip("-") for b in BAD])
def test_bad_values_are_named_with_key_and_file(toy_recipe, override, key):
    with pytest.raises(GenlabError) as e:
        load_recipe(toy_recipe, [override])
    message = str(e.value)
    assert message.startswith(f"{toy_recipe}: {key} "), message
    assert "\n" not in message


def test_message_reads_like_the_rule(toy_recipe):
    with pytest.raises(GenlabError, match=r"toy.yaml: train.lr must be a finite number > 0, got nan$"):
        load_recipe(toy_recipe, ["--train.lr=nan"])
    with pytest.raises(GenlabError, match=r"train.grad_accum must be an integer >= 1, got 0$"):
        load_recipe(toy_recipe, ["--train.grad_accum=0"])
    with pytest.raises(GenlabError, match=r"method.label_dropout must be a finite number in \[0, 1\], got 2.0$"):
        load_recipe(toy_recipe, ["--method.label_dropout=2"])


def test_cross_field_rule_batch_divisible_by_accumulation(toy_recipe):
    with pytest.raises(GenlabError, match=r"train.batch_size must be divisible by grad_accum=5"):
        load_recipe(toy_recipe, ["--train.grad_accum=5"])  # TINY_TOY has batch_size 64
    assert load_recipe(toy_recipe, ["--train.grad_accum=4"]).train.grad_accum == 4
    with pytest.raises(GenlabError, match="divisible"):  # direct construction checks it too
        TrainConfig(batch_size=10, grad_accum=3)


def test_defaults_are_checked_too(tmp_path):
    tree = {**TINY_TOY, "data": {"kind": "npz"}}  # data.path left at its empty default
    with pytest.raises(GenlabError, match=r"data.path must be set"):
        load_recipe(write_recipe(tmp_path / "npz.yaml", tree))


def test_legal_edge_values_pass(toy_recipe):
    r = load_recipe(
        toy_recipe,
        [
            "--train.warmup_steps=50",
            "--sample.grid=auto",
            "--train.sample_every=0",
            "--method.label_dropout=0",
            "--train.grad_clip=0",
            "--train.lr=1",
        ],
    )
    assert r.train.warmup_steps > r.train.steps and r.sample.grid == "auto"  # warmup may outlast the run


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_shipped_recipe_loads_and_round_trips(path):
    recipe = load_recipe(path)
    assert recipe_from_dict(recipe_to_dict(recipe), "x") == recipe


def test_shipped_t2i_checkpoint_config_loads():
    recipe, _ = read_checkpoint_config(ROOT / "src" / "genlab" / "assets" / "shapes-t2i")
    assert recipe.method.kind == "latent_flow"


def test_checkpoint_config_is_validated(tmp_path, toy_recipe):
    tree = recipe_to_dict(load_recipe(toy_recipe))
    tree["train"]["log_every"] = 0
    (tmp_path / "config.json").write_text(json.dumps({"format": 1, "step": 3, "recipe": tree}))
    with pytest.raises(GenlabError, match=r"config.json: train.log_every must be an integer >= 1, got 0"):
        read_checkpoint_config(tmp_path)


def test_name_rules_follow_the_registries():
    """The names a recipe may use are the names the library implements."""
    from genlab.methods.flow import FlowConfig
    from genlab.methods.gmm import COVARIANCES, GMMConfig
    from genlab.paths import PATHS, TARGETS, TimeSampling, get_path, loss_weight, sample_time
    from genlab.samplers import SAMPLERS

    hints = typing.get_type_hints(FlowConfig)
    assert set(typing.get_args(hints["path"])) == set(PATHS)
    assert set(typing.get_args(hints["target"])) == set(TARGETS)
    for name in typing.get_args(hints["loss_weight"]):
        w = loss_weight(name, get_path("rectified"), "flow", torch.full((3,), 0.5))
        assert w.shape == (3,) and bool(torch.isfinite(w).all())
    for kind in ("uniform", "logit_normal"):
        assert sample_time(TimeSampling(kind=kind), 4).shape == (4,)
    assert set(typing.get_args(typing.get_type_hints(GMMConfig)["covariance"])) == set(COVARIANCES)
    sampler_rule = typing.get_type_hints(SampleSettings, include_extras=True)["sampler"].__metadata__[0]
    assert set(sampler_rule.choices()) == set(SAMPLERS)


def test_cli_train_with_negative_steps_exits_2_and_writes_nothing(tmp_path, capsys):
    from genlab.cli import main

    out = tmp_path / "out"
    code = main(["train", str(ROOT / "recipes" / "digits-flow.yaml"), "--train.steps=-5", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "train.steps" in err and "-5" in err
    assert not out.exists()


def test_every_float_must_be_finite(toy_recipe):
    with pytest.raises(GenlabError, match=r"sample.eta must be a finite number >= 0, got inf"):
        load_recipe(toy_recipe, ["--sample.eta=.inf"])
