"""Text runs end to end through the trainer (samples.txt), the Run API (generate_text, infill), the CLI
(genlab generate-text) and the evaluator (genlab eval): tiny ar_lm and mdlm runs on a small .txt corpus."""

import json
import math

import pytest

from genlab.cli import main
from genlab.runs import load_run
from tests.conftest import tiny_text_tree, write_recipe

DOCS = [f"The quick brown fox number {i} jumps over the lazy dog, and the cat sat on the mat." for i in range(80)]


@pytest.fixture(scope="module")
def text_runs(tmp_path_factory):
    """{kind: run folder}: an ar_lm and an mdlm trained by genlab train (30 steps, one corpus, samples every 15)."""
    tmp = tmp_path_factory.mktemp("text")
    (tmp / "docs.txt").write_text("\n\n".join(DOCS))
    runs = {}
    for kind in ("ar_lm", "mdlm"):
        tree = tiny_text_tree(kind, tmp / "docs.txt", steps=30)
        tree["train"].update(log_every=10, sample_every=15)
        tree["sample"] = {"steps": 4}
        recipe = write_recipe(tmp / f"{kind}.yaml", tree)
        assert main(["train", str(recipe), "--out", str(tmp / kind), "--no-progress"]) == 0
        runs[kind] = tmp / kind
    return runs


def samples_of(text: str) -> list[str]:
    """The texts of a samples.txt / generate-text output."""
    parts = text.split("----- sample ")[1:]
    return [p.split(" -----\n", 1)[1][:-2] for p in parts]


@pytest.mark.parametrize("kind", ["ar_lm", "mdlm"])
def test_training_writes_samples_txt_and_sane_metrics(text_runs, kind):
    run = text_runs[kind]
    assert (run / "samples.txt").is_file() and not (run / "samples.png").exists()
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_0000015.txt", "step_0000030.txt"]
    texts = samples_of((run / "samples.txt").read_text(encoding="utf-8"))
    assert len(texts) == 8 and len(set(texts)) > 1
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30]
    assert rows[-1]["loss"] < rows[0]["loss"] and all(math.isfinite(r["loss"]) for r in rows)
    assert rows[-1]["bits_per_token"] == pytest.approx(rows[-1]["loss"] / math.log(2), rel=1e-4)


def test_generate_text_ar(text_runs, capsys, tmp_path):
    run = load_run(text_runs["ar_lm"])
    texts = run.generate_text("The quick", n=3, seed=1)
    assert len(texts) == 3 and all(t.startswith("The quick") for t in texts)
    assert texts == run.generate_text("The quick", n=3, seed=1)  # seeded
    assert texts != run.generate_text("The quick", n=3, seed=2)
    greedy = run.generate_text("The quick", n=2, temperature=0)
    assert greedy[0] == greedy[1]
    short = run.generate_text("The quick", n=2, temperature=0, max_tokens=3)
    assert short[0] != greedy[0] and greedy[0].startswith(short[0])  # the first 3 of the same tokens
    assert main(["generate-text", str(text_runs["ar_lm"]), "--prompt", "The quick", "--n", "3", "--seed", "1"]) == 0
    assert samples_of(capsys.readouterr().out) == texts
    out = tmp_path / "out.txt"
    assert main(["generate-text", str(text_runs["ar_lm"]), "--n", "2", "--top-k", "5", "-o", str(out)]) == 0
    assert len(samples_of(out.read_text(encoding="utf-8"))) == 2


def test_generate_text_and_infill_mdlm(text_runs, capsys, tmp_path):
    run = load_run(text_runs["mdlm"])
    for opts in ({}, {"steps": 8, "block_length": 4, "remasking": "random"}, {"steps": 15, "temperature": 0}):
        texts = run.generate_text("The quick", n=2, seed=0, **opts)
        assert len(texts) == 2 and all(t.startswith("The quick") for t in texts)
        assert texts == run.generate_text("The quick", n=2, seed=0, **opts)
    filled = run.infill("The quick ____ over the lazy dog", n=3, gap_tokens=3, steps=6)
    assert len(filled) == 3 and all(t.startswith("The quick ") and t.endswith(" over the lazy dog") for t in filled)
    out = tmp_path / "fill.txt"
    argv = ["generate-text", str(text_runs["mdlm"]), "--prompt", "The ____ fox", "--infill", "--n", "2", "-o", str(out)]
    assert main(argv) == 0
    assert all(t.startswith("The ") and t.endswith(" fox") for t in samples_of(out.read_text(encoding="utf-8")))
    argv = ["generate-text", str(text_runs["mdlm"]), "--steps", "4", "--block-length", "8", "--remasking", "random"]
    assert main(argv) == 0 and len(samples_of(capsys.readouterr().out)) == 1


