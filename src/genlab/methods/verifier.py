"""A learned verifier of text-to-image outputs (method.kind `verifier`): is this caption true of this image?

Trained as a binary classifier on captioned images: each image's own caption is a positive, and one negative per
image is a hard one, the caption of a minimally changed scene (`genlab.data.shapes.contradict`: the opposite
relation, the two colours swapped, one colour or kind changed, a shape left out or one added; the first two, which
need word order and positions, for a `relational` share of the images where they apply), recaptioned in the
grammar's own templates and paraphrases. Captions outside the shapes grammar get another image's caption instead.
Loss: binary cross-entropy on the log-odds of `genlab.models.verifier` (image patches and a frozen text encoder's
token states in one transformer). Images are lightly degraded during training (a random blur towards the 3×3 mean
and Gaussian noise), as a generator's decoded images are softer and noisier than the renders.

Use: `genlab.rerank` (best-of-K generation, `genlab generate --best-of K`); `score(images, texts)` gives the
log-odds. Not generative: the trainer writes no sample grid. The held-out metrics are on the test split: accuracy
on positives and negatives, and how often the true caption outscores its contradiction (overall and per change).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.constraints import NonNegFloat, Probability
from genlab.data.shapes import CONTRADICTIONS, caption_full, contradict, parse_caption
from genlab.errors import GenlabError
from genlab.methods.base import Method
from genlab.models.verifier import VerifierConfig, VerifierNet

BATCH = 256  # images scored per forward pass
RELATIONAL = ("relation", "swap")


@dataclass
class VerifierMethodConfig:
    kind: str = "verifier"
    text_encoder: Literal["minilm"] = "minilm"
    paraphrase: Probability = 0.5  # the share of negatives recaptioned in the paraphrase templates
    # the share of negatives that are the opposite relation or the colours swapped, where one of those applies (the
    # changes a bag of words cannot see; drawn uniformly with the others they are rare and learned last)
    relational: Probability = 0.5
    blur: Probability = 0.5  # the share of training images blurred (by a random amount)
    noise: NonNegFloat = 0.08  # training images get Gaussian noise of a std drawn uniformly in [0, noise]


def degrade(x: Tensor, *, blur: float, noise: float, generator: torch.Generator | None = None) -> Tensor:
    """x (B, C, H, W) with, per image, probability `blur` of a blend towards its 3×3 mean by a uniform amount, and
    Gaussian noise of a std uniform in [0, noise]."""
    b = len(x)
    u = torch.rand(b, 3, generator=generator).to(x.device, x.dtype)  # (B, 3)
    mean = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)  # (B, C, H, W)
    amount = (u[:, 0] < blur).to(x.dtype) * u[:, 1]  # (B,)
    x = x + (mean - x) * amount.view(b, 1, 1, 1)
    eps = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
    return x + eps * (noise * u[:, 2]).view(b, 1, 1, 1)


class VerifierMethod(Method):
    generates = False

    def __init__(self, cfg: VerifierMethodConfig, model_cfg: VerifierConfig):
        super().__init__()
        if model_cfg.kind != "verifier":
            raise GenlabError(f"method.kind=verifier needs model.kind=verifier, got {model_cfg.kind!r}")
        from genlab.methods.latent import text_encoder

        encoder = text_encoder(cfg.text_encoder)
        self.cfg = cfg
        self.model = VerifierNet(dataclasses.replace(model_cfg, text_dim=encoder.dim))
        object.__setattr__(self, "text_encoder", encoder)  # held outside the module tree (see text.base)

    @property
    def image_shape(self) -> tuple[int, ...]:
        c = self.model.cfg
        return (c.in_channels, c.image_size, c.image_size)

    def logits(self, x: Tensor, texts: list[str]) -> Tensor:
        emb = self.text_encoder.encode(list(texts))
        return self.model(x, emb.tokens.to(x.device, x.dtype), emb.mask.to(x.device))

    @torch.no_grad()
    def score(self, images: Tensor, texts: list[str]) -> Tensor:
        """Log-odds (N,) that texts[i] is true of images[i] (N, C, H, W) in [-1, 1]; any device, the result on it."""
        if len(images) != len(texts):
            raise GenlabError(f"give one text per image: {len(texts)} texts for {len(images)} images")
        out = [
            self.logits(images[i : i + BATCH].to(self.device), texts[i : i + BATCH]).float()
            for i in range(0, len(texts), BATCH)
        ]
        return torch.cat(out).to(images.device)

    def negatives(self, texts: list[str], rng: np.random.Generator) -> tuple[list[str], list[str]]:
        """(a caption false of each text's image, how it was changed: a CONTRADICTIONS name or 'other image')."""
        out, hows = [], []
        for i, text in enumerate(texts):
            scene = parse_caption(text)
            if scene is None:
                out.append(texts[(i + 1) % len(texts)])
                hows.append("other image")
                continue
            prefer = RELATIONAL if rng.random() < self.cfg.relational else ()
            how, changed = contradict(scene, rng, prefer=prefer)
            out.append(caption_full(changed, rng, pairs="varied", paraphrase=self.cfg.paraphrase, forms="relations"))
            hows.append(how)
        return out, hows

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        if "text" not in batch:
            raise GenlabError("method.kind=verifier needs captioned data (data.kind: shapes, or a folder with 'text')")
        x, texts = batch["x"], list(batch["text"])
        if len(texts) < 2:
            raise GenlabError("method.kind=verifier needs train.batch_size >= 2")
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,))))
        false, _ = self.negatives(texts, rng)
        x = degrade(x, blur=self.cfg.blur, noise=self.cfg.noise)
        logit = self.logits(torch.cat([x, x]), texts + false)  # (2B,)
        target = torch.cat([torch.ones(len(x)), torch.zeros(len(x))]).to(logit)
        loss = F.binary_cross_entropy_with_logits(logit, target)
        pos, neg = logit[: len(x)].detach(), logit[len(x) :].detach()
        return loss, {
            "loss": loss.detach(),
            "ranked": (pos > neg).float().mean(),
            "acc": ((logit > 0) == target).float().mean(),
        }

    @torch.no_grad()
    def heldout_metrics(self, data, *, seed: int = 0, n: int | None = None, settings=None) -> dict[str, float]:
        """On n test images: accuracy on the true captions and on their contradictions (log-odds > 0 / < 0), and
        `ranked`: the true caption outscores its contradiction (overall and per change)."""
        if data.texts is None:
            raise GenlabError("the held-out data has no captions: a verifier is measured on captioned data")
        x, texts = data.x[: n or 1000], list(data.texts[: n or 1000])
        false, hows = self.negatives(texts, np.random.default_rng(seed))
        pos, neg = self.score(x, texts), self.score(x, false)
        out = {
            "accuracy_true": float((pos > 0).float().mean()),
            "accuracy_false": float((neg < 0).float().mean()),
            "ranked": float((pos > neg).float().mean()),
            "n": len(texts),
        }
        for how in (*CONTRADICTIONS, "other image"):
            rows = [i for i, h in enumerate(hows) if h == how]
            if rows:
                out[f"ranked_{how}"] = float((pos[rows] > neg[rows]).float().mean())
        return out

    def sample(self, n: int, **_):
        raise GenlabError("a verifier run is not generative: use it with genlab generate --best-of K --verifier RUN")
