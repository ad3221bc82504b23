"""Real-image inversion on the shipped text-to-image checkpoint: ODE inversion reconstructs at guidance 1,
null-text inversion at guidance > 1, the stepping equals the run's sampler, and `genlab invert`."""

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.cli import main
from genlab.data.images import tensor_to_uint8
from genlab.edit.inversion import edit_image, invert, sample_inverted
from genlab.errors import GenlabError
from genlab.generate import text_run
from genlab.metrics.geneval import ObjectSpec, Prompt, render_prompts

SPECS = [("red", "circle"), ("blue", "square")]
PROMPTS = [f"a {c} {s}" for c, s in SPECS]


@pytest.fixture(scope="module")
def run():
    return text_run()


@pytest.fixture(scope="module")
def images():
    """Renders of the prompts by the shapes renderer: real images, not the model's samples."""
    return render_prompts([Prompt(f"a {c} {s}", "single_object", (ObjectSpec(s, c),)) for c, s in SPECS], seed=0)


def test_inversion_then_sampling_reconstructs_at_guidance_one(run, images):
    """Heun on the recipe's grid (the default samples on the SDE; inversion takes Heun on its 32 steps), there and
    back: latent MSE < 1e-3 (the latents have unit scale; the benchmark measures 2e-4), so the decoded image is as
    close as the autoencoder's own reconstruction."""
    method, settings = run.method, run.resolve_deterministic(guidance_scale=1.0)
    inv = invert(method, images, PROMPTS, settings)
    z = method.to_latent(images)
    assert float((sample_inverted(method, inv) - z).pow(2).mean()) < 1e-3
    noise_std = float(inv.noise.std())
    assert 0.6 < noise_std < 1.4  # it is noise-like, not the latent itself


@pytest.mark.parametrize("interval", [(0.0, 1.0), (0.5, 1.0)])
def test_stepping_is_the_run_sampler(run, images, interval):
    method, settings = run.method, run.resolve_deterministic(steps=4, guidance_interval=interval)
    inv = invert(method, images, PROMPTS, settings)
    plain = method.sample(2, cond=PROMPTS, settings=settings, noise=inv.noise).x
    torch.testing.assert_close(method.from_latent(sample_inverted(method, inv)), plain, atol=1e-5, rtol=0)
    everywhere = method.sample(
        2, cond=PROMPTS, settings=settings.replace(guidance_interval=(0.0, 1.0)), noise=inv.noise
    )
    assert torch.equal(everywhere.x, plain) == (interval == (0.0, 1.0))  # the interval changes the samples


def test_null_text_beats_plain_inversion_at_guidance(run, images):
    method, settings = run.method, run.resolve_deterministic(steps=4, guidance_scale=4.0)
    z = method.to_latent(images)
    plain = float((sample_inverted(method, invert(method, images, PROMPTS, settings)) - z).pow(2).mean())
    null = invert(method, images, PROMPTS, settings, null_text=True, iters=3)
    assert len(null.nulls) == 4
    assert float((sample_inverted(method, null) - z).pow(2).mean()) < plain / 2


def test_edit_image_and_errors(run, images):
    out = edit_image(images[:1], PROMPTS[0], "a green circle", run=run, steps=4, guidance_scale=1.0)
    assert out.x.shape == (2, 3, 32, 32) and out.cond == [PROMPTS[0], "a green circle"]
    with pytest.raises(GenlabError, match="euler or heun"):
        edit_image(images[:1], PROMPTS[0], run=run, sampler="dpmpp_2m")
    with pytest.raises(GenlabError, match="guidance-scale > 1"):
        edit_image(images[:1], PROMPTS[0], run=run, null_text=True, guidance_scale=1.0)


def test_cli_invert(tmp_path, capsys, images):
    image = tmp_path / "red.png"
    Image.fromarray(tensor_to_uint8(images[:1])[0]).save(image)
    out = tmp_path / "inv.png"
    args = ["invert", str(image), "--prompt", PROMPTS[0], "--edit-to", "a blue circle", "--steps", "4", "-o", str(out)]
    assert main([*args, "--guidance-scale", "1"]) == 0
    assert "reconstruction PSNR" in capsys.readouterr().out
    grid = np.asarray(Image.open(out))
    assert grid.shape[1] > 2.5 * grid.shape[0]  # input, reconstruction, edit side by side
    assert main([*args, "--sampler", "dpmpp_2m"]) == 2
    assert "--sampler heun" in capsys.readouterr().err
