"""Video autoencoder (MovieGen's TAE, small): round trip, causality in time, training lowers the loss, the
reconstruction metrics, genlab eval, config errors, and video_flow on its latents."""

import json
import math

import pytest
import torch

from genlab.cli import main
from genlab.config import recipe_from_dict
from genlab.data import build_dataset
from genlab.errors import GenlabError
from genlab.metrics.video import flicker, frame_psnr, reconstruction_scores
from genlab.models.video_autoencoder import CausalTemporalConv, VideoAutoencoder, VideoAutoencoderConfig
from genlab.runs import build_method, load_run
from genlab.settings import SampleSettings
from genlab.train import resolve, train
from tests.loss_helpers import loss_before_after
from tests.t2i_fixtures import use_hash_encoder

FRAMES = 4


def tae_tree(**model) -> dict:
    return {
        "name": "tiny-tae",
        "seed": 0,
        "data": {"kind": "videos", "n": 16, "n_test": 8, "frames": FRAMES},
        "model": {"kind": "video_autoencoder", "channels": [4, 8, 8], "latent_channels": 4, **model},
        "method": {"kind": "video_autoencoder", "reconstruction": "l2", "calibration_images": 8},
        "train": {"steps": 2, "batch_size": 4, "warmup_steps": 0, "log_every": 1, "checkpoint_every": 2},
    }


def build(tree: dict):
    recipe = recipe_from_dict(tree, "test")
    data = build_dataset(recipe.data)
    return build_method(resolve(recipe, data)), data


def tiny_model(frames: int = 8, factor: int = 2) -> VideoAutoencoder:
    """A video autoencoder with every temporal conv randomised (its init makes some of them zero)."""
    torch.manual_seed(0)
    cfg = VideoAutoencoderConfig(in_channels=3, image_size=8, frames=frames, channels=(4, 4, 4), temporal_factor=factor)
    model = VideoAutoencoder(cfg)
    for m in model.modules():
        if isinstance(m, CausalTemporalConv):
            torch.nn.init.normal_(m.conv.weight, std=0.3)
    return model.double()


