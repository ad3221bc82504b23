"""Autoregressive prior over the tokens of a frozen VQ-VAE: p(t | y) = Π_i p(t_i | y, t_{<i}), t = raster codes.

Training: t = tokenizer.encode_tokens(x), loss = −(1/L) Σ_i log p(t_i | y, t_{<i}) in nats per token,
with y replaced by the null class with probability `label_dropout`. Sampling draws tokens one at a
time through the transformer's KV cache (temperature, top-k, top-p) and decodes them to images.
log p(t) is not a likelihood of x (the decoder is deterministic), so `likelihood` stays None.
The tokenizer (a `vqvae` run) is a frozen part: the run layer loads it when this run is created, its recipe goes
into method.frozen and its weights into this run's checkpoint, so the run folder is self-contained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.constraints import Count, PositiveFloat, Probability, TopP
from genlab.errors import GenlabError
from genlab.methods.base import AR_SETTINGS, Method, drop_labels
from genlab.models.transformer import Transformer, sample_logits
from genlab.settings import DEFAULT_SETTINGS, Callback, Samples, SampleSettings, StepInfo


@dataclass
class TokenPriorConfig:
    kind: str = "token_prior"
    tokenizer: str = ""  # a vqvae run folder (read once; its weights are then stored with this run)
    frozen: dict = field(default_factory=dict)  # the tokenizer's recipe, recorded when the run is created
    label_dropout: Probability = 0.1
    temperature: PositiveFloat = 1.0  # sampling defaults
    top_k: Count = 0  # 0: all codes
    top_p: TopP = 1.0


class TokenPriorMethod(Method):
    sample_settings = AR_SETTINGS
    sampled_by = "ancestral sampling (one token per pass, KV cache)"

    @classmethod
    def frozen_parts(cls, cfg: TokenPriorConfig) -> dict[str, tuple[str, str]]:
        if not cfg.tokenizer and "tokenizer" not in cfg.frozen:
            raise GenlabError("method.tokenizer is empty: set it to a vqvae run folder (e.g. runs/digits-vqvae)")
        return {"tokenizer": (cfg.tokenizer, "vqvae")}

    def __init__(self, cfg: TokenPriorConfig, model_cfg, parts: dict):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = parts["tokenizer"].requires_grad_(False).eval()
        tok = self.tokenizer.model.cfg
        if (tok.in_channels, tok.image_size) != (model_cfg.in_channels, model_cfg.image_size):
            raise GenlabError(
                f"the tokenizer encodes {tok.in_channels}x{tok.image_size}x{tok.image_size} images but "
                f"the data is {model_cfg.in_channels}x{model_cfg.image_size}x{model_cfg.image_size}: "
                "use the tokenizer's data section"
            )
        side = tok.image_size // 2**tok.downsample
        self.grid = (side, side)
        model_cfg.vocab_size, model_cfg.seq_len = tok.codebook_size, side * side
        self.model = Transformer(model_cfg)
        self.num_classes = model_cfg.num_classes or 0

    def train(self, mode: bool = True):
        super().train(mode)
        self.tokenizer.eval()  # frozen: never updates its codebook statistics
        return self

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        tokens = self.tokenizer.encode_tokens(batch["x"]).flatten(1)  # (B, L)
        label = drop_labels(batch.get("label"), self.num_classes, self.cfg.label_dropout)
        logits = self.model(tokens[:, :-1], label)  # (B, L, V)
        nll = F.cross_entropy(logits.flatten(0, 1).float(), tokens.flatten())
        return nll, {"loss": nll.detach(), "bits_per_token": nll.detach() / math.log(2)}

    @torch.no_grad()
    def sample_tokens(
        self,
        n: int,
        *,
        label: Tensor | None = None,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        callback: Callback | None = None,
    ) -> Tensor:
        """(n, h, w) codes drawn one position at a time with the KV cache."""
        device = next(self.model.parameters()).device
        label = None if label is None else label.to(device)
        cache = self.model.new_cache()
        tokens = torch.zeros(n, 0, dtype=torch.long, device=device)
        step = tokens
        total = self.grid[0] * self.grid[1]
        for i in range(total):
            logits = self.model(step, label, cache=cache)[:, -1]
            draw = sample_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
            step = draw[:, None]
            tokens = torch.cat([tokens, step], 1)
            if callback is not None:
                callback(StepInfo(step=i, total=total, t=None, x_t=None, x_hat=None))
        return tokens.view(n, *self.grid)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        cond: Tensor | None = None,
        settings: SampleSettings = DEFAULT_SETTINGS,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
    ) -> Samples:
        """n images: tokens from the prior, decoded by the tokenizer (None settings: the recipe's defaults)."""
        opts = {k: getattr(self.cfg, k) if v is None else v for k, v in settings.as_dict(AR_SETTINGS).items()}
        tokens = self.sample_tokens(n, label=cond, generator=generator, callback=callback, **opts)
        return Samples(self.tokenizer.decode_tokens(tokens), tokens[0].numel(), self.sampled_by)
