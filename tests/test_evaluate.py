import json

import numpy as np
import torch
from PIL import Image

from genlab.cli import main
from genlab.data.digits import DigitsConfig, build_digits
from genlab.data.images import tensor_to_uint8
from genlab.data.toy2d import sample_toy2d

FILES = ("eval.json", "eval.md", "samples.png", "nearest.png", "prdc.png")


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("genlab: error:"), err
    return err


def test_eval_run_writes_report(digits_run, capsys):
    assert main(["eval", str(digits_run), "--n", "60", "--steps", "2", "--sampler", "euler"]) == 0
    out = digits_run / "eval"
    assert str(out) in capsys.readouterr().out
    assert all((out / f).is_file() for f in FILES)
    report = json.loads((out / "eval.json").read_text())
    s = report["settings"]
    assert s["n"] == 60 and s["sampler"] == "euler" and s["steps"] == 2 and s["nfe"] == 2 and s["ms_per_sample"] > 0
    assert s["feature_net"] == "digits-cnn64" and s["feature_net_heldout_accuracy"] > 0.95 and s["seed"] == 0
    for key in (
        "fd",
        "kid",
        "precision",
        "recall",
        "density",
        "coverage",
        "inception_score",
        "class_accuracy",
        "class_entropy",
    ):
        assert key in report["metrics"], key
    assert report["floor"]["n"] == 60 and set(report["floor"]["normalized"]) == {"fd", "kid"}
    assert "near_copy_fraction" in report["memorization"]
    assert "| fd |" in (out / "eval.md").read_text()
    assert not list(out.glob(".eval-tmp*"))  # staged files were all moved into place


def test_eval_samples_npz_images_and_vectors(tmp_path, capsys):
    test = build_digits(DigitsConfig(), split="test")
    np.savez(tmp_path / "real.npz", images=tensor_to_uint8(test.x[:120]), labels=test.labels[:120].numpy())
    assert (
        main(["eval", "--samples", str(tmp_path / "real.npz"), "--data", "digits", "--out", str(tmp_path / "e")]) == 0
    )
    report = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert report["settings"]["source"] == "samples" and report["metrics"]["class_accuracy"] > 0.9
    assert report["floor"]["normalized"]["fd"] < 0.2  # real held-out digits sit at the floor
    np.savez(tmp_path / "toy.npz", x=sample_toy2d("moons", 150, 5).numpy())
    assert (
        main(["eval", "--samples", str(tmp_path / "toy.npz"), "--data", "toy2d:moons", "--out", str(tmp_path / "t")])
        == 0
    )
    toy = json.loads((tmp_path / "t" / "eval.json").read_text())
    assert {"w2", "w2_squared", "sliced_w2", "mmd2_rbf"} <= set(toy["floor"]["normalized"])
    assert (tmp_path / "t" / "samples.png").is_file() and not (tmp_path / "t" / "nearest.png").exists()


def test_eval_samples_against_image_folder(tmp_path):
    train = build_digits(DigitsConfig(), split="train")
    images = tensor_to_uint8(train.x[:150])
    for i, (image, label) in enumerate(zip(images, train.labels[:150].tolist())):
        (tmp_path / "folder" / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[:, :, 0]).save(tmp_path / "folder" / str(label) / f"{i}.png")
    np.savez(tmp_path / "s.npz", images=images[:40])
    assert (
        main(
            [
                "eval",
                "--samples",
                str(tmp_path / "s.npz"),
                "--data",
                str(tmp_path / "folder"),
                "--out",
                str(tmp_path / "e"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert report["settings"]["feature_net"] == "pixels-8x8" and report["floor"]["n"] == 15  # 10 % held out
    assert report["memorization"]["memorized"]  # the samples are the folder's own (mostly training) images


def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys):
    np.savez(tmp_path / "big.npz", images=np.zeros((10, 16, 16, 1), np.uint8))
    cases = [
        (["--samples", str(tmp_path / "missing.npz"), "--data", "digits"], "not found"),
        (["--samples", str(tmp_path / "big.npz"), "--data", "digits"], "shape"),
        (["--samples", str(tmp_path / "big.npz"), "--data", "mnist"], "unknown dataset"),
        (["--samples", str(tmp_path / "big.npz"), "--data", "toy2d:nope"], "toy2d:NAME"),
        (["--samples", str(tmp_path / "big.npz")], "--data"),
        (
            ["--samples", str(tmp_path / "big.npz"), "--data", "digits:16", "--inception-weights", "w.pth"],
            "needs an existing .safetensors file",
        ),
    ]
    for args, words in cases:
        assert main(["eval", *args]) == 2, args
        assert words in _error_line(capsys), args


def test_features_train_and_use(tmp_path, capsys):
    path = tmp_path / "f.safetensors"
    assert main(["features", "train", "digits", "--out", str(path), "--epochs", "1"]) == 0
    assert "held-out accuracy" in capsys.readouterr().out
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["architecture"]["num_features"] == 64 and 0 <= meta["heldout_accuracy"] <= 1
    x = build_digits(DigitsConfig(), split="train").x[:50]
    np.savez(tmp_path / "s.npz", images=tensor_to_uint8(torch.flip(x, dims=[-1])))
    assert (
        main(
            [
                "eval",
                "--samples",
                str(tmp_path / "s.npz"),
                "--data",
                "digits",
                "--features",
                str(path),
                "--out",
                str(tmp_path / "e"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "e" / "eval.json").read_text())["settings"]["feature_net"] == "digits-cnn64"
    assert main(["features", "train", "toy2d:moons"]) == 2 and "labelled images" in _error_line(capsys)
