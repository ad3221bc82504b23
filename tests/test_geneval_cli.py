"""`genlab eval RUN --prompts builtin|FILE`: end to end on a tiny text-to-image run, and one-line errors."""

import json

import pytest

from genlab.cli import main
from genlab.metrics.geneval import CATEGORIES, builtin_suite
from tests.t2i_fixtures import tiny_t2i_runs, use_hash_encoder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_t2i_runs(tmp_path_factory.mktemp("geneval"), n=64, ae_steps=2, t2i_steps=2)[2]


def test_eval_prompts_builtin_writes_the_report(run, tmp_path, monkeypatch, capsys):
    use_hash_encoder(monkeypatch)
    out = tmp_path / "ev"
    args = ["eval", str(run), "--prompts", "builtin", "--n-per-prompt", "1", "--steps", "1", "--out", str(out)]
    assert main(args) == 0
    assert "geneval.json" in capsys.readouterr().out
    report = json.loads((out / "geneval.json").read_text())
    prompts = len(builtin_suite().prompts)
    assert report["suite"]["prompts"] == prompts and report["suite"]["n_per_prompt"] == 1
    assert set(report["rows"]) == {"model", "real", "autoencoder", "shuffled"}  # a latent run: its decoder's ceiling
    assert report["rows"]["autoencoder"]["images"] == prompts
    model = report["rows"]["model"]
    assert model["images"] == prompts and list(model["categories"]) == list(CATEGORIES)
    for row in model["categories"].values():
        assert 0.0 <= row["accuracy"] <= 1.0 and len(row["ci95"]) == 2
    assert report["rows"]["real"]["overall"] == 1.0
    assert report["settings"]["steps"] == 1 and report["settings"]["run"] == str(run)
    table = (out / "geneval.md").read_text()
    assert "| model |" in table and "colour_attribution" in table


def test_eval_prompts_file_and_defaults(run, tmp_path, monkeypatch):
    use_hash_encoder(monkeypatch)
    lines = [
        {
            "prompt": "2 red squares",
            "category": "counting",
            "objects": [{"colour": "red", "shape": "square"}],
            "count": 2,
        },
        {"prompt": "a white square", "category": "colours", "objects": [{"colour": "white", "shape": "square"}]},
    ]
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert main(["eval", str(run), "--prompts", str(path), "--steps", "1"]) == 0
    report = json.loads((run / "eval" / "geneval.json").read_text())  # default: RUN/eval, 4 images per prompt
    assert report["suite"]["name"] == str(path) and report["rows"]["model"]["images"] == 8
    assert set(report["rows"]["model"]["categories"]) == {"counting", "colours"}


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ("{not json\n", [], "line 1: not valid JSON"),
        ('{"prompt": "a hexagon", "category": "x", "objects": [{"shape": "hexagon"}]}\n', [], "hexagon"),
        (None, [], "no such file"),
        ("", ["--n-per-prompt", "0"], "--n-per-prompt must be >= 1"),
    ],
)
def test_bad_prompts_exit_2_with_one_line(run, tmp_path, capsys, content, extra, message):
    path = tmp_path / "p.jsonl"
    if content is not None:
        path.write_text(content or '{"prompt": "a circle", "category": "c", "objects": [{"shape": "circle"}]}\n')
    assert main(["eval", str(run), "--prompts", str(path), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("genlab: error:") and message in err and "\n" not in err


def test_n_per_prompt_needs_prompts(run, capsys):
    assert main(["eval", str(run), "--n-per-prompt", "2"]) == 2
    assert "--prompts" in capsys.readouterr().err


def test_a_shipped_run_by_name_is_evaluated_into_the_working_folder(tmp_path, monkeypatch):
    """`genlab eval shipped:NAME` never writes into the installed package: its report goes to ./eval."""
    from genlab.runs import shipped_asset

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "one.jsonl"
    specs = [("a circle", "circle"), ("a square", "square"), ("a triangle", "triangle")]
    path.write_text(
        "".join(json.dumps({"prompt": t, "category": "c", "objects": [{"shape": k}]}) + "\n" for t, k in specs)
    )
    before = sorted(p.name for p in shipped_asset("shapes-t2i").iterdir())
    args = ["eval", "shipped:shapes-t2i", "--prompts", str(path), "--n-per-prompt", "1", "--steps", "1"]
    assert main(args) == 0
    report = json.loads((tmp_path / "eval" / "geneval.json").read_text())
    assert report["rows"]["model"]["images"] == 3 and report["settings"]["recipe"] == "shapes-t2i"
    assert sorted(p.name for p in shipped_asset("shapes-t2i").iterdir()) == before
