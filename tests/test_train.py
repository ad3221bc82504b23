import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from tests.conftest import ROOT

from genlab.config import load_recipe
from genlab.errors import GenlabError
from genlab.train import Trainer, batch_indices, learning_rate, train


def test_batch_stream_is_seeded_epoch_permutations():
    n, b = 10, 4
    stream = torch.cat([batch_indices(n, b, s, seed=3) for s in range(5)])  # 20 = two epochs
    assert sorted(stream[:10].tolist()) == list(range(10)) and sorted(stream[10:].tolist()) == list(range(10))
    assert torch.equal(batch_indices(n, b, 2, seed=3), stream[8:12])  # a pure function of the step
    assert not torch.equal(batch_indices(n, b, 0, seed=4), stream[:4])


def test_learning_rate_warmup_then_cosine(toy_recipe):
    cfg = load_recipe(toy_recipe, ["--train.steps=100", "--train.warmup_steps=10"]).train
    lrs = [learning_rate(cfg, s) for s in range(100)]
    assert lrs[0] == pytest.approx(cfg.lr / 10) and lrs[9] == pytest.approx(cfg.lr)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[-1] == pytest.approx(cfg.lr * cfg.min_lr_ratio, rel=0.01)


def _weights(run):
    return [load_file(str(run / "checkpoint" / f"{w}.safetensors")) for w in ("model", "ema")]


@pytest.mark.parametrize("recipe_fixture", ["toy_recipe", "digits_recipe"])
def test_resume_is_identical_to_uninterrupted(tmp_path, request, recipe_fixture):
    recipe = load_recipe(request.getfixturevalue(recipe_fixture))
    train(recipe, tmp_path / "full", progress=False)

    half = Trainer(recipe, tmp_path / "half")  # interrupted after 5 steps, checkpointed there
    (tmp_path / "half").mkdir()
    for _ in range(5):
        half.train_step()
    half.save()
    train(recipe, tmp_path / "half", resume=True, progress=False)

    for a, b in zip(_weights(tmp_path / "full"), _weights(tmp_path / "half")):
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows][-1] == recipe.train.steps


def test_existing_run_is_not_overwritten(tmp_path, toy_recipe):
    recipe = load_recipe(toy_recipe, ["--train.steps=2"])
    train(recipe, tmp_path / "run", progress=False)
    before = (tmp_path / "run" / "checkpoint" / "model.safetensors").read_bytes()
    with pytest.raises(GenlabError, match="already holds a run"):
        train(recipe, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "checkpoint" / "model.safetensors").read_bytes() == before


def test_batch_must_split_across_processes(toy_recipe):
    with pytest.raises(GenlabError, match="divisible"):
        Trainer(load_recipe(toy_recipe, ["--train.grad_accum=5"]), "unused")


def test_two_processes_match_one(tmp_path, toy_recipe):
    """torchrun with 2 CPU processes (gloo): ranks agree exactly, and match one process that takes the
    same global batch in 2 accumulation steps within 1e-5 (only the float summation order differs)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    worker = [str(ROOT / "tests" / "ddp_worker.py"), str(toy_recipe)]
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    *worker, str(tmp_path / "two")], check=True, env=env, timeout=240, capture_output=True)
    subprocess.run([sys.executable, *worker, str(tmp_path / "one"), "--train.grad_accum=2"], check=True, env=env,
                   timeout=240)
    r0, r1 = (load_file(str(tmp_path / "two" / f"rank{r}.safetensors")) for r in (0, 1))
    single = load_file(str(tmp_path / "one" / "rank0.safetensors"))
    for k in single:
        assert torch.equal(r0[k], r1[k]), k
        assert torch.allclose(r0[k], single[k], atol=1e-5), (k, (r0[k] - single[k]).abs().max())
