"""The FID Inception-v3 network (Szegedy et al. 2016, as frozen in TensorFlow's 2015-12-05 graph; Heusel et al. 2017).

φ(x) = the 2048-d global average pool after Mixed_7c, for x in [-1, 1] resized bilinearly to 299×299 (grey images
repeated to RGB). It differs from the classification Inception-v3 the way the TF graph does: every pool branch
averages without the zero padding, and Mixed_7c's pool branch takes a max. Module names follow the usual
`pt_inception-2015-12-05` state dict, so its tensors load as they are; weights come from a safetensors file only.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from genlab.errors import GenlabError
from genlab.metrics.features import FeatureNet

CHUNK = 64
CONVERT = (
    'python -c "import torch, safetensors.torch as s; s.save_file(torch.load('
    "'pt_inception-2015-12-05-6726825d.pth', weights_only=True), 'pt_inception-2015-12-05.safetensors')\""
)


class Conv(nn.Module):
    """conv (no bias) → batch norm (ε = 1e-3) → ReLU: the state dict's `.conv` / `.bn` pair."""

    def __init__(self, cin: int, cout: int, kernel, stride: int = 1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class BlockA(nn.Module):  # 35×35: 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | pool→1×1
    def __init__(self, cin: int, pool: int):
        super().__init__()
        self.branch1x1 = Conv(cin, 64, 1)
        self.branch5x5_1, self.branch5x5_2 = Conv(cin, 48, 1), Conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1, self.branch3x3dbl_2 = Conv(cin, 64, 1), Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = Conv(96, 96, 3, padding=1)
        self.branch_pool = Conv(cin, pool, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch5x5_2(self.branch5x5_1(x)),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                self.branch_pool(_avg(x)),
            ],
            1,
        )


class BlockB(nn.Module):  # 35→17 reduction: 3×3/2 | 1×1→3×3→3×3/2 | max pool/2
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = Conv(cin, 384, 3, stride=2)
        self.branch3x3dbl_1, self.branch3x3dbl_2 = Conv(cin, 64, 1), Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = Conv(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(
            [
                self.branch3x3(x),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                F.max_pool2d(x, 3, stride=2),
            ],
            1,
        )


def _row(c: int) -> Conv:
    return Conv(c, c, (1, 7), padding=(0, 3))


def _col(c: int, cout: int | None = None) -> Conv:
    return Conv(c, cout or c, (7, 1), padding=(3, 0))


class BlockC(nn.Module):  # 17×17 with factorised 7×7 convolutions of width c
    def __init__(self, cin: int, c: int):
        super().__init__()
        self.branch1x1 = Conv(cin, 192, 1)
        self.branch7x7_1, self.branch7x7_2, self.branch7x7_3 = Conv(cin, c, 1), _row(c), _col(c, 192)
        self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3 = Conv(cin, c, 1), _col(c), _row(c)
        self.branch7x7dbl_4 = _col(c)
        self.branch7x7dbl_5 = Conv(c, 192, (1, 7), padding=(0, 3))
        self.branch_pool = Conv(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        seven = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        dbl = x
        for i in range(1, 6):
            dbl = getattr(self, f"branch7x7dbl_{i}")(dbl)
        return torch.cat([self.branch1x1(x), seven, dbl, self.branch_pool(_avg(x))], 1)


class BlockD(nn.Module):  # 17→8 reduction
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1, self.branch3x3_2 = Conv(cin, 192, 1), Conv(192, 320, 3, stride=2)
        self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3 = Conv(cin, 192, 1), _row(192), _col(192)
        self.branch7x7x3_4 = Conv(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        seven = x
        for i in range(1, 5):
            seven = getattr(self, f"branch7x7x3_{i}")(seven)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), seven, F.max_pool2d(x, 3, stride=2)], 1)


