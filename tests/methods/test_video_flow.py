"""Text-to-video flow (video_flow): per-frame latents of the frozen autoencoder, training lowers the loss, and
end to end on a tiny run: train -> sample -> genlab eval (motion checker) -> genlab generate --video (a GIF)."""

import copy
import dataclasses
import json
import types

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
from tests.t2i_fixtures import autoencoder_recipe, coloured_squares, t2i_recipe, use_hash_encoder

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


# ------------------------------------------------------------ started from an image run; image-to-video


def init_tree(ae, image_run, *, first_frame: float = 0.5) -> dict:
    tree = video_tree(ae)
    tree["name"] = "tiny-t2v-init"
    tree["model"] = {"kind": "video_dit", "size": "micro", "width": 32, "heads": 2, "positions": "image"}
    tree["method"].update(autoencoder="", init=str(image_run), first_frame=first_frame)
    return tree


@pytest.fixture(scope="module")
def init_runs(runs, tmp_path_factory):
    """(image run, video run started from it with first_frame 0.5), a few steps each on the autoencoder of `runs`."""
    root = tmp_path_factory.mktemp("t2v-init")
    mp = pytest.MonkeyPatch()
    use_hash_encoder(mp)
    data = coloured_squares(root / "squares.npz", n=32, size=32)
    image = train(
        recipe_from_dict(t2i_recipe(data, runs[0], steps=2, checkpoint_every=2), "t2i"), root / "t2i", progress=False
    )
    video = train(recipe_from_dict(init_tree(runs[0], image), "t2v"), root / "t2v", progress=False)
    mp.undo()
    return image, video


def build(tree: dict):
    recipe = recipe_from_dict(tree, "test")
    data = build_dataset(recipe.data)
    return build_method(resolve(recipe, data)), data


def test_a_video_run_starts_from_the_image_run(init_runs, runs):
    """method.init: the image DiT's layers are the spatial layers and its autoencoder is the video run's, so
    before training every frame is denoised exactly as the image run would; loss falls; the saved run reloads."""
    image_run, video_run = init_runs
    image = load_run(image_run).method
    torch.manual_seed(0)
    m, data = build(init_tree(runs[0], image_run))
    ae = dict(m.autoencoder.state_dict())
    assert all(torch.equal(v, ae[k]) for k, v in image.autoencoder.state_dict().items())
    for block, image_block in zip(m.model.blocks, image.model.blocks, strict=True):
        assert all(
            torch.equal(a, b) for a, b in zip(block.space.state_dict().values(), image_block.state_dict().values())
        )
    z, t = torch.randn(2, FRAMES, 4, 8, 8), torch.rand(2)
    text = m.encode_text(["a red square", "a blue square"], "cpu")
    given = m.given_frames(torch.randn(2, 4, 8, 8), 2)  # a given frame: no effect before training
    from genlab.methods.video import VideoCond

    with torch.no_grad():
        out = m.net(z, t, VideoCond(text, given))
        for f in range(FRAMES):
            torch.testing.assert_close(out[:, f], image.net(z[:, f], t, text), atol=1e-5, rtol=1e-5)
    batch = {"x": data.x[:4], "text": data.texts[:4]}
    before, after = loss_before_after(m, batch, 15)
    assert after < 0.8 * before
    reloaded = load_run(video_run)  # the init's recipe is stored: the folder is self-contained
    assert reloaded.method.frame_condition and reloaded.recipe.method.frozen["init"]["name"] == "tiny-t2i"


def test_the_first_frame_is_given_in_training_and_in_both_halves_of_guidance(init_runs):
    m = load_run(init_runs[1]).method
    z0 = torch.randn(3, 4, 8, 8)
    given = m.given_frames(z0, 3, torch.tensor([True, False, True]))
    assert given.shape == (3, FRAMES, 5, 8, 8)
    assert torch.equal(given[0, 0, :4], z0[0]) and torch.equal(given[1], torch.zeros_like(given[1]))
    assert given[[0, 2], 0, 4].eq(1).all() and given[:, 1:].eq(0).all()
    seen = []
    hook = m.model.register_forward_pre_hook(lambda mod, args: seen.append(args[0].clone()))
    image = torch.rand(3, 32, 32) * 2 - 1
    try:
        x = m.sample(
            2,
            cond=["a red circle falls", "a blue square rises"],
            first_frame=image,
            settings=SampleSettings(sampler="euler", steps=2, guidance_scale=2.0),
        ).x
    finally:
        hook.remove()
    assert x.shape == (2, FRAMES, 3, 32, 32) and len(seen) == 2
    want = m.first_latent(image[None])[0]
    for x_in in seen:  # (2n, T, 2c + 1, h, w): both halves read the given frame and the mask
        assert x_in.shape == (4, FRAMES, 9, 8, 8)
        torch.testing.assert_close(x_in[:, 0, 4:8], want.expand(4, -1, -1, -1))
        assert x_in[:, 0, 8].eq(1).all() and x_in[:, 1:, 4:].eq(0).all()
    with pytest.raises(GenlabError, match="first frame must be"):
        m.sample(2, cond=["a", "b"], first_frame=torch.zeros(3, 16, 16), settings=SampleSettings(steps=1))


