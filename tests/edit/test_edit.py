"""Editing as wrappers around the sampler: SDEdit's strength, exact known pixels when inpainting, `genlab edit`."""

import numpy as np
import pytest
import torch
from PIL import Image

import genlab
from genlab.cli import main
from genlab.data.images import tensor_to_uint8
from genlab.edit import blur_mask, border_mask, edit, repaint
from genlab.errors import GenlabError
from genlab.settings import SampleSettings

EULER = SampleSettings(sampler="euler", steps=4, guidance_scale=1.0)


@pytest.fixture(scope="module")
def flow(digits_run):
    return genlab.load_run(digits_run).method


def _digit(flow, seed=0):
    """A sample of the run as the image to edit (1, 1, 8, 8)."""
    return flow.sample(1, cond=torch.tensor([3]), settings=EULER, generator=torch.Generator().manual_seed(seed)).x


def test_sdedit_at_strength_one_is_plain_sampling_and_near_zero_returns_the_input(flow):
    x = _digit(flow, 1).expand(3, -1, -1, -1)
    label = torch.tensor([1, 2, 3])
    plain = flow.sample(3, cond=label, settings=EULER, generator=torch.Generator().manual_seed(5))
    full = edit(
        flow, x, task="sdedit", strength=1.0, cond=label, settings=EULER, generator=torch.Generator().manual_seed(5)
    )
    assert torch.equal(full.x, plain.x) and full.nfe == plain.nfe == 4
    tiny = edit(
        flow, x, task="sdedit", strength=1e-4, cond=label, settings=EULER, generator=torch.Generator().manual_seed(5)
    )
    torch.testing.assert_close(tiny.x, x, atol=2e-3, rtol=0)
    half = edit(
        flow, x, task="sdedit", strength=0.5, cond=label, settings=EULER, generator=torch.Generator().manual_seed(5)
    )
    again = edit(
        flow, x, task="sdedit", strength=0.5, cond=label, settings=EULER, generator=torch.Generator().manual_seed(5)
    )
    assert torch.equal(half.x, again.x) and half.nfe == 4  # deterministic; the 4 steps all lie in [0, 0.5]
    assert (half.x - x).abs().mean() < (plain.x - x).abs().mean()


