"""Feature networks for image metrics: a small CNN classifier (shipped for digits), raw pixels, or any nn.Module.

A feature network maps images (B, C, H, W) in [-1, 1] to features φ(x) of shape (B, F), F = `num_features`.
`SmallCNN`: conv3×3(C→w) → conv3×3(w→2w) → maxpool 2 → conv3×3(2w→4w) → global mean → linear(4w→F) + ReLU
gives the penultimate feature φ(x) (F = 64 for the shipped digits net); its head gives logits = Wφ(x) + b,
so one network yields FD/KID/PRDC features and the class probabilities softmax(logits) of the Inception-style
score. Weights are safetensors + a JSON sidecar (architecture, held-out accuracy); loading never unpickles.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from genlab.data.base import Dataset
from genlab.errors import GenlabError

DIGITS_ASSET = "assets/features-digits.safetensors"
PIXEL_SIDE = 8  # the pixel fallback averages images down to at most 8×8 before flattening


@dataclass
class CNNConfig:
    in_channels: int = 1
    image_size: int = 8
    num_classes: int = 10
    width: int = 32
    num_features: int = 64


class SmallCNN(nn.Module):
    """A small classifier; forward(x) returns the penultimate features (B, num_features)."""

    def __init__(self, cfg: CNNConfig):
        super().__init__()
        self.cfg, w = cfg, cfg.width
        self.num_features = cfg.num_features  # torchmetrics' FID reads this attribute
        self.body = nn.Sequential(
            nn.Conv2d(cfg.in_channels, w, 3, padding=1),
            nn.ReLU(),  # (B, w, H, W)
            nn.Conv2d(w, 2 * w, 3, padding=1),
            nn.ReLU(),  # (B, 2w, H, W)
            nn.MaxPool2d(2),  # (B, 2w, H/2, W/2)
            nn.Conv2d(2 * w, 4 * w, 3, padding=1),
            nn.ReLU(),  # (B, 4w, H/2, W/2)
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),  # (B, 4w)
            nn.Linear(4 * w, cfg.num_features),
            nn.ReLU(),  # (B, F)
        )
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(cfg.num_features, cfg.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)

    def logits(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.body(x)))


class PixelFeatures(nn.Module):
    """Fallback features: the image area-averaged to at most 8×8 and flattened (a weak, classifier-free space)."""

    def __init__(self, channels: int, side: int):
        super().__init__()
        self.side = min(side, PIXEL_SIDE)
        self.num_features = channels * self.side**2

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(x, self.side).flatten(1)  # (B, C·side²)


@dataclass
class FeatureNet:
    """A feature module with what a report must say about it. `image_size` None = any input size."""

    module: nn.Module
    name: str
    heldout_accuracy: float | None = None
    image_size: int | None = None
    in_channels: int | None = None

    @property
    def has_logits(self) -> bool:
        return callable(getattr(self.module, "logits", None))


def user_feature_net(module: nn.Module, *, name: str | None = None) -> FeatureNet:
    """Wrap any nn.Module mapping (B, C, H, W) in [-1, 1] to (B, F); an optional `.logits(x)` enables class metrics."""
    return FeatureNet(module=module, name=name or type(module).__name__)


def pixel_feature_net(channels: int, side: int) -> FeatureNet:
    module = PixelFeatures(channels, side)
    return FeatureNet(module=module, name=f"pixels-{module.side}x{module.side}")


def resize_images(x: Tensor, size: int) -> Tensor:
    """Bilinear resize to size×size (antialiased when shrinking), clamped to [-1, 1]; a no-op at that size."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    y = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < x.shape[-1])
    return y.clamp_(-1.0, 1.0)


@torch.no_grad()
def extract(net: FeatureNet, x: Tensor, *, batch_size: int = 512) -> tuple[Tensor, Tensor | None]:
    """(features (N, F) float64, logits (N, K) float64 or None) of images x (N, C, H, W) in [-1, 1]."""
    if net.in_channels is not None and x.shape[1] != net.in_channels:
        raise GenlabError(
            f"feature net {net.name} takes {net.in_channels}-channel images, got {x.shape[1]}: "
            "pass --features pixels or a feature net trained on this data (genlab features train)"
        )
    net.module.eval()
    feats, logits = [], []
    for chunk in x.split(batch_size):
        chunk = resize_images(chunk.float(), net.image_size) if net.image_size else chunk.float()
        feats.append(net.module(chunk).double())
        if net.has_logits:
            logits.append(net.module.logits(chunk).double())
    return torch.cat(feats), (torch.cat(logits) if logits else None)


def sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def save_feature_net(net: SmallCNN, path: str | Path, *, info: dict) -> Path:
    """Write `path` (.safetensors) and its JSON sidecar (architecture + info), each via a temporary file."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise GenlabError(f"--out {path}: name the weights file *.safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(tmp))
    os.chmod(tmp, 0o644)  # safetensors creates the file owner-only; the weights are meant to be shared
    os.replace(tmp, path)
    meta = {"architecture": {"kind": "small_cnn", **asdict(net.cfg)}, **info}
    tmp_json = path.with_name(f".{sidecar(path).name}.tmp")
    tmp_json.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp_json, sidecar(path))
    return path


def load_feature_net(path: str | Path) -> FeatureNet:
    """A SmallCNN from safetensors + JSON sidecar (as written by `genlab features train`)."""
    path = Path(path)
    if not path.is_file() or not sidecar(path).is_file():
        raise GenlabError(
            f"{path}: feature net not found (needs the .safetensors and its .json sidecar); "
            "train one with 'genlab features train DATA --out FILE.safetensors'"
        )
    try:
        meta = json.loads(sidecar(path).read_text())
        arch = dict(meta["architecture"])
        if arch.pop("kind") != "small_cnn":
            raise ValueError("unknown architecture kind")
        net = SmallCNN(CNNConfig(**arch))
        net.load_state_dict(load_file(str(path)), strict=True)
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        raise GenlabError(
            f"{path}: unreadable feature net ({type(e).__name__}); re-run 'genlab features train'"
        ) from None
    return FeatureNet(
        module=net.eval(),
        name=meta.get("name", path.stem),
        heldout_accuracy=meta.get("heldout_accuracy"),
        image_size=net.cfg.image_size,
        in_channels=net.cfg.in_channels,
    )


def digits_feature_net() -> FeatureNet:
    """The shipped digits classifier (8×8 grey inputs; other sizes are resized to 8×8)."""
    return load_feature_net(Path(str(files("genlab").joinpath(DIGITS_ASSET))))


def resolve_feature_net(spec: str | nn.Module | FeatureNet | None, train: Dataset) -> FeatureNet | None:
    """None → the default for the data (digits: the shipped CNN; other images: 8×8 pixels; vectors: none);
    'digits', 'pixels', a .safetensors path from `genlab features train`, or any nn.Module / FeatureNet."""
    if isinstance(spec, FeatureNet) or not train.is_image:
        return spec if isinstance(spec, FeatureNet) else None  # vector data is compared in data space
    if isinstance(spec, nn.Module):
        return user_feature_net(spec)
    channels, side = train.x.shape[1], train.x.shape[-1]
    if spec == "digits" or (spec is None and train.name == "digits" and channels == 1):
        return digits_feature_net()
    if spec in (None, "pixels"):
        return pixel_feature_net(channels, side)
    return load_feature_net(spec)


def _shift(x: Tensor, gen: torch.Generator) -> Tensor:
    """Augmentation: translate each image by up to one pixel (replicate-padded)."""
    side = x.shape[-1]
    pad = F.pad(x, (1, 1, 1, 1), mode="replicate")  # (B, C, H+2, W+2)
    dy, dx = torch.randint(0, 3, (2,), generator=gen).tolist()
    return pad[..., dy : dy + side, dx : dx + side]


def fit_feature_net(x: Tensor, labels: Tensor, *, num_classes: int, epochs: int = 40, seed: int = 0) -> SmallCNN:
    """Train a SmallCNN classifier (Adam, cosine lr, batch 64, ±1-pixel shifts) on images x with labels."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = SmallCNN(CNNConfig(in_channels=x.shape[1], image_size=x.shape[-1], num_classes=num_classes))
    steps = epochs * max(1, len(x) // 64)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    net.train()
    for step in range(steps):
        if step % max(1, len(x) // 64) == 0:
            order = torch.randperm(len(x), generator=gen)
        idx = order[(step % max(1, len(x) // 64)) * 64 :][:64]
        loss = F.cross_entropy(net.logits(_shift(x[idx], gen)), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


@torch.no_grad()
def accuracy(net: nn.Module, x: Tensor, labels: Tensor) -> float:
    return float((net.logits(x).argmax(1) == labels).double().mean())
