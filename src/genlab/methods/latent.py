"""Latent rectified flow conditioned on text, with classifier-free guidance (the SD3 recipe, small).

z = scale_factor·μ(x) from a frozen KL autoencoder; the flow method's loss on z (x_t = (1−t)·z + t·eps,
target eps − z, logit-normal t with shift) with a DiT reading text tokens (cross-attention or MM-DiT)
and the pooled text; captions are replaced by the null text encode([""]) with probability `text_dropout`.
Sampling integrates from noise with guidance uncond + s·(cond − uncond) (one batched call) and decodes
D(z / scale_factor). The autoencoder's weights are copied into this method (the run folder is
self-contained); the text encoder is frozen, rebuilt by name and never saved.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from genlab.errors import GenlabError
from genlab.methods.flow import FlowMethod
from genlab.models.autoencoder import Autoencoder, AutoencoderConfig
from genlab.paths import TimeSampling
from genlab.samplers import guided, sample

DEFAULT_PROMPTS = (
    "a red circle", "a blue square", "a yellow triangle", "a large white circle",
    "a red circle above a blue square", "a green square to the left of an orange circle",
    "a small cyan circle", "a magenta triangle below a white square",
)


@dataclass
class LatentFlowConfig:
    kind: str = "latent_flow"
    autoencoder: str = "runs/shapes-autoencoder"  # run folder of a trained `autoencoder` method
    autoencoder_model: dict | None = None  # its model section; copied from the run when this run is created
    text_encoder: str = "minilm"  # a genlab.text encoder name: minilm | clip:RUN
    text_dropout: float = 0.1  # probability a caption becomes the null text "" (CFG training)
    path: str = "rectified"
    target: str = "flow"
    time: TimeSampling = field(default_factory=lambda: TimeSampling(kind="logit_normal"))
    loss_weight: str = "uniform"
    sigma_data: float = 1.0  # latents are scaled to unit std


class Text(NamedTuple):
    """Encoded captions as the DiT reads them: tokens (B, L, D), mask (B, L) bool, pooled (B, D)."""

    tokens: Tensor
    mask: Tensor
    pooled: Tensor

    def pad_to(self, length: int) -> Text:
        extra = length - self.tokens.shape[1]
        if extra <= 0:
            return self
        tokens = torch.nn.functional.pad(self.tokens, (0, 0, 0, extra))
        return Text(tokens, torch.nn.functional.pad(self.mask, (0, extra), value=False), self.pooled)

    def take(self, idx: Tensor) -> Text:
        return Text(self.tokens[idx], self.mask[idx], self.pooled[idx])


def stack_text(parts: list[Text]) -> Text:
    length = max(p.tokens.shape[1] for p in parts)
    parts = [p.pad_to(length) for p in parts]
    return Text(*(torch.cat(fields) for fields in zip(*parts)))


@functools.lru_cache(maxsize=4)
def text_encoder(name: str):
    """The frozen encoder `name`, built once per process (its weights are never part of a checkpoint)."""
    from genlab.text import build_text_encoder

    return build_text_encoder(name).eval().requires_grad_(False)


def _autoencoder_from_run(run: str) -> tuple[dict, dict]:
    """(model section, autoencoder weights) of a trained `autoencoder` run folder."""
    from safetensors.torch import load_file

    from genlab.checkpoint import find_checkpoint, read_checkpoint_config
    from genlab.config import recipe_to_dict

    if not Path(run).exists():
        raise GenlabError(f"method.autoencoder={run} does not exist: train it first "
                          "(genlab train recipes/shapes-autoencoder.yaml)")
    ckpt = find_checkpoint(run)
    recipe, _ = read_checkpoint_config(ckpt)
    if recipe.method.kind != "autoencoder":
        raise GenlabError(f"method.autoencoder={run} is a {recipe.method.kind!r} run: name an autoencoder run")
    weights = load_file(str(ckpt / "ema.safetensors"))
    return recipe_to_dict(recipe)["model"], {k[3:]: v for k, v in weights.items() if k.startswith("ae.")}


def _autoencoder_config(tree: dict) -> AutoencoderConfig:
    from genlab.config import parse_dataclass

    return parse_dataclass(AutoencoderConfig, tree, "method.autoencoder_model")


class LatentFlowMethod(FlowMethod):
    def __init__(self, cfg: LatentFlowConfig, model_cfg):
        if model_cfg.kind != "dit":
            raise GenlabError(f"method.kind=latent_flow needs model.kind=dit, got {model_cfg.kind!r}")
        weights = None
        if cfg.autoencoder_model is None:  # a new run: copy the autoencoder in (the recipe records its model)
            cfg.autoencoder_model, weights = _autoencoder_from_run(cfg.autoencoder)
        ae_cfg = _autoencoder_config(cfg.autoencoder_model)
        c, h, _ = ae_cfg.latent_shape()
        dim = self.encoder_for(cfg).dim
        super().__init__(cfg, dataclasses.replace(model_cfg, in_channels=c, image_size=h, num_classes=0, text_dim=dim))
        self.autoencoder = Autoencoder(ae_cfg).requires_grad_(False).eval()
        if weights is not None:
            self.autoencoder.load_state_dict(weights)

    @staticmethod
    def encoder_for(cfg: LatentFlowConfig):
        return text_encoder(cfg.text_encoder)

    # -- text

    def encode_text(self, texts: list[str], device) -> Text:
        emb = self.encoder_for(self.cfg).encode(list(texts))
        return Text(emb.tokens.to(device), emb.mask.to(device), emb.pooled.to(device))

    def null_text(self, n: int, device) -> Text:
        """encode([""]) repeated n times: the unconditional input of classifier-free guidance."""
        return self.encode_text([""], device).take(torch.zeros(n, dtype=torch.long, device=device))

    def _drop_labels(self, text: Text) -> Text:
        """Each caption becomes the null text with probability `text_dropout`."""
        n = text.tokens.shape[0]
        drop = torch.rand(n, device=text.tokens.device) < self.cfg.text_dropout  # (B,)
        both = stack_text([text, self.null_text(1, text.tokens.device)])  # rows 0..n-1 captions, row n null
        return both.take(torch.where(drop, n, torch.arange(n, device=drop.device)))

    # -- latents

    @torch.no_grad()
    def to_latent(self, x: Tensor) -> Tensor:
        return self.autoencoder.encode(x)[0] * self.autoencoder.scale_factor  # (B, c, h, w), unit scale

    @torch.no_grad()
    def from_latent(self, z: Tensor) -> Tensor:
        return self.autoencoder.decode(z / self.autoencoder.scale_factor).clamp(-1, 1)  # (B, C, S, S)

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        if "text" not in batch:
            raise GenlabError("method.kind=latent_flow needs captioned data (e.g. data.kind=shapes)")
        x = batch["x"]
        return super().loss({"x": self.to_latent(x), "label": self.encode_text(batch["text"], x.device)}, group)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        label: Tensor | None = None,
        prompts: list[str] | None = None,
        sampler: str = "heun",
        steps: int = 16,
        grid: str = "uniform",
        guidance_scale: float = 4.0,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        stats: dict | None = None,
    ) -> Tensor:
        """n images for `prompts` (n of them; default: a fixed set, one per block of rows); `label` is ignored."""
        device = next(self.parameters()).device
        if prompts is None:
            prompts = [DEFAULT_PROMPTS[i * len(DEFAULT_PROMPTS) // n] for i in range(n)]
        if len(prompts) != n:
            raise GenlabError(f"give one prompt per image: {len(prompts)} prompts for n={n}")
        table = stack_text([self.encode_text(prompts, device), self.null_text(1, device)])  # rows: prompts, null
        noise = torch.randn((n, *self.shape), generator=generator, device=device)
        idx = torch.arange(n, device=device)
        fn = guided(lambda x_t, t, i: self.net(x_t, t, table.take(i)), idx, scale=guidance_scale,
                    null_cond=torch.full_like(idx, n))
        z = sample(fn, noise, sampler=sampler, steps=steps, path=self.path, target=self.cfg.target,
                   grid=grid, stats=stats, eta=eta, generator=generator)
        return self.from_latent(z)