@pytest.mark.parametrize("sampler", ["euler", "heun", "dpmpp_2m", "unipc"])
def test_inpainting_keeps_the_known_pixels_exactly(flow, sampler):
    x = _digit(flow).expand(2, -1, -1, -1)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :, 4:] = 1  # make the right half
    out = edit(
        flow,
        x,
        task="inpaint",
        mask=mask,
        cond=torch.tensor([3, 3]),
        settings=SampleSettings(sampler=sampler, steps=4),
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(out.x[..., :4], x[..., :4])
    assert not torch.allclose(out.x[0, ..., 4:], out.x[1, ..., 4:])  # two different completions
    assert out.x.abs().max() <= 1


def test_outpainting_makes_the_border_and_keeps_the_centre(flow):
    x = _digit(flow).expand(2, -1, -1, -1)
    out = edit(
        flow,
        x,
        task="outpaint",
        keep=0.5,
        cond=torch.tensor([3, 3]),
        settings=EULER,
        generator=torch.Generator().manual_seed(0),
    )
    keep = border_mask(8, 0.5) == 0
    assert int(keep.sum()) == 16 and torch.equal(out.x[:, keep[0]], x[:, keep[0]])


def _png(path, array):
    Image.fromarray(array).save(path)
    return str(path)


def test_edit_cli_end_to_end_and_bad_input(digits_run, gan_run, tmp_path, capsys, flow):
    image = _png(tmp_path / "in.png", tensor_to_uint8(_digit(flow))[0, :, :, 0])
    mask = np.zeros((8, 8), np.uint8)
    mask[:, 4:] = 255
    mask_png = _png(tmp_path / "mask.png", mask)
    out = tmp_path / "inpaint.png"
    args = ["edit", str(digits_run), "--image", image, "--steps", "2", "--sampler", "euler", "--label", "3"]
    assert main([*args, "--task", "inpaint", "--mask", mask_png, "--n", "3", "-o", str(out)]) == 0
    assert "3 inpaint edits" in capsys.readouterr().out
    feathered = tmp_path / "feathered.npz"
    assert main([*args, "--task", "inpaint", "--mask", mask_png, "--mask-blur", "0.8", "-o", str(feathered)]) == 0
    assert np.load(feathered)["images"].shape == (4, 8, 8, 1)
    row = np.asarray(Image.open(out))
    assert row.shape[1] > 4 * row.shape[0]  # one row of 5 tiles: input, given, 3 edits
    assert main([*args, "--task", "sdedit", "--strength", "0.5", "-o", str(tmp_path / "sd.npz")]) == 0
    assert np.load(tmp_path / "sd.npz")["images"].shape == (4, 8, 8, 1)
    bad = {
        "mask size": [*args, "--task", "inpaint", "--mask", _png(tmp_path / "m16.png", np.zeros((16, 16), np.uint8))],
        "all black": [*args, "--task", "inpaint", "--mask", _png(tmp_path / "m0.png", np.zeros((8, 8), np.uint8))],
        "all white": [*args, "--task", "inpaint", "--mask", _png(tmp_path / "m1.png", np.full((8, 8), 255, np.uint8))],
        "strength": [*args, "--task", "sdedit", "--strength", "1.5"],
        "image size": [
            *args[:3],
            _png(tmp_path / "big.png", np.zeros((16, 16), np.uint8)),
            *args[4:],
            "--task",
            "sdedit",
        ],
        "no mask": [*args, "--task", "inpaint"],
        "negative blur": [*args, "--task", "inpaint", "--mask", mask_png, "--mask-blur", "-1"],
        "gan": ["edit", str(gan_run), "--image", image, "--task", "sdedit"],
    }
    for name, argv in bad.items():
        target = tmp_path / f"bad-{name.replace(' ', '-')}.png"
        assert main([*argv, "-o", str(target)]) == 2, name
        err = capsys.readouterr().err.strip()
        assert err.startswith("genlab: error:") and len(err.splitlines()) == 1, (name, err)
        assert not target.exists(), name
    assert (
        main(
            [
                *args,
                "--task",
                "sdedit",
                "--image",
                str(tmp_path / "big.png"),
                "--resize",
                "-o",
                str(tmp_path / "resized.png"),
            ]
        )
        == 0
    )


def test_editing_needs_a_flow_run(gan_run):
    run = genlab.load_run(gan_run)
    with pytest.raises(GenlabError, match="flow/diffusion run"):
        run.edit(torch.zeros(1, 8, 8), task="sdedit")


def test_repaint_without_resampling_is_ddim_inpainting_and_with_it_keeps_pixels(flow):
    x = _digit(flow, 2).expand(2, -1, -1, -1)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1  # make the centre
    kept = mask[0, 0] == 0
    ddim = SampleSettings(sampler="ddim", steps=6, grid="uniform", guidance_scale=1.0)
    label = torch.tensor([3, 3])

    def inpaint(**opts):
        return edit(
            flow,
            x,
            task="inpaint",
            mask=mask,
            cond=label,
            settings=ddim,
            generator=torch.Generator().manual_seed(4),
            **opts,
        )

    plain = inpaint()  # the run's sampler (DDIM here) with x-hat replacement
    one_pass = repaint(
        flow, x, 1 - mask, cond=label, settings=ddim, generator=torch.Generator().manual_seed(4), jump=2, resample=1
    )  # RePaint's loop, one pass per block
    torch.testing.assert_close(torch.where(kept, x, one_pass.x), plain.x, rtol=0, atol=1e-6)
    three = inpaint(resample=3, jump=2)
    assert three.nfe == 3 * 6 and torch.equal(three.x[..., kept], x[..., kept])
    assert not torch.allclose(three.x, plain.x)
    assert torch.equal(inpaint(resample=3, jump=2).x, three.x)  # deterministic from the seed
    with pytest.raises(GenlabError, match="starts from noise"):
        inpaint(resample=3, strength=0.5)


def test_mask_blur_feathers_outward_and_keeps_far_pixels_exactly(flow):
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :, 5:] = 1  # make the right three columns
    soft = blur_mask(mask, 0.7)
    assert torch.equal(blur_mask(mask, 0), mask)
    assert torch.equal(soft[..., 5:], mask[..., 5:])  # every marked pixel is still made in full
    assert 0 < soft[0, 0, 0, 4] < 1 and soft[0, 0, 0, 3] < soft[0, 0, 0, 4]  # a band that fades outward
    assert torch.equal(soft[..., :2], mask[..., :2])  # beyond 3σ nothing changes
    with pytest.raises(GenlabError, match="mask-blur"):
        blur_mask(mask, -1.0)
    x = _digit(flow).expand(2, -1, -1, -1)
    kw = dict(task="inpaint", mask=mask, cond=torch.tensor([3, 3]), settings=EULER)
    hard = edit(flow, x, generator=torch.Generator().manual_seed(0), **kw)
    out = edit(flow, x, generator=torch.Generator().manual_seed(0), mask_blur=0.7, **kw)
    assert torch.equal(out.x[..., :2], x[..., :2])  # far pixels are the input's exactly
    assert not torch.equal(out.x[..., 3:5], hard.x[..., 3:5])  # the band is a blend now
    with pytest.raises(GenlabError, match="sdedit takes no mask"):
        edit(flow, x, task="sdedit", mask_blur=1.0, settings=EULER)
