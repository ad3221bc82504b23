"""CLIP (Radford et al. 2021) as a method on the one trainer: symmetric InfoNCE over image–caption batches.

With L2-normalised image embeddings u_i and text embeddings v_j of a batch, logits_ij = exp(s)·u_i·v_j with
a learned log-temperature s (init log 1/0.07, clamped at log 100), and
loss = ½ [CE(logits, diag) + CE(logitsᵀ, diag)]. The towers are `genlab.models.clip`. Not generative: the
trainer writes no sample grid (`generates = False`) and `sample` says how to use the run instead
(`genlab.text.clip`: text encoder "clip:RUN", CLIP score, retrieval).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.constraints import PositiveFloat
from genlab.errors import GenlabError
from genlab.methods.base import Method
from genlab.models.clip import CLIP, ClipConfig
from genlab.settings import Samples


@dataclass
class ClipMethodConfig:
    kind: str = "clip"
    init_temperature: PositiveFloat = 0.07
    max_logit_scale: PositiveFloat = 100.0


class ClipMethod(Method):
    generates = False

    def __init__(self, cfg: ClipMethodConfig, model_cfg: ClipConfig):
        super().__init__()
        if model_cfg.kind != "clip":
            raise GenlabError(f"method.kind=clip needs model.kind=clip, got {model_cfg.kind!r}")
        self.cfg = cfg
        self.model = CLIP(model_cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.init_temperature)))

    def embed_images(self, x: Tensor) -> Tensor:
        """Unit image embeddings (B, width) of images (B, C, H, W) in [-1, 1]."""
        return F.normalize(self.model.image(x), dim=-1)

    def embed_texts(self, texts: list[str]) -> Tensor:
        """Unit text embeddings (B, width)."""
        return F.normalize(self.model.text(*self.model.text.tokenize(list(texts)))[1], dim=-1)

    @torch.no_grad()
    def heldout_metrics(self, data, *, seed: int = 0, n: int | None = None, settings=None) -> dict[str, float]:
        """Image→text top-1 over the distinct held-out captions and the mean CLIP score 100·max(cos, 0) of true
        pairs vs seeded shuffled pairs."""
        if data.texts is None:
            raise GenlabError("the held-out data has no captions: a CLIP is measured on captioned data")
        x, texts = data.x[: n or 1000].to(self.device), list(data.texts[: n or 1000])
        u = torch.cat([self.embed_images(c) for c in x.split(256)])  # (N, D)
        candidates = sorted(set(texts))
        v = torch.cat([self.embed_texts(candidates[i : i + 256]) for i in range(0, len(candidates), 256)])
        best = (u @ v.T).argmax(1).tolist()
        true = torch.cat([self.embed_texts(texts[i : i + 256]) for i in range(0, len(texts), 256)])
        perm = torch.randperm(len(texts), generator=torch.Generator().manual_seed(seed)).to(self.device)
        score = lambda a, b: float(100 * (a * b).sum(-1).clamp_min(0).mean())  # noqa: E731
        return {
            "retrieval_top1": sum(candidates[b] == t for b, t in zip(best, texts)) / len(texts),
            "candidates": len(candidates),
            "clip_score_true": score(u, true),
            "clip_score_shuffled": score(u, true[perm]),
            "n": len(texts),
        }

    def logits(self, u: Tensor, v: Tensor) -> Tensor:
        scale = self.logit_scale.clamp(max=math.log(self.cfg.max_logit_scale)).exp()
        return scale * u @ v.T  # (B_images, B_texts)

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        if "text" not in batch:
            raise GenlabError(
                "method.kind=clip needs captioned data (data.kind: shapes, digits with data.captions: true, "
                "or a folder with 'text')"
            )
        logits = self.logits(self.embed_images(batch["x"]), self.embed_texts(batch["text"]))  # (B, B)
        target = torch.arange(len(logits), device=logits.device)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        acc = (logits.argmax(1) == target).float().mean()
        return loss, {"loss": loss.detach(), "acc_i2t": acc.detach(), "logit_scale": self.logit_scale.detach().exp()}

    def sample(self, n: int, **_) -> Samples:
        raise GenlabError("a clip run is not generative: use it as a text encoder ('clip:RUN') or for CLIP score")
