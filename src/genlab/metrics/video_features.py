"""A small video feature network for a Fréchet video distance (FVD-style) on the procedural shape videos.

FVD proper uses an I3D network trained on Kinetics; genlab trains its own tiny one, as it does for images
(genlab.metrics.features): `VideoCNN` maps videos (B, T, 3, H, W) in [-1, 1] to features φ(x) (B, F).
Per frame (space): conv4×4(3→w, stride 2) → conv3×3(w→2w, stride 2) → conv3×3(2w→2w), ReLU after each, giving
(B, 2w, T, H/4, W/4); over space-time: conv3×3×3(2w→4w, spatial stride 2) + ReLU, the mean over (T, H/8, W/8),
linear(4w→F) + ReLU
= φ(x), the penultimate layer. The head is linear(F→L) over L multi-hot labels (LABELS): every colour shown,
every kind and every motion of the video's shapes (genlab.data.videos), trained with binary cross-entropy on the
'train' split, so φ has to see order in time (a motion's direction, a bounce, a colour switch). Shuffling a
video's frames moves its features: the test of the FD is the real test split against itself (≈ 0) and against
the same videos with their frames shuffled (clearly larger).

The shipped net (assets/features-videos.safetensors + .json sidecar: architecture, label names, held-out
accuracies) is trained by `python benchmarks/video_features.py --out src/genlab/assets/features-videos.safetensors`.
Weights are safetensors; loading never unpickles.
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

from genlab.atomic import atomic_path, atomic_write_text
from genlab.data.shapes import COLOURS, KINDS
from genlab.data.videos import MOTIONS, Actor
from genlab.errors import GenlabError
from genlab.metrics.fid import frechet_distance

VIDEOS_ASSET = "assets/features-videos.safetensors"
LABELS = (
    *(f"colour:{c}" for c in COLOURS),
    *(f"kind:{k}" for k in KINDS),
    *(f"motion:{m}" for m in MOTIONS),
)


@dataclass
class VideoCNNConfig:
    in_channels: int = 3
    image_size: int = 32
    frames: int = 8
    num_labels: int = len(LABELS)
    width: int = 16
    num_features: int = 64


class VideoCNN(nn.Module):
    """Frame convolutions, one space-time convolution, global mean; forward(x) gives the features (B, F)."""

    def __init__(self, cfg: VideoCNNConfig):
        super().__init__()
        self.cfg, w = cfg, cfg.width
        self.num_features = cfg.num_features
        self.frame = nn.Sequential(
            nn.Conv2d(cfg.in_channels, w, 4, stride=2, padding=1),
            nn.ReLU(),  # (B·T, w, H/2, W/2)
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1),
            nn.ReLU(),  # (B·T, 2w, H/4, W/4)
            nn.Conv2d(2 * w, 2 * w, 3, padding=1),
            nn.ReLU(),  # (B·T, 2w, H/4, W/4)
        )
        self.spacetime = nn.Sequential(
            nn.Conv3d(2 * w, 4 * w, 3, stride=(1, 2, 2), padding=1), nn.ReLU()
        )  # (B, 4w, T, H/8, W/8)
        self.proj = nn.Sequential(nn.Linear(4 * w, cfg.num_features), nn.ReLU())
        self.head = nn.Linear(cfg.num_features, cfg.num_labels)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 5:
            raise GenlabError(f"the video feature net takes videos (B, T, C, H, W), got shape {tuple(x.shape)}")
        b, t = x.shape[:2]
        h = self.frame(x.flatten(0, 1))  # (B·T, 2w, h, w)
        h = h.unflatten(0, (b, t)).transpose(1, 2)  # (B, 2w, T, h, w)
        return self.proj(self.spacetime(h).mean((2, 3, 4)))  # (B, F)

    def logits(self, x: Tensor) -> Tensor:
        return self.head(self.forward(x))


def label_targets(casts: list[tuple[Actor, ...]]) -> Tensor:
    """Multi-hot (N, len(LABELS)) float targets: colours shown (a colour change's both), kinds and motions."""
    index = {name: i for i, name in enumerate(LABELS)}
    y = torch.zeros(len(casts), len(LABELS))
    for row, cast in enumerate(casts):
        for a in cast:
            names = [f"colour:{a.colour}", f"kind:{a.kind}", f"motion:{a.motion}"]
            names += [f"colour:{a.to_colour}"] if a.to_colour else []
            y[row, [index[n] for n in names]] = 1.0
    return y


def fit_video_net(
    x: Tensor, y: Tensor, *, epochs: int = 10, seed: int = 0, batch_size: int = 64, width: int = 16
) -> VideoCNN:
    """Train a VideoCNN on videos x (N, T, C, H, W) with multi-hot targets y (AdamW, one-cycle lr, BCE)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    cfg = VideoCNNConfig(
        in_channels=x.shape[2], image_size=x.shape[-1], frames=x.shape[1], num_labels=y.shape[1], width=width
    )
    net = VideoCNN(cfg)
    per_epoch = max(1, len(x) // batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * per_epoch)
    net.train()
    for step in range(epochs * per_epoch):
        if step % per_epoch == 0:
            order = torch.randperm(len(x), generator=gen)
        idx = order[(step % per_epoch) * batch_size :][:batch_size]
        loss = F.binary_cross_entropy_with_logits(net.logits(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


@torch.no_grad()
def label_accuracy(net: VideoCNN, x: Tensor, y: Tensor, *, batch_size: int = 256) -> dict[str, float]:
    """Held-out accuracy of the multi-hot head: per label (all labels), exact label set, and per group."""
    net.eval()
    pred = torch.cat([net.logits(c) > 0 for c in x.split(batch_size)]).float()
    right = pred == y
    out = {"per_label": float(right.float().mean()), "exact": float(right.all(1).float().mean())}
    for group in ("colour", "kind", "motion"):
        cols = [i for i, n in enumerate(LABELS) if n.startswith(group + ":")]
        out[f"{group}_set"] = float(right[:, cols].all(1).float().mean())
    return out


def save_video_net(net: VideoCNN, path: str | Path, *, info: dict) -> Path:
    """Write `path` (.safetensors) and its JSON sidecar (architecture + info), each atomically."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise GenlabError(f"--out {path}: name the weights file *.safetensors")
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(tmp))
        os.chmod(tmp, 0o644)  # safetensors creates the file owner-only; the weights are meant to be shared
    meta = {"architecture": {"kind": "video_cnn", **asdict(net.cfg)}, "labels": list(LABELS), **info}
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")
    return path


