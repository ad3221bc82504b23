"""Text-to-video flow (video_flow): per-frame latents of the frozen autoencoder, training lowers the loss, and
end to end on a tiny run: train -> sample -> genlab eval (motion checker) -> genlab generate --video (a GIF)."""

import json

import numpy as np
import pytest
import torch

from genlab.cli import main
from genlab.config import recipe_from_dict
from genlab.data import build_dataset
from genlab.errors import GenlabError
from genlab.runs import build_method, load_run
from genlab.settings import SampleSettings
from genlab.train import resolve, train
from genlab.video import read_gif, write_gif
from tests.loss_helpers import loss_before_after
from tests.t2i_fixtures import autoencoder_recipe, coloured_squares, use_hash_encoder

FRAMES = 4


@pytest.fixture(autouse=True)
def hash_encoder(monkeypatch):
    use_hash_encoder(monkeypatch)


def video_tree(ae) -> dict:
    return {
        "name": "tiny-t2v",
        "seed": 0,
        "data": {"kind": "videos", "n": 16, "n_test": 8, "frames": FRAMES},
        "model": {"kind": "video_dit", "width": 32, "depth": 1, "heads": 2},
        "method": {"kind": "video_flow", "autoencoder": str(ae), "text_encoder": "minilm"},
        "train": {"steps": 3, "batch_size": 4, "warmup_steps": 0, "log_every": 1, "checkpoint_every": 3},
        "sample": {"sampler": "euler", "steps": 2, "guidance_scale": 2.0},
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(autoencoder run, text-to-video run), both trained for a few steps on 32x32 data."""
    root = tmp_path_factory.mktemp("t2v")
    mp = pytest.MonkeyPatch()
    use_hash_encoder(mp)
    data = coloured_squares(root / "squares.npz", n=32, size=32)
    tree = autoencoder_recipe(data, steps=2, checkpoint_every=2, sample_every=0)
    tree["model"]["channels"] = [8, 16, 16]  # 32x32x3 -> 4x8x8, as the shapes autoencoder
    ae = train(recipe_from_dict(tree, "ae"), root / "ae", progress=False)
    t2v = train(recipe_from_dict(video_tree(ae), "t2v"), root / "t2v", progress=False)
    mp.undo()
    return ae, t2v


def method_of(ae):
    recipe = recipe_from_dict(video_tree(ae), "test")
    data = build_dataset(recipe.data)
    return build_method(resolve(recipe, data)), data


def test_latents_are_per_frame_and_training_lowers_the_loss(runs):
    ae, _ = runs
    torch.manual_seed(0)
    m, data = method_of(ae)
    x = data.x[:4]  # (4, T, 3, 32, 32)
    z = m.to_latent(x)
    assert z.shape == (4, FRAMES, 4, 8, 8)
    torch.testing.assert_close(z[:, 2], m.to_latent(x[:, 2:3])[:, 0])  # frames are encoded independently
    assert m.from_latent(z).shape == x.shape and m.image_shape == (FRAMES, 3, 32, 32)
    batch = {"x": x, "text": data.texts[:4]}
    before, after = loss_before_after(m, batch, 15)
    assert after < 0.8 * before


def test_sample_eval_and_generate_video_end_to_end(runs, tmp_path):
    _, t2v = runs
    run = load_run(t2v)
    gen = torch.Generator().manual_seed(0)
    prompts = ["a red circle moving to the right", "a blue square falls"]
    x = run.method.sample(2, cond=prompts, settings=SampleSettings(sampler="euler", steps=2), generator=gen).x
    assert x.shape == (2, FRAMES, 3, 32, 32) and x.abs().max() <= 1
    assert main(["eval", str(t2v), "--n", "10", "--out", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "eval.json").read_text())["metrics"]
    assert set(metrics) == {"motion", "frames", "consistency", "identity", "fd"}
    assert all(0 <= metrics[k] <= 1 for k in ("motion", "frames", "consistency", "identity")) and metrics["fd"] > 0
    png = tmp_path / "s.png"  # genlab sample: one video per row, its frames left to right
    assert main(["sample", str(t2v), "--n", "2", "--steps", "1", "-o", str(png)]) == 0
    from PIL import Image

    width, height = Image.open(png).size
    assert 0.9 * FRAMES / 2 < width / height < 1.1 * FRAMES / 2  # 2 rows of FRAMES frames
    gif = tmp_path / "v.gif"
    assert main(["generate", "--video", prompts[0], "--run", str(t2v), "--n", "2", "-o", str(gif)]) == 0
    frames = read_gif(gif)
    assert frames.shape == (FRAMES, 32 * 4, (2 * 32 + 2) * 4, 3)
    assert main(["generate", "--video", prompts[0], "-o", str(gif)]) == 2  # no --run: a one-line error
    assert main(["generate", "--video", prompts[0], "--run", str(t2v), "-o", str(tmp_path / "v.png")]) == 2


def test_gif_round_trip(tmp_path):
    """The GIF holds the videos side by side, frame by frame, with the shapes' colours exact."""
    x = torch.full((2, 3, 3, 8, 8), -1.0)
    x[0, :, 0] = 1.0  # video 0: red frames
    x[1, 1, 2] = 1.0  # video 1: frame 1 blue
    frames = read_gif(write_gif(x, tmp_path / "a.gif"))
    assert frames.shape == (3, 8, 18, 3)
    assert (frames[:, :, :8] == [255, 0, 0]).all() and (frames[:, :, 8:10] == 0).all()
    assert (frames[1, :, 10:] == [0, 0, 255]).all() and (frames[[0, 2], :, 10:] == 0).all()
    np.testing.assert_array_equal(frames[0], frames[2])
    with pytest.raises(GenlabError, match="gif"):
        write_gif(x, tmp_path / "a.png")


def test_every_tensor_stays_on_the_models_device(runs):
    """The pretend-device check of tests/test_devices.py on the video method: loss, guided sampling."""
    from tests.test_devices import PretendDevice, pretend, run_everything

    m, data = method_of(runs[0])
    batch = pretend(m.eval(), {"x": data.x[:4]})
    with PretendDevice():
        run_everything(m, batch, list(data.texts[:4]))
