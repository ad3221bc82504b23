"""Trained image-to-image (paired_flow = SR3 / Palette, and its regression baseline): the conditional U-Net, losses
that fall, shapes, exact kept pixels, determinism, `genlab edit` / `genlab eval` end to end, and bad input."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import genlab
from genlab.cli import main
from genlab.data.images import tensor_to_uint8
from genlab.data.photos import PhotosConfig, build_photos
from genlab.errors import GenlabError
from genlab.methods.image2image import (
    PairedFlowConfig,
    PairedFlowMethod,
    RegressionConfig,
    RegressionMethod,
    random_boxes,
)
from genlab.models.unet import UNet, UNetConfig
from genlab.settings import SampleSettings
from tests.conftest import write_recipe

TINY_UNET = UNetConfig(in_channels=3, image_size=16, num_classes=0, channels=8, channel_mults=(1, 2))
EULER = SampleSettings(sampler="euler", steps=3)


def tiny_recipe(task: str, kind: str = "paired_flow") -> dict:
    return {
        "name": f"tiny-{kind}-{task}",
        "data": {"kind": "photos", "size": 32, "n": 48, "n_test": 24},
        "model": {"kind": "unet", "channels": 8, "channel_mults": [1, 2]},
        "method": {"kind": kind, "task": task},
        "train": {"steps": 2, "batch_size": 8, "warmup_steps": 0, "log_every": 1, "checkpoint_every": 2},
        "sample": {"sampler": "euler", "steps": 2},
    }


@pytest.fixture(scope="module")
def photos():
    return build_photos(PhotosConfig(n=48, n_test=24), split="test").x[:, :, :16, :16].contiguous()  # (24, 3, 16, 16)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{name: run folder} of tiny 2-step runs: paired_flow for three tasks, regression for the fourth."""
    tmp = tmp_path_factory.mktemp("i2i")
    out = {}
    for task, kind in [("superres", "paired_flow"), ("colorize", "paired_flow"), ("inpaint", "paired_flow"),
                       ("outpaint", "regression")]:  # fmt: skip
        name = f"{kind}-{task}"
        recipe = write_recipe(tmp / f"{name}.yaml", tiny_recipe(task, kind))
        assert main(["train", str(recipe), "--out", str(tmp / name), "--no-progress"]) == 0
        out[name] = tmp / name
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Input files: a 32x32 photo, its 8x8 version, a batch of three as .npz, a box mask."""
    tmp = tmp_path_factory.mktemp("inputs")
    x = tensor_to_uint8(build_photos(PhotosConfig(n=48, n_test=24), split="test").x[:3])  # (3, 32, 32, 3)
    Image.fromarray(x[0]).save(tmp / "photo.png")
    Image.fromarray(x[0]).resize((8, 8), Image.Resampling.BICUBIC).save(tmp / "small.png")
    np.savez(tmp / "batch.npz", images=x)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:20, 10:24] = 255
    Image.fromarray(mask).save(tmp / "mask.png")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp / "black.png")
    return tmp


# -- the conditional U-Net


def test_unet_reads_the_input_image_as_extra_channels():
    torch.manual_seed(0)
    plain = UNet(TINY_UNET)
    torch.manual_seed(0)
    cond = UNet(UNetConfig(**{**TINY_UNET.__dict__, "cond_channels": 4}))
    assert cond.stem.in_channels == 7 and cond.out.out_channels == 3
    x, t = torch.randn(2, 3, 16, 16), torch.rand(2)
    torch.nn.init.normal_(cond.out.weight)  # the output conv starts at zero; make the output depend on the input
    assert cond(x, t, image=torch.randn(2, 4, 16, 16)).shape == (2, 3, 16, 16)
    with pytest.raises(GenlabError, match=r"input image \(B, 4, 16, 16\)"):
        cond(x, t)
    with pytest.raises(GenlabError, match="takes no input image"):
        plain(x, t, image=torch.randn(2, 4, 16, 16))


# -- the methods


def method(kind: str, task: str, **cfg):
    cls, config = (
        (PairedFlowMethod, PairedFlowConfig) if kind == "paired_flow" else (RegressionMethod, RegressionConfig)
    )
    torch.manual_seed(0)
    return cls(config(task=task, **cfg), TINY_UNET)


@pytest.mark.parametrize(
    "kind,task,source,cond",
    [
        ("paired_flow", "superres", (3, 4, 4), 3),
        ("paired_flow", "colorize", (1, 16, 16), 1),
        ("paired_flow", "inpaint", (3, 16, 16), 4),
        ("regression", "outpaint", (3, 16, 16), 4),
    ],
)
def test_degrade_and_translate_shapes(photos, kind, task, source, cond):
    m = method(kind, task)
    assert m.image_task == task and m.model.cfg.cond_channels == cond
    given = m.degrade(photos[:5], generator=torch.Generator().manual_seed(0))
    assert tuple(given["source"].shape) == (5, *source)
    assert ("mask" in given) == (task in ("inpaint", "outpaint"))
    out = m.translate(given["source"], mask=given.get("mask"), settings=EULER, generator=torch.Generator())
    assert out.x.shape == (5, 3, 16, 16) and out.x.abs().max() <= 1
    assert out.nfe == (3 if kind == "paired_flow" else 1)


@pytest.mark.parametrize(
    "kind,task", [("paired_flow", "superres"), ("paired_flow", "inpaint"), ("regression", "colorize")]
)
def test_losses_fall_on_a_tiny_model(photos, kind, task):
    m = method(kind, task)
    batch = {"x": photos[:12]}

    @torch.no_grad()
    def loss() -> float:
        torch.manual_seed(1)  # the same t, noise and masks at every evaluation
        return float(m.loss(batch, "model")[0])

    before = loss()
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for step in range(20):
        torch.manual_seed(100 + step)
        opt.zero_grad()
        m.loss(batch, "model")[0].backward()
        opt.step()
    assert loss() < 0.8 * before


def test_trained_inpainting_keeps_the_known_pixels_exactly(photos):
    m = method("paired_flow", "inpaint")
    x = photos[:4]
    mask = random_boxes(4, 16, (0.3, 0.6), square=False, generator=torch.Generator().manual_seed(0), device="cpu")
    soft = mask.clone()
    soft[..., 0, 0] = 0.5  # a soft pixel blends, the others stay exact
    for given in (mask, soft):
        out = m.translate(x, mask=given, settings=EULER, generator=torch.Generator().manual_seed(0)).x
        keep = given == 0
        assert torch.equal(out.masked_select(keep), x.masked_select(keep.expand_as(x)))
    a = m.translate(x, mask=mask, settings=EULER, generator=torch.Generator().manual_seed(0)).x
    b = m.translate(x, mask=mask, settings=EULER, generator=torch.Generator().manual_seed(1)).x
    assert torch.equal(a, m.translate(x, mask=mask, settings=EULER, generator=torch.Generator().manual_seed(0)).x)
    assert not torch.equal(a, b)  # fresh noise: another completion


def test_random_masks_have_the_configured_sizes():
    boxes = random_boxes(200, 32, (0.25, 0.5), square=False, generator=torch.Generator().manual_seed(0), device="cpu")
    rows, cols = boxes.amax(3).sum(2).flatten(), boxes.amax(2).sum(2).flatten()
    assert rows.min() >= 8 and rows.max() <= 16 and cols.min() >= 8 and cols.max() <= 16
    assert not torch.equal(rows, cols)  # sides drawn independently
    window = 1 - method("paired_flow", "outpaint").task.masks(50, generator=torch.Generator(), device="cpu")
    assert torch.equal(window.amax(3).sum(2), window.amax(2).sum(2))  # square kept windows


def test_regression_is_deterministic(photos):
    m = method("regression", "superres")
    torch.nn.init.normal_(m.model.out.weight, std=0.1)
    low = m.degrade(photos[:3])["source"]
    a = m.translate(low, generator=torch.Generator().manual_seed(0)).x
    assert torch.equal(a, m.translate(low, generator=torch.Generator().manual_seed(5)).x)  # no noise is drawn
    b = m.translate(low.repeat(2, 1, 1, 1)).x
    torch.testing.assert_close(b, a.repeat(2, 1, 1, 1))  # the same output for the same input (up to float order)


def test_bad_configs_and_sources():
    with pytest.raises(GenlabError, match="factor=3 must divide"):
        method("paired_flow", "superres", factor=3)
    with pytest.raises(GenlabError, match="needs RGB"):
        PairedFlowMethod(PairedFlowConfig(task="colorize"), UNetConfig(in_channels=1, image_size=8, num_classes=0))
    m = method("paired_flow", "superres")
    with pytest.raises(GenlabError, match=r"input is 3x16x16 .* takes 3x4x4"):
        m.translate(torch.zeros(1, 3, 16, 16))
    with pytest.raises(GenlabError, match="makes no samples from noise, it does superres"):
        m.sample(2)
    with pytest.raises(GenlabError, match="needs --mask"):
        method("regression", "inpaint").translate(torch.zeros(1, 3, 16, 16))


# -- end to end


@pytest.mark.parametrize(
    "name,task,image,extra",
    [
        ("paired_flow-superres", "superres", "small.png", []),
        ("paired_flow-superres", "superres", "batch.npz", ["--resize"]),
        ("paired_flow-colorize", "colorize", "photo.png", []),
        ("paired_flow-inpaint", "inpaint", "batch.npz", ["--mask", "mask.png"]),
        ("regression-outpaint", "outpaint", "photo.png", ["--keep", "0.5"]),
    ],
)
def test_every_trained_task_end_to_end(runs, images, tmp_path, name, task, image, extra):
    extra = [str(images / e) if e.endswith(".png") else e for e in extra]
    args = ["edit", str(runs[name]), "--task", task, "--image", str(images / image), "--n", "2", *extra]
    assert main([*args, "-o", str(tmp_path / "out.npz")]) == 0
    arrays = np.load(tmp_path / "out.npz")
    count = 3 if image.endswith(".npz") else 1
    assert arrays["images"].shape == (2 * count, 32, 32, 3)
    assert arrays["inputs"].tolist() == [i for i in range(count) for _ in range(2)]
    assert main([*args, "-o", str(tmp_path / "out.png")]) == 0
    columns = 1 + (task in ("inpaint", "outpaint")) + 2  # input | kept pixels | two outputs
    assert Image.open(tmp_path / "out.png").size[0] > columns * 32


def test_run_edit_batches_are_input_major_and_seeded(runs, photos):
    run = genlab.load_run(runs["paired_flow-colorize"])
    grey = run.method.degrade(torch.zeros(2, 3, 32, 32) + 0.1 * torch.arange(2).view(2, 1, 1, 1))["source"]
    a = run.edit(grey, task="colorize", n=3, seed=4)
    assert a.x.shape == (6, 3, 32, 32) and a.nfe == 2
    single = run.edit(grey[1], task="colorize", n=3, seed=4)
    assert torch.equal(a.x, run.edit(grey, task="colorize", n=3, seed=4).x)
    assert single.x.shape == (3, 3, 32, 32)


def test_eval_scores_a_paired_run(runs, tmp_path):
    assert main(["eval", str(runs["paired_flow-inpaint"]), "--out", str(tmp_path / "eval")]) == 0
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    metrics = report["metrics"]
    assert metrics["task"] == "inpaint" and report["settings"]["n"] == 24 and metrics["seam"] > 0
    assert metrics["fd"] > 0 and metrics["fd_features"].startswith("photos")


@pytest.mark.parametrize(
    "name,args,message",
    [
        ("paired_flow-superres", ["--task", "colorize", "--image", "photo.png"], "trained for --task superres"),
        ("paired_flow-superres", ["--task", "superres", "--image", "photo.png"], "takes 8x8 images"),
        ("paired_flow-inpaint", ["--task", "inpaint", "--image", "photo.png"], "needs --mask"),
        ("paired_flow-inpaint", ["--task", "inpaint", "--image", "photo.png", "--mask", "black.png"], "all black"),
        ("paired_flow-inpaint", ["--task", "inpaint", "--image", "photo.png", "--mask", "small.png"], "8x8"),
        ("paired_flow-colorize", ["--task", "colorize", "--image", "photo.png", "--strength", "0.5"], "--strength"),
        ("paired_flow-colorize", ["--task", "colorize", "--image", "mask.png", "--guidance-scale", "2"], "guidance"),
        ("regression-outpaint", ["--task", "outpaint", "--image", "photo.png", "--steps", "4"], "--steps"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(runs, images, tmp_path, capsys, name, args, message):
    args = [str(images / a) if a.endswith(".png") else a for a in args]
    out = tmp_path / "out.png"
    assert main(["edit", str(runs[name]), *args, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and not out.exists()


def test_training_free_runs_refuse_trained_tasks():
    from genlab.edit.translate import trained_task
    from genlab.methods.flow import FlowConfig, FlowMethod

    flow = FlowMethod(FlowConfig(), UNetConfig(in_channels=3, image_size=8, num_classes=0, channels=8))
    assert trained_task(flow, "inpaint") is False  # the training-free path
    with pytest.raises(GenlabError, match="needs a run trained for it"):
        trained_task(flow, "superres")
    with pytest.raises(GenlabError, match="unknown --task"):
        trained_task(flow, "deblur")
