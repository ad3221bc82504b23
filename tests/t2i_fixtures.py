"""Helpers shared by the text-to-image tests: a stand-in captioned data set and a tiny hashing text encoder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "white": (255, 255, 255)}


def coloured_squares(path: Path, *, n: int = 256, size: int = 16, seed: int = 0) -> Path:
    """An .npz of n captioned images: one solid square of a named colour on black ("a red square")."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size, 3), dtype=np.uint8)
    texts = []
    for i in range(n):
        name = list(COLOURS)[rng.integers(len(COLOURS))]
        side = int(rng.integers(4, size // 2 + 1))
        top, left = rng.integers(0, size - side + 1, size=2)
        images[i, top : top + side, left : left + side] = COLOURS[name]
        texts.append(f"a {name} square")
    np.savez(path, images=images, texts=np.array(texts))
    return path


@dataclass
class Embedding:
    tokens: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor


class HashEncoder(torch.nn.Module):
    """Deterministic stand-in for genlab.text encoders: one fixed random vector per word, plus a start token."""

    dim, max_length, name = 8, 8, "hash"

    def encode(self, texts: list[str]) -> Embedding:
        words = [["<s>", *t.split()][: self.max_length] for t in texts]
        length = max(map(len, words))
        tokens = torch.zeros(len(texts), length, self.dim)
        mask = torch.zeros(len(texts), length, dtype=torch.bool)
        for i, ws in enumerate(words):
            for j, w in enumerate(ws):
                g = torch.Generator().manual_seed(sum(ord(ch) * 31**k for k, ch in enumerate(w)) % 2**31)
                tokens[i, j], mask[i, j] = torch.randn(self.dim, generator=g), True
        pooled = (tokens * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return Embedding(tokens, mask, pooled)


def use_hash_encoder(monkeypatch) -> None:
    import genlab.methods.latent as latent

    monkeypatch.setattr(latent, "text_encoder", lambda name: HashEncoder())


def autoencoder_recipe(data: Path, **train) -> dict:
    return {
        "name": "tiny-ae",
        "seed": 0,
        "data": {"kind": "npz", "path": str(data)},
        "model": {"kind": "autoencoder", "channels": [8, 16], "latent_channels": 4},
        "method": {"kind": "autoencoder", "disc_start": 10, "disc_channels": 8, "calibration_images": 1000},
        "train": {
            "steps": 30,
            "batch_size": 16,
            "lr": 3e-3,
            "warmup_steps": 2,
            "log_every": 5,
            "checkpoint_every": 30,
            "grid_columns": 4,
            **train,
        },
    }


def t2i_recipe(data: Path, ae_run: Path, **train) -> dict:
    return {
        "name": "tiny-t2i",
        "seed": 0,
        "data": {"kind": "npz", "path": str(data)},
        "model": {"kind": "dit", "size": "micro", "width": 32, "heads": 2, "patch_size": 2},
        "method": {"kind": "latent_flow", "autoencoder": str(ae_run), "text_encoder": "minilm", "text_dropout": 0.2},
        "train": {
            "steps": 8,
            "batch_size": 16,
            "warmup_steps": 2,
            "log_every": 4,
            "checkpoint_every": 8,
            "grid_columns": 2,
            **train,
        },
        "sample": {"sampler": "euler", "steps": 2, "guidance_scale": 2.0},
    }


def train_recipe(tree: dict, tmp: Path, name: str) -> Path:
    from genlab.cli import main

    recipe = tmp / f"{name}.yaml"
    recipe.write_text(yaml.safe_dump(tree))
    assert main(["train", str(recipe), "--out", str(tmp / name), "--no-progress"]) == 0
    return tmp / name


def tiny_t2i_runs(tmp: Path, *, n: int, ae_steps: int, t2i_steps: int) -> tuple[Path, Path, Path]:
    """(data .npz, autoencoder run, text-to-image run) trained in `tmp` with the hashing text encoder."""
    import pytest

    data = coloured_squares(tmp / "squares.npz", n=n)
    with pytest.MonkeyPatch.context() as mp:
        use_hash_encoder(mp)
        ae = train_recipe(autoencoder_recipe(data, steps=ae_steps, checkpoint_every=ae_steps), tmp, "ae")
        return data, ae, train_recipe(t2i_recipe(data, ae, steps=t2i_steps), tmp, "t2i")