def load_video_net(path: str | Path | None = None) -> VideoCNN:
    """A VideoCNN from safetensors + JSON sidecar; None = the shipped one (assets/features-videos.*)."""
    path = Path(path) if path else Path(str(files("genlab").joinpath(VIDEOS_ASSET)))
    if not path.is_file() or not path.with_suffix(".json").is_file():
        raise GenlabError(
            f"{path}: video feature net not found (needs the .safetensors and its .json sidecar); "
            "train one with 'python benchmarks/video_features.py --out FILE.safetensors'"
        )
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
        arch = dict(meta["architecture"])
        if arch.pop("kind") != "video_cnn":
            raise ValueError("unknown architecture kind")
        net = VideoCNN(VideoCNNConfig(**arch))
        net.load_state_dict(load_file(str(path)), strict=True)
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        raise GenlabError(f"{path}: unreadable video feature net ({type(e).__name__}); retrain it") from None
    net.name = meta.get("name", path.stem)
    return net.eval()


@torch.no_grad()
def video_features(net: VideoCNN, x: Tensor, *, batch_size: int = 128) -> Tensor:
    """Features (N, F) float64 of videos x (N, T, C, H, W) in [-1, 1], on the net's device."""
    cfg = net.cfg
    if x.dim() != 5 or x.shape[2] != cfg.in_channels or x.shape[-2:] != (cfg.image_size, cfg.image_size):
        raise GenlabError(
            f"the video feature net takes ({cfg.in_channels}-channel) {cfg.image_size}x{cfg.image_size} videos "
            f"(N, T, C, H, W), got shape {tuple(x.shape)}"
        )
    if x.shape[1] < 3:
        raise GenlabError(f"the video feature net needs >= 3 frames, got {x.shape[1]}")
    net.eval()
    device = next(net.parameters()).device
    return torch.cat([net(c.to(device, torch.float32)).double().cpu() for c in x.split(batch_size)])


def video_fd(real: Tensor, fake: Tensor, *, net: VideoCNN | None = None) -> float:
    """Fréchet distance between two sets of videos (N, T, C, H, W) in the video feature net's space."""
    net = net if net is not None else load_video_net()
    return frechet_distance(video_features(net, real), video_features(net, fake))


def shuffle_frames(x: Tensor, *, seed: int = 0) -> Tensor:
    """The videos (N, T, ...) with each one's frames in a random order (a fixed permutation per video, never the
    identity), the reference an FD must tell apart from the real videos."""
    gen = torch.Generator().manual_seed(seed)
    t = x.shape[1]
    out = torch.empty_like(x)
    for i in range(len(x)):
        perm = torch.randperm(t, generator=gen)
        while t > 1 and torch.equal(perm, torch.arange(t)):
            perm = torch.randperm(t, generator=gen)
        out[i] = x[i, perm]
    return out
