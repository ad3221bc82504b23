"""KL + PatchGAN autoencoder: round trip shapes, reconstruction improves, the latent scale gives unit std."""

import json

import pytest
import torch

from genlab.data import build_dataset
from genlab.errors import GenlabError
from genlab.methods.autoencoder import AutoencoderMethod, AutoencoderMethodConfig
from genlab.metrics.image import psnr
from genlab.models.autoencoder import Autoencoder, AutoencoderConfig, PatchDiscriminator, kl_to_standard
from genlab.runs import load_run
from tests.t2i_fixtures import autoencoder_recipe, coloured_squares, train_recipe


def test_round_trip_shapes_and_closed_forms():
    cfg = AutoencoderConfig(in_channels=3, image_size=32, channels=(8, 16, 16), latent_channels=4)
    ae = Autoencoder(cfg)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    mean, logvar = ae.encode(x)
    assert mean.shape == logvar.shape == (2, *cfg.latent_shape()) == (2, 4, 8, 8)
    assert ae.decode(mean).shape == x.shape and ae(x).shape == x.shape
    assert PatchDiscriminator(3, channels=8, layers=2)(x).shape == (2, 1, 8, 8)
    assert torch.equal(kl_to_standard(torch.zeros(2, 4), torch.zeros(2, 4)), torch.zeros(2))
    torch.testing.assert_close(kl_to_standard(torch.ones(1, 3), torch.zeros(1, 3)), torch.tensor([1.5]))
    y = x * 0.9  # inside [-1, 1], so the clamp in psnr changes nothing
    torch.testing.assert_close(psnr(y, y + 0.02), torch.full((2,), 40.0))  # 10·log10(4 / 0.02²)
    with pytest.raises(GenlabError, match="divisible"):
        Autoencoder(AutoencoderConfig(in_channels=3, image_size=30, channels=(8, 16, 16)))


def test_adversarial_terms_start_after_warmup():
    m = AutoencoderMethod(
        AutoencoderMethodConfig(disc_start=3, disc_channels=8),
        AutoencoderConfig(in_channels=3, image_size=16, channels=(8, 16)),
    )
    batch = {"x": torch.rand(4, 3, 16, 16) * 2 - 1}
    loss, logs = m.loss(batch, "disc")
    loss.backward()
    assert float(loss.detach()) == 0.0 and "gen" not in m.loss(batch, "model")[1]
    assert all(float(p.grad.abs().sum()) == 0.0 for p in m.disc.parameters())
    m.step = 3
    assert float(m.loss(batch, "disc")[0].detach()) > 0 and "gen" in m.loss(batch, "model")[1]


def test_training_improves_reconstruction_and_stores_unit_latent_scale(tmp_path):
    data = coloured_squares(tmp_path / "squares.npz", n=256)
    run = train_recipe(autoencoder_recipe(data), tmp_path, "ae")
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["psnr"] > rows[0]["psnr"] + 2.0  # dB, over 30 steps
    assert "disc" in rows[-1] and "gen" in rows[-1]  # the PatchGAN terms ran after disc_start
    assert (run / "samples.png").is_file()  # the trainer's end-of-run grid: decodes of random latents
    loaded = load_run(run)
    recipe, method = loaded.recipe, loaded.method
    scale = method.ae.scale_factor
    assert float(scale) != 1.0  # calibrated and saved in ema.safetensors
    x = build_dataset(recipe.data, split="train").x
    with torch.no_grad():
        z = method.ae.encode(x)[0] * scale
    assert float(z.std()) == pytest.approx(1.0, abs=1e-4)
    assert float(psnr(method.reconstruct(x), x).mean()) > rows[0]["psnr"]