@pytest.mark.parametrize(
    ("kind", "args", "message"),
    [
        ("mdlm", ["--steps", "0"], "--steps must be >= 1"),
        ("mdlm", ["--steps", "2", "--block-length", "4"], "raise steps or block_length"),
        ("mdlm", ["--remasking", "best"], "--remasking must be one of"),
        ("mdlm", ["--top-p", "0"], "--top-p must be in"),
        ("mdlm", ["--prompt", "the cat sat " * 20], "shorten it"),
        ("mdlm", ["--max-tokens", "0"], "--max-tokens must be in"),
        ("mdlm", ["--infill", "--prompt", "no gap here"], "mark the spans"),
        ("mdlm", ["--infill", "--prompt", "a ____ b", "--gap-tokens", "40"], "hold 16"),
        ("mdlm", ["-o", "out.png"], "use a .txt file name"),
        ("ar_lm", ["--steps", "4"], "--steps does not apply"),
        ("ar_lm", ["--block-length", "4"], "--block-length is for masked-diffusion"),
        ("ar_lm", ["--infill", "--prompt", "The ____ fox"], "cannot infill"),
    ],
)
def test_generate_text_bad_input(text_runs, tmp_path, capsys, monkeypatch, kind, args, message):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out.txt"
    argv = ["generate-text", str(text_runs[kind]), *args] + ([] if "-o" in args else ["-o", str(out)])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_sample_refuses_a_text_run(text_runs, tmp_path, capsys):
    assert main(["sample", str(text_runs["mdlm"]), "-o", str(tmp_path / "x.png")]) == 2
    assert "use genlab generate-text" in capsys.readouterr().err and not (tmp_path / "x.png").exists()


def test_generate_text_refuses_other_runs(tmp_path, capsys, digits_run):
    (tmp_path / "empty").mkdir()
    assert main(["generate-text", str(tmp_path / "empty"), "-o", str(tmp_path / "o.txt")]) == 2
    assert "holds no genlab checkpoint" in capsys.readouterr().err
    assert main(["generate-text", str(digits_run), "-o", str(tmp_path / "o.txt")]) == 2
    assert "not a language model" in capsys.readouterr().err
    assert not (tmp_path / "o.txt").exists()


@pytest.mark.parametrize("kind", ["ar_lm", "mdlm"])
def test_eval_text_run(text_runs, tmp_path, kind):
    out = tmp_path / "eval"
    assert main(["eval", str(text_runs[kind]), "--n", "12", "--likelihood-n", "8", "--out", str(out)]) == 0
    report = json.loads((out / "eval.json").read_text())
    m, lik = report["metrics"], report["likelihood"]
    assert lik["kind"] == ("exact" if kind == "ar_lm" else "bound") and lik["n"] == 8
    assert m["test_likelihood"] == ("exact" if kind == "ar_lm" else "the ELBO bound: the exact value is at most this")
    assert m["test_bits_per_byte"] == pytest.approx(m["test_nats_per_token"] / math.log(2) / lik["bytes_per_token"])
    run = load_run(text_runs[kind])
    for key in ("unigram_entropy_bits", "distinct_1", "distinct_2", "distinct_3", "repetition_4"):
        assert key in m and f"test_data/{key}" in m
    assert 0 < m["distinct_1"] <= m["distinct_2"] <= m["distinct_3"] <= 1
    assert 0 < m["unigram_entropy_bits"] <= math.log2(run.method.vocab_size)
    assert report["settings"]["n"] == 12 and report["settings"]["temperature"] == 1.0
    assert len(samples_of((out / "samples.txt").read_text(encoding="utf-8"))) == 12
    assert "nats/dim" in (out / "eval.md").read_text() and "test_bits_per_byte" in (out / "eval.md").read_text()
