"""The shipped shapes-t2i DiT must give the outputs recorded before the DiT speed changes (issue #11)."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

import genlab.models.dit as dit_module
from genlab.models.dit import DiT, DiTConfig

ROOT = Path(__file__).resolve().parents[2]
REF = json.loads((Path(__file__).parent / "data" / "shapes_t2i_dit_ref.json").read_text())


@pytest.mark.parametrize("fused", [True, False])
def test_shipped_t2i_dit_outputs_unchanged(monkeypatch, fused):
    monkeypatch.setattr(dit_module, "FUSED", fused)
    weights = load_file(str(ROOT / "src" / "genlab" / "assets" / "shapes-t2i" / "ema.safetensors"))
    net = DiT(DiTConfig(in_channels=4, image_size=8, num_classes=0, size="tiny", text_dim=384)).eval()
    net.load_state_dict({k[len("model.") :]: v for k, v in weights.items() if k.startswith("model.")}, strict=True)
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(2, 4, 8, 8, generator=g), torch.tensor([0.3, 0.8])
    mask = torch.tensor([[True] * 12, [True] * 5 + [False] * 7])
    cond = SimpleNamespace(
        tokens=torch.randn(2, 12, 384, generator=g), mask=mask, pooled=torch.randn(2, 384, generator=g)
    )
    with torch.no_grad():
        y = net(x, t, cond).double()
    assert y.shape == (2, 4, 8, 8)
    ref = torch.tensor(REF["every_37th"], dtype=torch.float64)
    torch.testing.assert_close(y.flatten()[::37], ref, rtol=1e-5, atol=1e-6)
    assert float(y.sum()) == pytest.approx(REF["sum"], rel=1e-5)
    assert float(y.abs().sum()) == pytest.approx(REF["abs_sum"], rel=1e-5)
