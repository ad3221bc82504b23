"""Using a CLIP trained by genlab (method kind `clip`, `genlab.methods.clip`): its text tower as a frozen
text encoder ("clip:RUN"), CLIP score and image→text retrieval.

The text encoder's tokens are the text tower's final per-token states (B, L, width); pooled is its unit
text embedding v. CLIP score of an (image, caption) pair = 100·max(cos(u, v), 0) (Hessel et al. 2021,
with the scale torchmetrics uses); retrieval ranks candidate captions by cos(u, v).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.errors import GenlabError
from genlab.methods.clip import ClipMethod
from genlab.models.clip import words
from genlab.text.base import TextEncoder


def load_clip(run: str | Path | ClipMethod) -> ClipMethod:
    """The EMA CLIP of a run folder (trained with method.kind: clip), in eval mode and frozen."""
    if isinstance(run, ClipMethod):
        return run
    from genlab.runs import load_run

    loaded = load_run(run)
    if loaded.recipe.method.kind != "clip":
        raise GenlabError(f"{run} is a {loaded.recipe.method.kind!r} run: name a run of recipes/shapes-clip.yaml")
    return loaded.method


class ClipTextEncoder(TextEncoder):
    """The text tower of a genlab CLIP: tokens = its final per-token states, pooled = its unit text embedding."""

    def __init__(self, clip: ClipMethod, *, name: str):
        tower = clip.model.text
        super().__init__(tower, name=name, dim=clip.model.cfg.width, max_length=tower.max_length)

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return [self.frozen.token_ids(t) for t in texts]

    def overflow(self, text: str) -> tuple[int, int, str] | None:
        ws = words(text)  # one token per word after [BOS]
        if 1 + len(ws) <= self.max_length:
            return None
        return self.max_length, 1 + len(ws), " ".join(ws[self.max_length - 1 :])

    def run(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        tokens, pooled = self.frozen(ids, torch.ones_like(ids, dtype=torch.bool))
        return tokens, F.normalize(pooled, dim=-1)


def clip_text_encoder(run: str) -> ClipTextEncoder:
    return ClipTextEncoder(load_clip(run), name=f"clip:{run}")


@torch.no_grad()
def clip_similarity(
    images: Tensor, texts: list[str], clip: str | Path | ClipMethod, *, batch_size: int = 256
) -> Tensor:
    """cos(u_i, v_i) for each (image, text) pair (N,), images (N, C, H, W) in [-1, 1]."""
    if len(images) != len(texts):
        raise GenlabError(f"CLIP score needs one caption per image, got {len(images)} images and {len(texts)} texts")
    model = load_clip(clip)
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(texts), batch_size):
        u = model.embed_images(images[start : start + batch_size].to(device).float())
        out.append((u * model.embed_texts(texts[start : start + batch_size])).sum(-1).cpu())
    return torch.cat(out)


def clip_score(images: Tensor, texts: list[str], clip_run: str | Path | ClipMethod) -> float:
    """Mean CLIP score 100·max(cos(u, v), 0) over (image, caption) pairs (Hessel et al. 2021)."""
    return float(100 * clip_similarity(images, texts, clip_run).clamp_min(0).mean())


@torch.no_grad()
def retrieve(images: Tensor, candidates: list[str], clip: str | Path | ClipMethod) -> list[str]:
    """For each image (N, C, H, W) in [-1, 1], the candidate caption of highest CLIP similarity."""
    model = load_clip(clip)
    device = next(model.parameters()).device
    v = torch.cat([model.embed_texts(candidates[i : i + 256]) for i in range(0, len(candidates), 256)])  # (T, D)
    u = torch.cat([model.embed_images(images[i : i + 256].to(device).float()) for i in range(0, len(images), 256)])
    return [candidates[b] for b in (u @ v.T).argmax(1).tolist()]


def retrieval_accuracy(images: Tensor, texts: list[str], clip: str | Path | ClipMethod) -> float:
    """Image→text top-1 over the distinct captions of the set: the retrieved caption must equal the true one."""
    best = retrieve(images, sorted(set(texts)), clip)
    return sum(b == t for b, t in zip(best, texts)) / len(texts)
