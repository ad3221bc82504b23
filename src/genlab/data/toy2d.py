"""Two-dimensional toy distributions, each centred and scaled to root-mean-square ≈ 1 per coordinate.

  moons         two interleaved half circles (radius 1, noise std 0.1), shifted by -(0.5, 0.25) and
                scaled by 1.4  (std ≈ (1.22, 0.71))
  8gaussians    8 equal Gaussians on a circle of radius 1.4 at angles kπ/4, std 0.14 each
  checkerboard  uniform on the 8 "black" cells of a 4×4 board covering [-√3, √3]²  (std exactly 1)
  spirals       two opposite arms r = θ/(1.5π), θ = 3π·sqrt(u), u ~ U(0, 1), plus noise std 0.07
  circles       concentric circles of radius 1.78 and 0.89 (half the points each), noise std 0.06
The fixed train set is `sample_toy2d(name, n, seed_seq(seed, 0))`; the test split uses the derived
seed (seed, 1), i.e. the same law and size with independent draws. No labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from genlab.constraints import PositiveInt, Seed
from genlab.data.base import Dataset
from genlab.errors import GenlabError

ToyName = Literal["moons", "8gaussians", "checkerboard", "spirals", "circles"]


@dataclass
class Toy2DConfig:
    kind: str = "toy2d"
    name: ToyName = "moons"
    n: PositiveInt = 20000
    seed: Seed = 0


def _moons(rng: np.random.Generator, n: int) -> np.ndarray:
    t = rng.uniform(0.0, math.pi, n)
    upper = rng.random(n) < 0.5
    x = np.where(upper, np.cos(t), 1.0 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    pts = np.stack([x, y], 1) + 0.1 * rng.standard_normal((n, 2))
    return 1.4 * (pts - np.array([0.5, 0.25]))


def _eight_gaussians(rng: np.random.Generator, n: int) -> np.ndarray:
    angle = rng.integers(0, 8, n) * (math.pi / 4)
    centres = 1.4 * np.stack([np.cos(angle), np.sin(angle)], 1)
    return centres + 0.14 * rng.standard_normal((n, 2))


def _checkerboard(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.uniform(-2.0, 2.0, n)
    col = np.floor(x + 2.0)  # 0..3
    row = 2 * rng.integers(0, 2, n) + col % 2  # a row of the same parity: the "black" cells
    y = row - 2.0 + rng.random(n)
    return (math.sqrt(3) / 2) * np.stack([x, y], 1)


def _spirals(rng: np.random.Generator, n: int) -> np.ndarray:
    theta = 3 * math.pi * np.sqrt(rng.random(n))
    sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)[:, None]
    arm = np.stack([-np.cos(theta), np.sin(theta)], 1) * (theta / (1.5 * math.pi))[:, None]
    return sign * arm + 0.07 * rng.standard_normal((n, 2))


def _circles(rng: np.random.Generator, n: int) -> np.ndarray:
    radius = np.where(rng.random(n) < 0.5, 1.78, 0.89)
    angle = rng.uniform(0.0, 2 * math.pi, n)
    pts = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1)
    return pts + 0.06 * rng.standard_normal((n, 2))


SAMPLERS = {
    "moons": _moons,
    "8gaussians": _eight_gaussians,
    "checkerboard": _checkerboard,
    "spirals": _spirals,
    "circles": _circles,
}


def _numpy_rng(generator: torch.Generator | np.random.Generator | int) -> np.random.Generator:
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, torch.Generator):  # draw a seed, so the torch generator advances
        return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
    return np.random.default_rng(generator)


def sample_toy2d(name: str, n: int, generator: torch.Generator | np.random.Generator | int) -> torch.Tensor:
    """Draw n i.i.d. points (n, 2) float32 from the named toy law (see the module docstring)."""
    if name not in SAMPLERS:
        raise GenlabError(f"data.name: unknown toy distribution {name!r}; use one of {', '.join(SAMPLERS)}")
    if n < 1:
        raise GenlabError(f"data.n must be a positive number of points, got {n}")
    pts = SAMPLERS[name](_numpy_rng(generator), n)  # (n, 2) float64
    return torch.from_numpy(pts.astype(np.float32))


def build_toy2d(cfg: Toy2DConfig, *, split: str = "train") -> Dataset:
    """The fixed train set (or the equally large test set) of `cfg.name`, shape (n, 2)."""
    if split not in ("train", "test"):
        raise GenlabError(f"split must be 'train' or 'test', got {split!r}")
    if cfg.seed < 0:
        raise GenlabError(f"data.seed must be >= 0, got {cfg.seed}")
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0 if split == "train" else 1]))
    return Dataset(x=sample_toy2d(cfg.name, cfg.n, rng), name=f"toy2d-{cfg.name}")
