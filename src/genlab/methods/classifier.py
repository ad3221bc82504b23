"""A time-conditioned classifier on noisy inputs, p_φ(y | x_t), for classifier guidance.

Training: t ~ time distribution, eps ~ N(0, I), x_t = a(t)·x + b(t)·eps on the same named paths as the
flow method, loss = cross-entropy(f_φ(c_in·x_t, t), y) with c_in = 1/√(a²σ_data² + b²) as in `flow`.
At sampling time ∇_{x_t} log p_φ(y | x_t) is added to the score of any diffusion/flow model
(Dhariwal & Nichol 2021; see genlab.samplers.guidance.classifier_guided). The network is the U-Net's
encoder (recipe `model.kind: unet`; its `num_classes` is the number of outputs) with a pooled linear head.

`classifier` is the plain supervised classifier p_φ(y | x) on clean images, loss = cross-entropy(f_φ(x), y)
(optionally label-smoothed); its network is a ViT (`model.kind: vit`, genlab.models.vit) or the same U-Net
encoder (`model.kind: unet`, called at t = 0). `genlab eval RUN` reports its test accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.constraints import PositiveFloat, Probability
from genlab.errors import GenlabError
from genlab.methods.base import Method
from genlab.models import data_shape
from genlab.models.layers import ConditionEmbedding
from genlab.models.unet import Block, UNetConfig
from genlab.models.vit import ViT
from genlab.paths import TimeSampling, bcast, get_path, sample_time
from genlab.settings import Samples


@dataclass
class NoisyClassifierConfig:
    kind: str = "noisy_classifier"
    path: Literal["rectified", "vp_cosine", "vp_ddpm", "ve"] = "rectified"  # must match the runs it guides
    time: TimeSampling = field(default_factory=TimeSampling)
    sigma_data: PositiveFloat = 0.5


class EncoderClassifier(nn.Module):
    """The U-Net encoder (stem, Blocks and stride-2 downsampling per level) → SiLU → spatial mean → linear.

    Time enters through the same embedding and modulated residual blocks as the U-Net; there is no
    class input (the classes are the output)."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        if cfg.kind != "unet":
            raise GenlabError(f"noisy_classifier uses the U-Net encoder: set model.kind: unet, got {cfg.kind!r}")
        if not cfg.num_classes:
            raise GenlabError("noisy_classifier needs labelled data (model.num_classes > 0): use a labelled dataset")
        widths = [cfg.channels * m for m in cfg.channel_mults]
        sizes = [cfg.image_size // 2**i for i in range(len(widths))]
        emb_dim = 4 * cfg.channels
        self.embed = ConditionEmbedding(cfg.channels, emb_dim, 0)
        self.stem = nn.Conv2d(cfg.in_channels, widths[0], 3, padding=1)
        ins = [widths[0], *widths[:-1]]
        self.levels = nn.ModuleList(
            nn.ModuleList(Block(c if j == 0 else w, w, emb_dim, size=s, cfg=cfg) for j in range(cfg.num_res_blocks))
            for c, w, s in zip(ins, widths, sizes)
        )
        self.downsample = nn.ModuleList(nn.Conv2d(w, w, 3, stride=2, padding=1) for w in widths[:-1])
        self.head = nn.Linear(widths[-1], cfg.num_classes)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        emb = F.silu(self.embed(t))  # (B, E)
        h = self.stem(x)  # (B, C0, S, S)
        for i, level in enumerate(self.levels):
            if i > 0:
                h = self.downsample[i - 1](h)  # (B, C_{i-1}, S_i, S_i)
            for block in level:
                h = block(h, emb)  # (B, C_i, S_i, S_i)
        return self.head(F.silu(h).mean(dim=(2, 3)))  # (B, num_classes); no norm before the pool: it would
        # remove each group's spatial mean, which is what the pool keeps


class NoisyClassifier(Method):
    generates = False  # an auxiliary network: the trainer writes no sample grid for it

    def __init__(self, cfg: NoisyClassifierConfig, model_cfg):
        super().__init__()
        self.cfg = cfg
        self.path = get_path(cfg.path)
        self.model = EncoderClassifier(model_cfg)
        self.shape = data_shape(model_cfg)
        self.num_classes = model_cfg.num_classes

    @torch.no_grad()
    def heldout_metrics(self, data, *, seed: int = 0, n: int | None = None, settings=None) -> dict[str, float]:
        """Held-out accuracy of the labels from x_t at t = 0, 0.2, ..., 1 (one seeded noise draw per t)."""
        if data.labels is None:
            raise GenlabError("the held-out data has no labels: a noisy classifier is measured on labelled data")
        gen = torch.Generator().manual_seed(seed)
        x, y = data.x[: n or 2000].to(self.device), data.labels[: n or 2000].to(self.device)
        out: dict[str, float] = {"n": len(x)}
        for t_value in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
            t = torch.full((len(x),), t_value, device=x.device)
            eps = torch.randn(x.shape, generator=gen).to(x.device)
            x_t = bcast(self.path.a(t), x) * x + bcast(self.path.b(t), x) * eps
            out[f"accuracy_t{t_value:g}"] = float((self.logits(x_t, t).argmax(1) == y).float().mean())
        return out

    def logits(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Unnormalised log p(y | x_t) (B, num_classes) at path time t (B,)."""
        a, b = self.path.a(t), self.path.b(t)
        c_in = torch.rsqrt(a**2 * self.cfg.sigma_data**2 + b**2)
        return self.model(x_t * bcast(c_in, x_t).to(x_t.dtype), t)

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        x, label = batch["x"], batch.get("label")
        if label is None:
            raise GenlabError("noisy_classifier needs labelled data: the batches carry no 'label'")
        t = sample_time(self.cfg.time, x.shape[0], device=x.device).to(x.dtype)
        x_t = bcast(self.path.a(t), x) * x + bcast(self.path.b(t), x) * torch.randn_like(x)
        logits = self.logits(x_t, t)
        loss = F.cross_entropy(logits, label)
        accuracy = (logits.argmax(1) == label).float().mean()
        return loss, {"loss": loss.detach(), "accuracy": accuracy.detach()}

    def sample(self, n: int, **_) -> Samples:
        raise GenlabError(
            "a noisy_classifier run makes no samples: pass it to 'genlab sample RUN --classifier "
            "THIS_RUN' to guide a diffusion/flow run"
        )


@dataclass
class ClassifierConfig:
    kind: str = "classifier"
    label_smoothing: Probability = 0.0


class Classifier(Method):
    """A supervised image classifier on clean images: a ViT or the U-Net encoder (at t = 0) with a linear head."""

    generates = False  # makes no data: the trainer writes no sample grid

    def __init__(self, cfg: ClassifierConfig, model_cfg):
        super().__init__()
        if model_cfg.kind not in ("vit", "unet"):
            raise GenlabError(f"method.kind=classifier needs model.kind vit or unet, got {model_cfg.kind!r}")
        if not model_cfg.num_classes:
            raise GenlabError("method.kind=classifier needs labelled data (digits, or shapes with data.labels: true)")
        self.cfg = cfg
        self.model = ViT(model_cfg) if model_cfg.kind == "vit" else EncoderClassifier(model_cfg)
        self.num_classes = model_cfg.num_classes

    def logits(self, x: Tensor) -> Tensor:
        """Unnormalised log p(y | x) (B, num_classes) of images x (B, C, H, W) in [-1, 1]."""
        if isinstance(self.model, EncoderClassifier):
            return self.model(x, torch.zeros(len(x), device=x.device, dtype=x.dtype))
        return self.model(x)

    @torch.no_grad()
    def predict(self, x: Tensor, *, batch_size: int = 512) -> Tensor:
        """Class probabilities (N, num_classes) of images x (N, C, H, W), computed in chunks on the method's device."""
        out = [self.logits(c.to(self.device)).float().softmax(-1).cpu() for c in x.split(batch_size)]
        return torch.cat(out) if out else torch.zeros(0, self.num_classes)

    @torch.no_grad()
    def heldout_metrics(self, data, *, seed: int = 0, n: int | None = None, settings=None) -> dict[str, float]:
        """Top-1 accuracy and mean negative log-likelihood of the labels on (the first n of) the test split."""
        if data.labels is None:
            raise GenlabError("the held-out data has no labels: a classifier is measured on labelled data")
        x, y = data.x[: n or len(data)], data.labels[: n or len(data)]
        p = self.predict(x)
        nll = -p.gather(1, y[:, None]).clamp_min(1e-12).log().mean()
        return {"accuracy": float((p.argmax(1) == y).float().mean()), "nll": float(nll), "n": len(x)}

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        x, label = batch["x"], batch.get("label")
        if label is None:
            raise GenlabError("method.kind=classifier needs labelled data: the batches carry no 'label'")
        logits = self.logits(x)
        loss = F.cross_entropy(logits, label, label_smoothing=self.cfg.label_smoothing)
        accuracy = (logits.argmax(1) == label).float().mean()
        return loss, {"loss": loss.detach(), "accuracy": accuracy.detach()}

    def sample(self, n: int, **_) -> Samples:
        raise GenlabError("a classifier run makes no samples: 'genlab eval RUN' reports its test accuracy")
