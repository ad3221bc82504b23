import json

import pytest
import torch
from safetensors.torch import load_file

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


def _files(run) -> dict:
    return {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_resume_truncates_metrics_on_rank_0_only_and_atomically(tmp_path, toy_recipe, monkeypatch):
    """Resuming drops the log rows after the checkpoint by replacing metrics.jsonl whole (a crash mid-write leaves
    the old file), and a process that is not rank 0 writes no file at all (the old trainer rewrote it on every rank
    in place)."""
    import accelerate

    import genlab.atomic

    recipe = load_recipe(toy_recipe, ["--train.steps=6", "--train.checkpoint_every=3", "--train.log_every=3"])
    run = tmp_path / "run"
    half = Trainer(recipe, run)
    run.mkdir()
    for _ in range(3):
        half.train_step()
    half.save()
    metrics = run / "metrics.jsonl"
    metrics.write_text('{"step": 3, "loss": 1.0}\n{"step": 5, "loss": 0.5}\n')  # row 5: after the checkpoint
    before = _files(run)

    with monkeypatch.context() as m:  # this process is rank 1 of 2: it trains and saves nothing itself
        m.setattr(accelerate.Accelerator, "is_main_process", property(lambda self: False))
        train(recipe, run, resume=True, progress=False)
    assert _files(run) == before

    def crash(*_):
        raise OSError("disk full")

    with monkeypatch.context() as m:  # rank 0, the rename fails: the old file is still whole
        m.setattr(genlab.atomic.os, "replace", crash)
        with pytest.raises(OSError, match="disk full"):
            train(recipe, run, resume=True, progress=False)
    assert metrics.read_text() == before[metrics].decode() and not list(run.glob(".*tmp*"))

    train(recipe, run, resume=True, progress=False)
    steps = [json.loads(r)["step"] for r in metrics.read_text().splitlines()]
    assert steps == [3, 6] and (run / "loss.png").is_file() and (run / "samples.png").is_file()


def _val_rows(run):
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]


def test_validation_loss_is_logged_and_the_best_weights_kept(tmp_path):
    from genlab.checkpoint import load_weights
    from genlab.runs import load_run
    from tests.conftest import tiny_text_tree, write_recipe

    docs = [
        f"Document {i}: the {'quick brown fox' if i % 2 else 'lazy dog'} met {i * 7} cats today." for i in range(60)
    ]
    (tmp_path / "docs.txt").write_text("\n\n".join(docs))
    tree = tiny_text_tree("mdlm", tmp_path / "docs.txt", steps=12)
    tree["train"] |= {"eval_every": 4, "eval_examples": 8, "keep_best": True, "log_every": 3, "checkpoint_every": 12}
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tree))
    train(recipe, tmp_path / "run", progress=False)
    vals = _val_rows(tmp_path / "run")
    assert [s for s, _ in vals] == [4, 8, 12]  # its own rows at 4 and 8, merged into the log row at 12
    best_step, best_val = min(vals, key=lambda sv: sv[1])
    best = load_run(tmp_path / "run" / "best")
    assert best.step == best_step and load_run(tmp_path / "run").step == 12

    # the kept weights score the logged number again, with the same noise, leaving the global RNG as it was
    trainer = Trainer(recipe, tmp_path / "other")
    load_weights(trainer.ema, tmp_path / "run" / "best" / "ema.safetensors")
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    assert trainer.validation_loss() == pytest.approx(best_val, abs=1e-6)
    assert torch.equal(torch.rand(3), expected)
    load_weights(trainer.ema, tmp_path / "run" / "checkpoint" / "ema.safetensors")
    assert trainer.validation_loss() == pytest.approx(vals[-1][1], abs=1e-6)


def test_validation_needs_a_validation_split_and_keep_best_needs_eval_every(toy_recipe):
    with pytest.raises(GenlabError, match="eval_every"):
        load_recipe(toy_recipe, ["--train.keep_best=true"])
    with pytest.raises(GenlabError, match="validation split"):
        Trainer(load_recipe(toy_recipe, ["--train.eval_every=2"]), "unused")
