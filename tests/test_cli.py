import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from genlab.cli import main
from tests.conftest import TINY_DIGITS, TINY_TOY, write_recipe


def run_cli(*args, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.run(
        [sys.executable, "-m", "genlab", *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env
    )


def main_cli(capsys, *args) -> subprocess.CompletedProcess:
    """`genlab ARGS` through genlab.cli.main in this process (no interpreter start-up): the exit code main returns
    (or an argparse SystemExit's), and what it printed. The whole-process path (`python -m genlab`: exit status,
    nothing else on stderr) is checked once, by run_cli, in test_missing_run_and_pickle_checkpoint."""
    capsys.readouterr()  # drop earlier output
    try:
        code = main(list(map(str, args)))
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


def test_train_writes_grid_curve_metrics_checkpoint(digits_run):
    for name in (
        "samples.png",
        "loss.png",
        "metrics.jsonl",
        "checkpoint/config.json",
        "checkpoint/model.safetensors",
        "checkpoint/ema.safetensors",
        "checkpoint/state/trainer.json",
    ):
        assert (digits_run / name).is_file(), name
    with Image.open(digits_run / "samples.png") as im:  # one row per class: 10 rows of 8
        w, h = im.size
    assert h > w  # 10 rows x 8 columns of square tiles
    rows = [json.loads(x) for x in (digits_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6] and all(np.isfinite(r["loss"]) for r in rows)


def test_sample_png_and_npz(digits_run, tmp_path, capsys):
    assert (
        main(
            [
                "sample",
                str(digits_run),
                "--n",
                "20",
                "--steps",
                "2",
                "--sampler",
                "euler",
                "-o",
                str(tmp_path / "s.npz"),
            ]
        )
        == 0
    )
    assert "2 NFE" in capsys.readouterr().out
    with np.load(tmp_path / "s.npz", allow_pickle=False) as f:
        images, labels = f["images"], f["labels"]
    assert images.shape == (20, 8, 8, 1) and images.dtype == np.uint8
    assert labels.tolist() == [i % 10 for i in range(20)]  # classes cycled evenly
    assert (
        main(
            [
                "sample",
                str(digits_run),
                "--n",
                "6",
                "--label",
                "3",
                "--guidance-scale",
                "3",
                "-o",
                str(tmp_path / "g.png"),
            ]
        )
        == 0
    )
    assert (tmp_path / "g.png").is_file()
    a = tmp_path / "a.npz"
    main(["sample", str(digits_run), "--n", "4", "--seed", "7", "-o", str(a)])
    first = np.load(a)["images"].copy()
    main(["sample", str(digits_run), "--n", "4", "--seed", "7", "-o", str(a)])
    assert np.array_equal(first, np.load(a)["images"])  # seeded


def test_info(digits_run, capsys):
    assert main(["info", str(digits_run), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["step"] == 6 and info["parameters"] > 1000
    assert info["recipe"]["model"]["in_channels"] == 1 and info["recipe"]["model"]["num_classes"] == 10


def test_vector_run_npz_and_dry_run(tmp_path, capsys):
    recipe = write_recipe(tmp_path / "toy.yaml", TINY_TOY)
    assert main(["train", str(recipe), "--dry-run", "--model.depth=2"]) == 0
    assert "depth: 2" in capsys.readouterr().out and not (tmp_path / "runs").exists()
    assert main(["train", str(recipe), "--out", str(tmp_path / "run"), "--train.steps=3", "--no-progress"]) == 0
    assert main(["sample", str(tmp_path / "run"), "--n", "5", "-o", str(tmp_path / "x.npz")]) == 0
    x = np.load(tmp_path / "x.npz")["x"]
    assert x.shape == (5, 2) and x.dtype == np.float32


def test_sigint_then_resume_equals_uninterrupted(tmp_path):
    tree = {**TINY_TOY, "train": {**TINY_TOY["train"], "steps": 150, "checkpoint_every": 1000, "log_every": 2}}
    recipe = write_recipe(tmp_path / "toy.yaml", tree)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}  # same threads as run_cli: same float summation order
    proc = subprocess.Popen(
        [sys.executable, "-m", "genlab", "train", str(recipe), "--out", str(tmp_path / "cut"), "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = tmp_path / "cut" / "metrics.jsonl"
    deadline = time.time() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    step = json.loads((tmp_path / "cut" / "checkpoint" / "config.json").read_text())["step"]
    assert 0 < step < 150, "interrupt arrived too late to test resuming"
    assert run_cli("train", "--resume", tmp_path / "cut", "--no-progress").returncode == 0
    assert run_cli("train", recipe, "--out", tmp_path / "full", "--no-progress").returncode == 0
    a = load_file(str(tmp_path / "cut" / "checkpoint" / "ema.safetensors"))
    b = load_file(str(tmp_path / "full" / "checkpoint" / "ema.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- bad input: one line, exit 2


def _assert_clean_error(result, pattern):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genlab: error:") and "Traceback" not in result.stderr, lines
    assert pattern in lines[0], lines[0]


def _folder_recipe(tmp_path, folder, **data):
    tree = {**TINY_DIGITS, "data": {"kind": "imagefolder", "path": str(folder), "channels": 1, **data}}
    return write_recipe(tmp_path / "folder.yaml", tree)


def _png(path, size=8):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.random.default_rng(0).random((size, size)) * 255).astype(np.uint8)).save(path)


@pytest.mark.parametrize("problem", ["corrupt", "truncated", "empty", "mixed"])
def test_bad_image_folders(tmp_path, capsys, problem):
    folder = tmp_path / "imgs"
    for i in range(4):
        _png(folder / "a" / f"{i}.png")
    if problem == "corrupt":
        (folder / "a" / "0.png").write_bytes(b"not a png at all")
    elif problem == "truncated":
        data = (folder / "a" / "1.png").read_bytes()
        (folder / "a" / "1.png").write_bytes(data[: len(data) // 2])
    elif problem == "empty":
        for p in (folder / "a").iterdir():
            p.unlink()
    else:
        _png(folder / "a" / "big.png", size=12)
    result = main_cli(capsys, "train", _folder_recipe(tmp_path, folder), "--out", tmp_path / "run")
    expected = {"corrupt": "0.png", "truncated": "1.png", "empty": "imgs", "mixed": "data.size"}[problem]
    _assert_clean_error(result, expected)
    assert not (tmp_path / "run").exists()  # nothing half-written
    if problem == "mixed":  # resizing by recipe option fixes it
        result = main_cli(
            capsys,
            "train",
            _folder_recipe(tmp_path, folder, size=8),
            "--out",
            tmp_path / "ok",
            "--train.steps=1",
            "--no-progress",
        )
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["--model.depht=3"], "unknown key 'depht'"),
        (["--train.steps=many"], "expected int"),
        (["--train.steps"], "--section.key=value"),
    ],
)
def test_bad_recipe_options(tmp_path, capsys, args, pattern):
    recipe = write_recipe(tmp_path / "toy.yaml", TINY_TOY)
    _assert_clean_error(main_cli(capsys, "train", recipe, "--out", tmp_path / "run", *args), pattern)
    assert not (tmp_path / "run").exists()


def test_missing_run_and_pickle_checkpoint(tmp_path, capsys):
    # one bad request through a real `python -m genlab` process: exit status 2, one line on stderr, no traceback
    _assert_clean_error(run_cli("sample", tmp_path / "nope", "-o", tmp_path / "x.png"), "does not exist")
    _assert_clean_error(main_cli(capsys, "info", tmp_path / "nope"), "does not exist")
    marker = tmp_path / "unpickled"
    evil = tmp_path / "model.pt"
    evil.write_bytes(pickle.dumps(Path_touch(marker)))
    _assert_clean_error(main_cli(capsys, "sample", evil, "-o", tmp_path / "x.png"), "never loaded")
    _assert_clean_error(main_cli(capsys, "train", "--resume", evil), "never loaded")
    assert not marker.exists() and not (tmp_path / "x.png").exists()


class Path_touch:  # unpickling this would create a file
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_checkpoint_config_mismatch(digits_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    cfg_file = run / "checkpoint" / "config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["recipe"]["model"]["channels"] = 24
    cfg_file.write_text(json.dumps(cfg))
    _assert_clean_error(main_cli(capsys, "sample", run, "-o", tmp_path / "x.png"), "does not match the model")
    assert not (tmp_path / "x.png").exists()
    (run / "checkpoint" / "ema.safetensors").write_bytes(b"\x00" * 10)
    _assert_clean_error(main_cli(capsys, "sample", run, "-o", tmp_path / "x.png"), "damaged")


def test_bad_sample_requests(digits_run, tmp_path, capsys):
    run = digits_run
    _assert_clean_error(main_cli(capsys, "sample", run, "--label", "12", "-o", tmp_path / "x.png"), "--label")
    _assert_clean_error(main_cli(capsys, "sample", run, "-o", tmp_path / "x.jpg"), ".png")
    _assert_clean_error(
        main_cli(capsys, "sample", run, "--sampler", "zzz", "-o", tmp_path / "x.png"), "unknown sampler"
    )
    assert not list(tmp_path.glob("*.png"))