def leaks(model: VideoAutoencoder, frames: int = 8) -> tuple[int, int]:
    """(future leaks, past links) of encoder and decoder from gradients: a leak is a latent frame j with a nonzero
    gradient from an input frame t >= (j + 1)·f, or a reconstructed frame t with one from a latent frame j > t // f;
    a link is such a gradient for a frame the causal rule allows (an untrained net reads its past)."""
    f = model.cfg.temporal_factor
    x = torch.randn(1, frames, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    z = torch.randn(1, frames // f, 4, 2, 2, dtype=torch.float64, requires_grad=True)
    future = past = 0
    for j in range(frames // f):
        (g,) = torch.autograd.grad(model.encode(x)[0][:, j].sum(), x)
        moved = g.abs().flatten(2).sum(-1)[0] > 0  # (T,) input frames that reach latent frame j
        future += int(moved[(j + 1) * f :].sum())
        past += int(moved[: (j + 1) * f].sum())
    for t in range(frames):
        (g,) = torch.autograd.grad(model.decode(z)[:, t].sum(), z)
        moved = g.abs().flatten(2).sum(-1)[0] > 0  # (T',) latent frames that reach output frame t
        future += int(moved[t // f + 1 :].sum())
        past += int(moved[: t // f + 1].sum())
    return future, past


def test_round_trip_shapes_and_finite_output():
    m, data = build(tae_tree())
    x = data.x[:3]  # (3, 4, 3, 32, 32)
    mean, logvar = m.ae.encode(x)
    assert mean.shape == logvar.shape == (3, FRAMES // 2, 4, 8, 8) == (3, *m.latent_shape)
    recon = m.reconstruct(x)
    assert recon.shape == x.shape and torch.isfinite(recon).all() and recon.abs().max() <= 1
    assert m.sample(2).x.shape == (2, FRAMES, 3, 32, 32)
    # time is factor-1 compressible too, and factor 4 halves it twice
    assert build(tae_tree(temporal_factor=4))[0].ae.encode(x)[0].shape == (3, 1, 4, 8, 8)
    assert build(tae_tree(temporal_factor=1))[0].ae.encode(x)[0].shape == (3, FRAMES, 4, 8, 8)


@pytest.mark.parametrize("factor", [1, 2, 4])
def test_latents_and_reconstructions_depend_only_on_the_past(factor):
    future, past = leaks(tiny_model(factor=factor))
    assert future == 0 and past > 0


def test_the_causality_check_catches_a_centred_temporal_conv(monkeypatch):
    """The same check on a model whose temporal convs pad both sides (a centred, non-causal conv) finds leaks."""

    def centred(self, x):
        b, _, _, h, w = x.shape
        from genlab.models.video_autoencoder import frames_to_pixels, pixels_to_frames

        seq = torch.nn.functional.pad(frames_to_pixels(x), (self.pad - 1, 1))  # one frame of the future
        return pixels_to_frames(self.conv(seq), b, h, w)

    model = tiny_model()
    monkeypatch.setattr(CausalTemporalConv, "forward", centred)
    assert leaks(model)[0] > 0


def test_a_few_training_steps_lower_the_loss():
    torch.manual_seed(0)
    m, data = build(tae_tree())
    batch = {"x": data.x[:2]}
    before, after = loss_before_after(m, batch, 8)
    assert after < 0.7 * before


def test_reconstruction_metrics_by_hand():
    x = torch.full((1, 3, 3, 4, 4), -0.5)
    x[0, 1:, :, 0, 0] = 0.5  # pixel (0, 0) brightens at frame 1; the other 15 pixels stay put (16 + 15 static)
    torch.testing.assert_close(frame_psnr(x, x), torch.full((1, 3), 10 * torch.log10(torch.tensor(4e12))))
    shifted = x + 0.1  # the same error in every frame: no flicker
    assert flicker(shifted, x)["flicker"].item() == pytest.approx(0.0, abs=1e-5)
    assert flicker(shifted, x)["static_flicker"].item() == pytest.approx(0.0, abs=1e-5)
    blink = x.clone()
    blink[0, 1, :, 2, 2] = 0.0  # a static pixel lights up in frame 1 only: |Δ| = 0.5 twice, in 3 channels
    out = flicker(blink, x)
    assert out["static_flicker"].item() == pytest.approx(6 * 0.5 / (31 * 3) * 127.5)
    assert out["flicker"].item() == pytest.approx(6 * 0.5 / (2 * 3 * 16) * 127.5)
    # a reconstruction that misses the change: an error in frames 1 and 2, and its Δ differs from the video's once
    missed = torch.full_like(x, -0.5)
    scores = reconstruction_scores(missed, x)
    assert scores["psnr_db_frame_0"] > 100 > scores["psnr_db_frame_1"] == pytest.approx(10 * math.log10(64))
    assert scores["flicker"] == pytest.approx(3 * 1.0 / (2 * 3 * 16) * 127.5) and scores["static_flicker"] == 0
    with pytest.raises(GenlabError, match="same shape"):
        flicker(x[:, :1], x[:, :1])


@pytest.fixture(scope="module")
def tae_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tae")
    return train(recipe_from_dict(tae_tree(), "tae"), root / "tae", progress=False)


def test_eval_reports_psnr_per_frame_and_flicker(tae_run, tmp_path):
    assert main(["eval", str(tae_run), "--n", "10", "--out", str(tmp_path / "eval")]) == 0
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    metrics = report["metrics"]
    assert set(metrics) == {"psnr_db", "flicker", "static_flicker"} | {f"psnr_db_frame_{t}" for t in range(FRAMES)}
    assert report["settings"]["n"] == 8 and 0 < metrics["psnr_db"] < 60 and metrics["flicker"] >= 0
    run = load_run(tae_run)
    assert float(run.method.ae.scale_factor) != 1.0  # calibrated on training videos


def test_config_errors():
    with pytest.raises(GenlabError, match="temporal_factor"):
        build(tae_tree(temporal_factor=3))
    with pytest.raises(GenlabError, match="spatial downsamplings"):
        build(tae_tree(temporal_factor=8))
    tree = tae_tree()
    tree["data"]["frames"] = 5
    with pytest.raises(GenlabError, match="multiple"):
        build(tree)
    model = tiny_model()
    with pytest.raises(GenlabError, match="multiple"):
        model.encode(torch.zeros(1, 3, 3, 8, 8, dtype=torch.float64))
    with pytest.raises(GenlabError, match="takes videos"):
        model.encode(torch.zeros(1, 3, 8, 8, dtype=torch.float64))
    tree = tae_tree()
    tree["data"] = {"kind": "shapes", "n": 8, "n_test": 8}
    with pytest.raises(GenlabError, match="video data"):
        build(tree)
    tree = tae_tree()
    tree["data"] = {"kind": "shapes", "n": 8, "n_test": 8}
    tree["model"] = {"kind": "autoencoder", "channels": [4, 8, 8]}
    with pytest.raises(GenlabError, match="needs model.kind=video_autoencoder"):
        build(tree)


def flow_tree(tae_run) -> dict:
    return {
        "name": "tiny-t2v-tae",
        "seed": 0,
        "data": {"kind": "videos", "n": 16, "n_test": 8, "frames": FRAMES},
        "model": {"kind": "video_dit", "width": 32, "depth": 1, "heads": 2},
        "method": {"kind": "video_flow", "autoencoder": str(tae_run), "text_encoder": "minilm"},
        "train": {"steps": 2, "batch_size": 4, "warmup_steps": 0},
    }


def test_video_flow_trains_on_tae_latents(tae_run, monkeypatch):
    use_hash_encoder(monkeypatch)
    tree = flow_tree(tae_run)
    torch.manual_seed(0)
    m, data = build(tree)
    x = data.x[:4]
    z = m.to_latent(x)
    assert z.shape == (4, FRAMES // 2, 4, 8, 8) and m.shape == (FRAMES // 2, 4, 8, 8)
    assert m.image_shape == (FRAMES, 3, 32, 32) and m.from_latent(z).shape == x.shape
    batch = {"x": x, "text": data.texts[:4]}
    before, after = loss_before_after(m, batch, 8)
    assert after < before
    gen = torch.Generator().manual_seed(0)
    out = m.sample(
        2,
        cond=["a red circle moving to the right", "a blue square falls"],
        generator=gen,
        settings=SampleSettings(sampler="euler", steps=2),
    )
    assert out.x.shape == (2, FRAMES, 3, 32, 32) and out.x.abs().max() <= 1
    tree["data"]["frames"] = 5  # 5 frames do not split into the TAE's pairs
    with pytest.raises(GenlabError, match="multiple"):
        build(tree)


def test_every_tensor_stays_on_the_models_device(tae_run, monkeypatch):
    """The pretend-device check of tests/test_devices.py: the TAE with its per-frame PatchGAN on (losses of both
    groups, calibration, reconstruction, prior samples, held-out metrics), then video_flow on its latents."""
    from tests.test_devices import PretendDevice, pretend, run_everything

    tree = tae_tree()
    tree["method"].update(adv_weight=0.1, disc_start=0)
    m, data = build(tree)
    batch = pretend(m.train(), {"x": data.x[:2]})
    with PretendDevice():
        run_everything(m, batch, None)
        m.calibrate(data)
        m.heldout_metrics(data, n=2)
    use_hash_encoder(monkeypatch)
    flow, data = build(flow_tree(tae_run))
    batch = pretend(flow.eval(), {"x": data.x[:2]})
    with PretendDevice():
        run_everything(flow, batch, list(data.texts[:2]))


def test_inflating_an_image_autoencoder_starts_as_it():
    """method.init: with the image autoencoder's layers copied in and the temporal layers at their start, a TAE of
    factor 1 reconstructs every frame as the image autoencoder does, and one of factor 2 a still video too."""
    from genlab.methods.autoencoder import AutoencoderMethod, AutoencoderMethodConfig
    from genlab.models.autoencoder import AutoencoderConfig

    torch.manual_seed(0)
    image = AutoencoderMethod(
        AutoencoderMethodConfig(), AutoencoderConfig(in_channels=3, image_size=32, channels=(4, 8, 8))
    ).ae.eval()
    with torch.no_grad():
        for p in image.parameters():
            p.add_(0.05 * torch.randn_like(p))
    _, data = build(tae_tree())
    x = data.x[:2]
    still = x[:, :1].expand_as(x)
    for factor, video in ((1, x), (2, still)):
        m, _ = build(tae_tree(temporal_factor=factor))
        m.inflate(image)
        want = image(video.flatten(0, 1)).unflatten(0, video.shape[:2])
        torch.testing.assert_close(m.ae.eval()(video), want, atol=1e-5, rtol=1e-4)
    m, _ = build(tae_tree(latent_channels=8))
    with pytest.raises(GenlabError, match="latent_channels"):
        m.inflate(image)
