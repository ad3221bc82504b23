"""Models: shapes, zero output at init, gradient flow, null-class handling, overfitting, config errors."""

from __future__ import annotations

import dataclasses
import typing

import pytest
import torch
import torch.nn.functional as F

from genlab.errors import GenlabError
from genlab.models import MLP, MLPConfig, UNet, UNetConfig
from genlab.models.layers import timestep_embedding
from genlab.models.unet import UNET_PRESETS

UNET_CASES = {
    "digits": UNetConfig(in_channels=1, image_size=8, num_classes=0, channels=16),
    "digits-cond-attn": UNetConfig(
        in_channels=1, image_size=8, num_classes=10, channels=16, attention_resolutions=(4,), heads=2
    ),
    "rgb16-attn": UNetConfig(
        in_channels=3,
        image_size=16,
        num_classes=3,
        channels=16,
        channel_mults=(1, 2, 2),
        num_res_blocks=2,
        attention_resolutions=(8, 4),
        dropout=0.1,
    ),
    "rgb32": UNetConfig(in_channels=3, image_size=32, num_classes=0, channels=8, channel_mults=(1, 2, 2, 2)),
}


def _mlp(num_classes: int = 0) -> MLP:
    return MLP(MLPConfig(dim=2, num_classes=num_classes, hidden=32, depth=2, time_embed=16))


def _inputs(model: torch.nn.Module, batch: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    shape = (batch, cfg.dim) if isinstance(model, MLP) else (batch, cfg.in_channels, cfg.image_size, cfg.image_size)
    x = torch.randn(shape, generator=g)
    t = torch.rand(batch, generator=g)
    label = torch.randint(0, cfg.num_classes + 1, (batch,), generator=g) if cfg.num_classes else None
    return x, t, label


def _perturb_output(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in model.out.parameters():
            p.normal_(0.0, 0.1)


MODEL_IDS = ["mlp", "mlp-cond", *UNET_CASES]


def _build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name.startswith("mlp"):
        return _mlp(5 if name == "mlp-cond" else 0)
    return UNet(UNET_CASES[name])


@pytest.mark.parametrize("name", MODEL_IDS)
def test_shape_and_zero_output_at_init(name):
    model = _build(name).eval()
    x, t, label = _inputs(model)
    out = model(x, t, label)
    assert out.shape == x.shape
    assert torch.count_nonzero(out) == 0


@pytest.mark.parametrize("name", MODEL_IDS)
def test_gradients_reach_every_parameter(name):
    model = _build(name).train()
    _perturb_output(model)
    num_classes = model.cfg.num_classes
    batch = max(4, num_classes + 1)
    x, t, _ = _inputs(model, batch=batch)
    label = torch.arange(batch) % (num_classes + 1) if num_classes else None  # every row incl. null
    model(x, t, label).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize("name", ["mlp-cond", "digits-cond-attn", "rgb16-attn"])
def test_label_none_is_null_class(name):
    model = _build(name).eval()
    _perturb_output(model)
    x, t, _ = _inputs(model)
    null = torch.full((x.shape[0],), model.cfg.num_classes, dtype=torch.long)
    torch.testing.assert_close(model(x, t), model(x, t, null))
    other = torch.zeros_like(null)
    assert not torch.allclose(model(x, t, other), model(x, t, null))


def test_unconditional_ignores_label():
    model = UNet(UNET_CASES["digits"]).eval()
    _perturb_output(model)
    x, t, _ = _inputs(model)
    torch.testing.assert_close(model(x, t), model(x, t, torch.zeros(4, dtype=torch.long)))


def _overfit(model: torch.nn.Module, steps: int, lr: float) -> tuple[float, float]:
    x, t, label = _inputs(model, batch=8, seed=1)
    target = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = F.mse_loss(model(x, t, label), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses[0], min(losses[-5:])


def test_mlp_overfits_one_batch():
    torch.manual_seed(0)
    first, last = _overfit(_mlp(3), steps=100, lr=3e-3)
    assert last < first / 10, (first, last)


def test_unet_overfits_one_batch():
    torch.manual_seed(0)
    first, last = _overfit(UNet(UNET_CASES["digits-cond-attn"]), steps=80, lr=3e-3)
    assert last < first / 10, (first, last)


def test_config_errors():
    with pytest.raises(GenlabError, match="model.in_channels is not set"):
        UNet(UNetConfig(image_size=8, num_classes=0))
    with pytest.raises(GenlabError, match="model.image_size=10 must be divisible by 4"):
        UNet(UNetConfig(in_channels=1, image_size=10, num_classes=0, channel_mults=(1, 2, 2)))
    with pytest.raises(GenlabError, match="model.dim is not set"):
        MLP(MLPConfig(num_classes=0))
    with pytest.raises(GenlabError, match="t must have shape"):
        timestep_embedding(torch.zeros(4, 1), 16)


def test_configs_are_plain_and_presets_build():
    for cls in (MLPConfig, UNetConfig):
        hints = typing.get_type_hints(cls)
        assert dataclasses.fields(cls)[0].name == "kind" and hints["kind"] is str
    assert MLPConfig().kind == "mlp" and UNetConfig().kind == "unet"
    for name, cfg in UNET_PRESETS.items():
        assert isinstance(cfg, UNetConfig), name
    small = UNet(dataclasses.replace(UNET_PRESETS["small"], in_channels=3, image_size=16, num_classes=0))
    x = torch.randn(2, 3, 16, 16)
    assert small(x, torch.rand(2)).shape == x.shape


def test_timestep_embedding_distinguishes_times():
    emb = timestep_embedding(torch.tensor([0.0, 0.001, 0.5, 1.0]), 32)
    assert emb.shape == (4, 32)
    assert torch.cdist(emb, emb).fill_diagonal_(1.0).min() > 0.1
