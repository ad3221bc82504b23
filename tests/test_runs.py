"""The run layer: `genlab.load_run` as the Python API, settings a method cannot use, callbacks, any-n sampling."""

import numpy as np
import pytest
import torch

import genlab
from genlab.atomic import atomic_path
from genlab.cli import main
from genlab.data.images import tensor_to_uint8
from genlab.errors import GenlabError
from genlab.methods.gan import GANMethod
from genlab.settings import StepInfo


def test_load_run_is_the_python_api(digits_run):
    run = genlab.load_run(digits_run)
    out = run.sample(4, label=3, steps=2, sampler="euler")
    assert out.x.shape == (4, 1, 8, 8) and out.x.abs().max() <= 1 and out.nfe == 2
    assert torch.equal(out.cond, torch.full((4,), 3))
    assert isinstance(run.settings, genlab.SampleSettings) and run.settings.guidance_scale == 2.0
    assert run.step == run.recipe.train.steps and run.num_classes == 10
    cycled = run.sample(12, steps=1, sampler="euler").cond
    assert cycled.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    again = genlab.load_run(digits_run).sample(4, label=3, steps=2, sampler="euler")
    assert torch.equal(again.x, out.x)  # seeded (seed=0) and deterministic


def test_settings_a_method_cannot_use_are_refused(gan_run, digits_run, tmp_path, capsys):
    run = genlab.load_run(gan_run)
    assert isinstance(run.method, GANMethod)
    with pytest.raises(GenlabError, match="--steps does not apply"):
        run.sample(2, steps=4)
    assert main(["sample", str(gan_run), "--sampler", "heun", "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "gan samples by the generator (one pass): --sampler does not apply" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.png").exists()
    assert main(["sample", str(digits_run), "--top-k", "5", "-o", str(tmp_path / "y.png")]) == 2
    assert "--top-k does not apply" in capsys.readouterr().err
    out = run.sample(3)  # the recipe's own settings are never refused
    assert out.nfe == 1 and out.x.shape == (3, 1, 8, 8)


def test_guidance_interval_guides_only_inside_it(digits_run, gan_run, tmp_path, capsys):
    run = genlab.load_run(digits_run)  # guidance_scale 2 in its recipe
    opts = {"label": 3, "steps": 4, "sampler": "euler"}
    full, plain = run.sample(4, **opts).x, run.sample(4, guidance_scale=1.0, **opts).x
    assert not torch.equal(full, plain)
    assert torch.equal(run.sample(4, guidance_interval=(0.0, 1.0), **opts).x, full)
    assert torch.equal(run.sample(4, guidance_interval=(0.0, 0.0), **opts).x, plain)  # Euler never steps from t = 0
    late = run.sample(4, guidance_interval=(0.5, 1.0), **opts).x
    assert not torch.equal(late, full) and not torch.equal(late, plain)
    out = tmp_path / "x.png"
    assert main(["sample", str(digits_run), "--guidance-interval", "0.8", "0.2", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        "guidance_interval must be [lo, hi]" in err
        and "got [0.8, 0.2]" in err
        and len(err.splitlines()) == 1
        and not out.exists()
    )
    assert main(["sample", str(gan_run), "--guidance-interval", "0.3", "1", "-o", str(out)]) == 2
    assert "--guidance-interval does not apply" in capsys.readouterr().err and not out.exists()


def test_callback_sees_every_network_evaluation(digits_run):
    seen: list[StepInfo] = []
    out = genlab.load_run(digits_run).sample(2, steps=3, sampler="heun", callback=seen.append)
    assert len(seen) == out.nfe == 5 and [s.step for s in seen] == list(range(5))
    assert seen[0].t == pytest.approx(1.0) and seen[-1].t < seen[0].t
    assert seen[-1].x_hat.shape == seen[-1].x_t.shape == (2, 1, 8, 8)

    def cancel(info):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # raising from the callback cancels sampling
        genlab.load_run(digits_run).sample(2, steps=3, callback=cancel)


def test_npz_samples_are_streamed_in_chunks(digits_run, tmp_path):
    run = genlab.load_run(digits_run)
    path, nfe = run.sample_to_file(tmp_path / "s.npz", 1100, steps=1, sampler="euler")  # three chunks
    arrays = np.load(path, allow_pickle=False)
    assert arrays["images"].shape == (1100, 8, 8, 1) and arrays["images"].dtype == np.uint8 and nfe == 1
    assert arrays["labels"].tolist() == [i % 10 for i in range(1100)]
    in_memory = run.sample(1100, steps=1, sampler="euler").x
    assert np.array_equal(arrays["images"], tensor_to_uint8(in_memory))


def test_an_n_that_does_not_fit_is_a_clear_error_and_writes_nothing(digits_run, tmp_path, monkeypatch, capsys):
    import genlab.runs

    class Tiny:
        free = 10_000

    monkeypatch.setattr(genlab.runs.shutil, "disk_usage", lambda _: Tiny)
    out = tmp_path / "huge.npz"
    args = ["sample", str(digits_run), "--n", "100000000", "--steps", "1", "--sampler", "euler", "-o", str(out)]
    assert main(args) == 2
    assert "GB on disk" in capsys.readouterr().err and list(tmp_path.iterdir()) == []
    assert main([*args[:-1], str(tmp_path / "huge.png")]) == 2
    assert "at most 4096 images" in capsys.readouterr().err and list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_the_old_file_on_error(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and list(tmp_path.iterdir()) == [target]
