"""Every shipped recipe trains (two steps), loads through the run layer and evaluates with `genlab eval`.

Recipes whose method builds on another run (a token prior on a VQ-VAE tokenizer, latent text-to-image on an
autoencoder) are pointed at the tiny runs of those recipes trained here first.
"""

import json
from pathlib import Path

import pytest

from genlab.cli import main
from genlab.config import read_yaml
from tests.conftest import ROOT, write_recipe

RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
# parts of other recipes, trained in this order before the recipes that use them
FIRST = (
    "digits-vqvae",
    "shapes-vqvae",
    "shapes-autoencoder",
    "shapes-clip",
    "shapes-captioner-lm",
    "shapes-captioner-stage1",
    "shapes-t2i",  # the base of the adapters (shapes-gligen, shapes-ip-adapter)
    "shapes-t2i-ordered",  # the start (method.init) of shapes-t2i-curriculum
    "shapes-t2i-curriculum",  # the start of shapes-t2i-finetune
    "shapes-t2i-finetune",  # the start of shapes-t2i-mix
    "shapes-t2i-mix",  # the start of shapes-t2i-mix2
    "shapes-t2i-mix2",  # the start of shapes-t2i-mix3
    "shapes-t2i-mix3",  # the start of shapes-t2i-mix4
    "shapes-t2i-mix4",  # the start of shapes-t2i-para
    "shapes-t2i-para",  # the start of shapes-t2i-para2
    "shapes-t2i-para2",  # the start of shapes-t2i-relations
    "shapes-t2i-relations",  # the start of shapes-t2i-relations2
    "shapes-t2i-relations2",  # the start of shapes-t2i-grow (4 blocks grown to 7)
    "shapes-t2i-grow",  # the start of shapes-t2i-grow2
    "shapes-t2i-grow2",  # the start of shapes-t2i-shift
    "videos-tae",  # the video autoencoder of videos-t2v-tae
)
TINY = [
    "--train.steps=2",
    "--train.batch_size=8",
    "--train.grad_accum=1",
    "--train.warmup_steps=0",
    "--train.log_every=1",
    "--train.checkpoint_every=2",
    "--train.sample_every=0",
    "--train.grid_columns=2",
    "--train.time_limit_minutes=0",
]


def _tiny_tree(path: Path, runs: Path) -> dict:
    tree = read_yaml(path)
    if tree["data"]["kind"] == "shapes":
        tree["data"].update(n=64, n_test=32)
    if tree["data"]["kind"] == "toy2d":
        tree["data"]["n"] = 500
    if tree["data"]["kind"] == "videos":
        tree["data"].update(n=16, n_test=8, frames=4)
    method = tree["method"]
    tokenizer = "shapes-vqvae" if tree["data"]["kind"] == "shapes" else "digits-vqvae"
    parts = (("tokenizer", tokenizer), ("autoencoder", "shapes-autoencoder"), ("encoder", "shapes-clip"))
    parts += (("base", "shapes-t2i"), ("image_encoder", "shapes-clip"))  # adapters on a frozen text-to-image run
    for key, part in parts:
        if method.get(key):  # "" (videos-t2v-init's autoencoder): the init run's own
            named = Path(method[key]).name  # runs/NAME of a recipe trained first (runs/videos-tae) is its tiny run
            method[key] = str(runs / (named if key == "autoencoder" and named in FIRST else part))
    # SFT recipes start from runs/NAME[/best]: the tiny run of recipes/NAME.yaml (trained before); shipped:NAME (the
    # video model's image start) is the checkpoint in the package
    if method.get("init") and not method["init"].startswith("shipped:"):
        method["init"] = str(runs / Path(method["init"]).relative_to("runs"))
    return tree


@pytest.fixture(scope="module")
def recipe_runs(tmp_path_factory):
    """{recipe name: run folder} of every recipe trained for two steps."""
    runs = tmp_path_factory.mktemp("recipes")
    order = sorted(RECIPES, key=lambda p: (FIRST.index(p.stem) if p.stem in FIRST else len(FIRST), p.stem))
    for path in order:
        recipe = write_recipe(runs / path.name, _tiny_tree(path, runs))
        assert main(["train", str(recipe), "--out", str(runs / path.stem), "--no-progress", *TINY]) == 0, path
    return {p.stem: runs / p.stem for p in RECIPES}


@pytest.mark.parametrize("name", [p.stem for p in RECIPES])
def test_every_recipe_trains_and_evaluates(recipe_runs, name, tmp_path):
    run = recipe_runs[name]
    out = tmp_path / "eval"
    args = ["eval", str(run), "--n", "10", "--likelihood-n", "2", "--out", str(out)]
    assert main(args) == 0, name
    report = json.loads((out / "eval.json").read_text())
    assert report["metrics"], name
    assert all(v is None or isinstance(v, (int, float, dict, list, str)) for v in report["metrics"].values())
    if "likelihood" in report and report["likelihood"].get("kind") is not None:
        unit = "bits_per_dim" if "bits_per_dim" in report["likelihood"] else "nats_per_dim"
        assert report["likelihood"][unit] == report["likelihood"][unit]  # finite, not NaN
