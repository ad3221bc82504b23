"""Shared checks for the autoregressive families (pixelcnn, vqvae, token_prior): every one trains with the
one trainer, lowers its loss in a few steps, round-trips its checkpoint and resumes bit-identically."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from genlab.config import load_recipe
from genlab.data import build_dataset
from genlab.runs import build_method, load_run
from genlab.train import Trainer, resolve, train
from tests.conftest import write_recipe

TRAIN = {
    "steps": 6,
    "batch_size": 32,
    "warmup_steps": 1,
    "log_every": 2,
    "checkpoint_every": 3,
    "lr": 3e-3,
    "grid_columns": 2,
}


def tiny_recipe(tmp_path: Path, model: dict, method: dict, **train_overrides):
    tree = {
        "name": f"tiny-{method['kind']}",
        "seed": 0,
        "data": {"kind": "digits"},
        "model": model,
        "method": method,
        "train": {**TRAIN, **train_overrides},
    }
    return load_recipe(write_recipe(tmp_path / f"{method['kind']}.yaml", tree))


def build(recipe):
    """(method built as the trainer builds it, training split)."""
    data = build_dataset(recipe.data)
    return build_method(resolve(recipe, data)), data


def losses_fall(recipe, tmp_path: Path, *, steps: int = 12) -> tuple[float, float]:
    """(mean loss of the first 3 steps, of the last 3) of a short run on the ordinary trainer."""
    trainer = Trainer(recipe, tmp_path / "falls")
    losses = [trainer.train_step()["loss"] for _ in range(steps)]
    return sum(losses[:3]) / 3, sum(losses[-3:]) / 3


def assert_round_trip(recipe, tmp_path: Path, fn) -> None:
    """fn(method) (deterministic) is identical on the trainer's EMA copy and the reloaded checkpoint."""
    trainer = Trainer(recipe, tmp_path / "rt")
    (tmp_path / "rt").mkdir()
    for _ in range(3):
        trainer.train_step()
    trainer.save()
    loaded = load_run(tmp_path / "rt")
    assert loaded.step == 3
    torch.manual_seed(0)
    expected = fn(trainer.ema.eval())
    torch.manual_seed(0)
    assert torch.equal(fn(loaded.method), expected)


def assert_resume_identical(recipe, tmp_path: Path) -> None:
    """A run interrupted after 2 steps and resumed ends with the weights (and buffers) of an uninterrupted one."""
    train(recipe, tmp_path / "full", progress=False)
    half = Trainer(recipe, tmp_path / "half")
    (tmp_path / "half").mkdir()
    for _ in range(2):
        half.train_step()
    half.save()
    train(recipe, tmp_path / "half", resume=True, progress=False)
    for name in ("model", "ema"):
        a, b = (load_file(str(tmp_path / run / "checkpoint" / f"{name}.safetensors")) for run in ("full", "half"))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert (tmp_path / "full" / "samples.png").is_file()
