import json

import pytest

from genlab.cli import main
from genlab.compare import budgeted, compare, plan, train_one
from genlab.config import load_recipe
from genlab.errors import GenlabError
from tests.conftest import write_recipe
from tests.methods.test_gmm import TINY_GMM
from tests.methods.test_vae import TINY_VAE


def test_plan_points_a_token_prior_at_its_tokenizer_and_trains_that_first(tmp_path):
    prior = write_recipe(tmp_path / "p.yaml", {"name": "prior", "method": {"kind": "x", "tokenizer": "runs/tok"}})
    other = write_recipe(tmp_path / "o.yaml", {"name": "other", "method": {"kind": "x", "tokenizer": "runs/elsewhere"}})
    tok = write_recipe(tmp_path / "t.yaml", {"name": "tok", "method": {"kind": "y"}})
    planned = plan([str(prior), str(other), str(tok)], tmp_path / "out")
    assert [name for name, _ in planned] == ["tok", "prior", "other"]
    trees = dict(planned)
    assert trees["prior"]["method"]["tokenizer"] == str(tmp_path / "out" / "tok")
    assert trees["other"]["method"]["tokenizer"] == "runs/elsewhere"  # not in this call: left alone


def test_budget_sets_steps_so_the_schedule_completes(toy_recipe):
    recipe = load_recipe(toy_recipe, ["--train.steps=1000", "--train.warmup_steps=100"])
    out = budgeted(recipe, minutes=1.0, per_step=0.1)
    assert out.train.steps == 540 and out.train.warmup_steps == 54  # 0.9 · 60 s / 0.1 s; warm-up scaled alike
    assert out.train.time_limit_minutes == 1.0 and out.train.sample_every == 0


def test_bad_input_is_one_line_genlab_error(tmp_path):
    a = write_recipe(tmp_path / "a.yaml", TINY_GMM)
    with pytest.raises(GenlabError, match="named 'tiny-gmm'"):
        plan([str(a), str(a)], tmp_path)
    with pytest.raises(GenlabError, match="budget"):
        compare([str(a)], budget_minutes=0, out=tmp_path / "o")
    assert main(["compare", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o")]) == 2


def test_compare_end_to_end_and_resumable(tmp_path):
    gmm = write_recipe(tmp_path / "gmm.yaml", TINY_GMM)
    vae = write_recipe(tmp_path / "vae.yaml", TINY_VAE)
    out = tmp_path / "cmp"
    md = compare([str(gmm), str(vae)], budget_minutes=0.01, out=out, n=20, progress=False)
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert [r["name"] for r in rows] == ["tiny-gmm", "tiny-vae"]
    for r in rows:
        assert r["fd"] is not None and r["likelihood_unit"] == "bits_per_dim" and r["steps"] >= 1
        assert r["steps"] <= r["planned_steps"] and r["train_minutes"] > 0
    assert [r["likelihood_kind"] for r in rows] == ["exact", "bound"] and [r["nfe"] for r in rows] == [0, 1]
    text = md.read_text()
    assert "| tiny-gmm | gmm |" in text and "(bound)" in text and (out / "compare.png").stat().st_size > 0

    state = (out / "tiny-gmm" / "checkpoint" / "model.safetensors").read_bytes()
    name, tree = plan([str(gmm)], out)[0]
    again = train_one(name, tree, out / name, minutes=0.01, progress=False)  # finished: not retrained
    assert (out / "tiny-gmm" / "checkpoint" / "model.safetensors").read_bytes() == state
    assert again == {k: rows[0][k] for k in again}


def test_time_limit_stops_and_saves_and_counts_over_resumes(tmp_path, toy_recipe):
    from genlab.checkpoint import find_checkpoint, read_checkpoint_config
    from genlab.train import train

    recipe = load_recipe(toy_recipe, ["--train.time_limit_minutes=1e-9"])  # spent by the first step
    train(recipe, tmp_path / "run", progress=False)
    assert read_checkpoint_config(find_checkpoint(tmp_path / "run"))[1] == 1
    train(recipe, tmp_path / "run", resume=True, progress=False)  # the spent time was saved: no further step
    assert read_checkpoint_config(find_checkpoint(tmp_path / "run"))[1] == 1


def test_tokenizer_is_trained_first_gets_no_row_and_adds_its_minutes_to_the_prior(tmp_path):
    from tests.ar_helpers import TRAIN
    from tests.methods.test_token_prior import PRIOR
    from tests.methods.test_vqvae import MODEL as VQ_MODEL

    def tiny(name: str, model: dict, method: dict) -> str:
        tree = {"name": name, "seed": 0, "data": {"kind": "digits"}, "model": model, "method": method, "train": TRAIN}
        return str(write_recipe(tmp_path / f"{name}.yaml", tree))

    prior = tiny("tiny-prior", PRIOR, {"kind": "token_prior", "tokenizer": "runs/tiny-vq"})
    vq = tiny("tiny-vq", VQ_MODEL, {"kind": "vqvae"})
    out = tmp_path / "cmp"
    compare([prior, vq], budget_minutes=0.01, out=out, n=20, progress=False)
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert [r["name"] for r in rows] == ["tiny-prior"]  # the tokenizer makes no samples: no row of its own
    assert (out / "tiny-vq" / "checkpoint").is_dir() and rows[0]["fd"] is not None
    assert 0 < rows[0]["tokenizer_minutes"] < rows[0]["train_minutes"]


def test_compare_tabulates_language_models_in_bits_per_byte(tmp_path):
    from tests.conftest import tiny_text_tree

    docs = [f"Note {i}: the {'red' if i % 3 else 'blue'} kite flew {i} metres over the hill." for i in range(60)]
    (tmp_path / "docs.txt").write_text("\n\n".join(docs))
    paths = [
        str(write_recipe(tmp_path / f"{k}.yaml", tiny_text_tree(k, tmp_path / "docs.txt", steps=5)))
        for k in ("ar_lm", "mdlm")
    ]
    md = compare(paths, budget_minutes=0.01, out=tmp_path / "cmp", progress=False)
    rows = json.loads((tmp_path / "cmp" / "compare.json").read_text())["rows"]
    assert [r["likelihood_unit"] for r in rows] == ["bits_per_byte", "bits_per_byte"]
    assert [r["likelihood_kind"] for r in rows] == ["exact", "bound"]
    assert all(0 < r["distinct_2"] <= 1 and 0 <= r["repetition_4"] <= 1 and r["fd"] is None for r in rows)
    report = json.loads((tmp_path / "cmp" / "tiny-ar_lm" / "eval" / "eval.json").read_text())
    assert report["likelihood"]["bits_per_byte"] == rows[0]["likelihood"]
    text = md.read_text()
    assert "each evaluator's default n" in text and "| distinct-2 | repetition-4 |" in text and "bits/byte" in text