@pytest.mark.parametrize("sampler", ["euler", "heun"])
def test_keep_first_frame_ends_on_the_given_frame(init_runs, sampler):
    """keep_first_frame: latent frame 0 of the sample is the given frame's latent (decoded: its reconstruction),
    and the other frames still come from the network; without it, frame 0 is whatever the network made."""
    m = load_run(init_runs[1]).method
    image = torch.rand(3, 32, 32) * 2 - 1
    settings = SampleSettings(sampler=sampler, steps=3, guidance_scale=2.0)
    kept, free = (
        m.sample(
            2,
            cond=["a red circle falls"] * 2,
            first_frame=image,
            keep_first_frame=keep,
            settings=settings,
            generator=torch.Generator().manual_seed(0),
        ).x
        for keep in (True, False)
    )
    want = m.from_latent(m.first_latent(image[None])[:, None])[0, 0]  # the given frame through the autoencoder
    torch.testing.assert_close(kept[:, 0], want.expand(2, -1, -1, -1), atol=1e-4, rtol=1e-4)
    assert (free[:, 0] - want).abs().mean() > 1e-2
    assert (kept[:, 1:] - free[:, 1:]).abs().max() > 0  # the later frames read the held frame


def test_generate_video_from_a_first_frame(init_runs, runs, tmp_path):
    from PIL import Image

    png = tmp_path / "first.png"
    Image.new("RGB", (48, 40), (255, 0, 0)).save(png)  # another size: centre-cropped and resized
    gif = tmp_path / "v.gif"
    args = ["generate", "--video", "a red square falls", "--n", "2", "--steps", "2", "-o", str(gif)]
    assert main([*args, "--run", str(init_runs[1]), "--first-frame", str(png)]) == 0
    assert read_gif(gif).shape == (FRAMES, 32 * 4, (2 * 32 + 2) * 4, 3)
    before = gif.read_bytes()
    assert main([*args, "--run", str(runs[1]), "--first-frame", str(png)]) == 2  # not trained with first frames
    assert main([*args, "--run", str(init_runs[1]), "--first-frame", str(tmp_path / "none.png")]) == 2
    assert main(["generate", "a red square", "--first-frame", str(png), "-o", str(tmp_path / "x.png")]) == 2
    assert gif.read_bytes() == before and not (tmp_path / "x.png").exists()
    assert main(["eval", str(init_runs[1]), "--n", "10", "--out", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "eval.json").read_text())["metrics"]
    assert {"motion", "fd", "i2v_motion", "i2v_frames", "i2v_fd", "i2v_first_frame_psnr"} <= set(metrics)
    assert 0 <= metrics["i2v_motion"] <= 1 and metrics["i2v_first_frame_psnr"] > 0
    from genlab.data.videos import build_videos

    run = load_run(init_runs[1])
    few = run.method.heldout_metrics(build_videos(run.recipe.data, split="test"), n=3)  # fewer than the split holds
    assert few["n"] == 3 and 0 <= few["i2v_motion"] <= 1


def test_init_errors(init_runs, runs):
    from genlab.methods.video import VideoFlowMethod

    tree = init_tree(runs[0], init_runs[0])
    tree["method"]["init"] = ""
    with pytest.raises(GenlabError, match="autoencoder"):
        build(tree)  # no autoencoder and no init run to take one from
    recipe = recipe_from_dict(init_tree(runs[0], init_runs[0]), "t")
    recipe = resolve(recipe, build_dataset(recipe.data))
    image = load_run(init_runs[0]).method
    other = copy.deepcopy(image.autoencoder)
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    cfg = dataclasses.replace(recipe.method, autoencoder="elsewhere")
    with pytest.raises(GenlabError, match="another autoencoder"):  # the image DiT's latents are not these
        VideoFlowMethod(cfg, recipe.model, {"init": image, "autoencoder": types.SimpleNamespace(ae=other)})
    with pytest.raises(GenlabError, match="reads text"):
        VideoFlowMethod(dataclasses.replace(recipe.method, text_encoder="clip:x"), recipe.model, {"init": image})