class BlockE(nn.Module):  # 8×8 with split 1×3 / 3×1 outputs; `pool` is 'avg' (Mixed_7b) or 'max' (Mixed_7c)
    def __init__(self, cin: int, pool: str):
        super().__init__()
        self.pool = pool
        self.branch1x1 = Conv(cin, 320, 1)
        self.branch3x3_1 = Conv(cin, 384, 1)
        self.branch3x3_2a = Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1, self.branch3x3dbl_2 = Conv(cin, 448, 1), Conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = Conv(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = _avg(x) if self.pool == "avg" else F.max_pool2d(x, 3, stride=1, padding=1)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(a),
                self.branch3x3_2b(a),
                self.branch3x3dbl_3a(b),
                self.branch3x3dbl_3b(b),
                self.branch_pool(pooled),
            ],
            1,
        )


class FIDInceptionV3(nn.Module):
    """(B, C, H, W) in [-1, 1], C ∈ {1, 3} → (B, 2048) pool features. `fc` (the 1008-way ImageNet head) is loaded
    but unused: no `logits` method, so the report's class metrics never read ImageNet classes as the data's labels."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3, self.Conv2d_2a_3x3 = Conv(3, 32, 3, stride=2), Conv(32, 32, 3)
        self.Conv2d_2b_3x3, self.Conv2d_3b_1x1 = Conv(32, 64, 3, padding=1), Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = Conv(80, 192, 3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = BlockA(192, 32), BlockA(256, 64), BlockA(288, 64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b, self.Mixed_6c = BlockC(768, 128), BlockC(768, 160)
        self.Mixed_6d, self.Mixed_6e = BlockC(768, 160), BlockC(768, 192)
        self.Mixed_7a, self.Mixed_7b, self.Mixed_7c = BlockD(768), BlockE(1280, "avg"), BlockE(2048, "max")
        self.fc = nn.Linear(2048, 1008)

    def forward(self, x: Tensor) -> Tensor:
        if len(x) > CHUNK:  # 299×299 activations: bound the memory of one call
            return torch.cat([self(c) for c in x.split(CHUNK)])
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)  # (B, 3, 299, 299)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (B, 64, 147, 147)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, stride=2)))  # (B, 192, 71, 71)
        x = F.max_pool2d(x, 3, stride=2)  # (B, 192, 35, 35)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)  # ... → (B, 2048, 8, 8)
        return x.mean((2, 3))  # (B, 2048)


def load_inception(path: str | Path) -> FIDInceptionV3:
    """FIDInceptionV3 in eval mode with the tensors of a safetensors file (keys as in pt_inception-2015-12-05)."""
    if not Path(path).is_file() or Path(path).suffix != ".safetensors":
        raise GenlabError(
            f"--inception-weights {path}: needs an existing .safetensors file; convert the "
            f"pytorch-fid weights once with: {CONVERT}"
        )
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise GenlabError(f"--inception-weights {path}: unreadable ({e}); convert again with: {CONVERT}") from None
    net = FIDInceptionV3()
    skip = ("num_batches_tracked", "AuxLogits.")
    tensors = {k: v for k, v in tensors.items() if not any(s in k for s in skip)}
    expected = {k for k in net.state_dict() if "num_batches_tracked" not in k}
    missing, unexpected = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
    if missing or unexpected:
        raise GenlabError(
            f"--inception-weights {path}: not the FID Inception-v3 state dict ({len(missing)} keys "
            f"missing, e.g. {missing[:1]}; {len(unexpected)} unexpected, e.g. {unexpected[:1]})"
        )
    try:
        net.load_state_dict(tensors, strict=False)
    except RuntimeError as e:
        detail = str(e).splitlines()[-1].strip()
        raise GenlabError(f"--inception-weights {path}: a tensor has the wrong shape ({detail})") from None
    return net.eval()


def inception_feature_net(path: str | Path) -> FeatureNet:
    """The FID Inception-v3 as the report's feature net (pool3 features, 2048-d)."""
    return FeatureNet(module=load_inception(path), name="inception-v3-fid (pt_inception-2015-12-05)")
