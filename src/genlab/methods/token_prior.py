"""Autoregressive prior over the tokens of a frozen VQ-VAE: p(t | y) = Π_i p(t_i | y, t_{<i}), t = raster codes.

Training: t = tokenizer.encode_tokens(x), loss = −(1/L) Σ_i log p(t_i | y, t_{<i}) in nats per token,
with y replaced by the null class with probability `label_dropout`. Sampling draws tokens one at a
time through the transformer's KV cache (temperature, top-k, top-p) and decodes them to images.
log p(t) is not a likelihood of x (the decoder is deterministic), so `likelihood` stays None.
The tokenizer (a `vqvae` run) is copied into this method as a frozen submodule: its recipe goes into
method.tokenizer_recipe and its weights into this run's checkpoint, so the run folder is self-contained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.errors import GenlabError
from genlab.methods.base import Method, drop_labels
from genlab.models.transformer import Transformer, sample_logits


@dataclass
class TokenPriorConfig:
    kind: str = "token_prior"
    tokenizer: str = ""  # a vqvae run folder (read once; its weights are then stored with this run)
    tokenizer_recipe: Any = None  # filled from the tokenizer run when training starts
    label_dropout: float = 0.1
    temperature: float = 1.0  # sampling defaults
    top_k: int = 0
    top_p: float = 1.0


def load_tokenizer(cfg: TokenPriorConfig) -> Method:
    """The frozen tokenizer: from method.tokenizer_recipe (weights follow from this run's checkpoint) or
    from the run folder method.tokenizer, whose recipe is then recorded in cfg.tokenizer_recipe."""
    from genlab.checkpoint import find_checkpoint, load_method, read_checkpoint_config
    from genlab.config import recipe_from_dict, recipe_to_dict
    from genlab.methods import build_method

    if cfg.tokenizer_recipe is not None:
        recipe = recipe_from_dict(cfg.tokenizer_recipe, "method.tokenizer_recipe")
    else:
        if not cfg.tokenizer:
            raise GenlabError("method.tokenizer is empty: set it to a vqvae run folder (e.g. runs/digits-vqvae)")
        try:
            recipe = read_checkpoint_config(find_checkpoint(cfg.tokenizer))[0]
        except GenlabError as e:
            raise GenlabError(f"method.tokenizer={cfg.tokenizer}: {e}") from None
    if recipe.method.kind != "vqvae":
        raise GenlabError(f"method.tokenizer={cfg.tokenizer}: is a {recipe.method.kind!r} run, not a vqvae run; "
                          "train recipes/digits-vqvae.yaml first")
    with torch.random.fork_rng(devices=[]):  # the prior's initialisation does not depend on how this is built
        if cfg.tokenizer_recipe is not None:
            tokenizer = build_method(recipe)  # weights follow from this run's checkpoint
        else:
            tokenizer = load_method(cfg.tokenizer)[1]
            cfg.tokenizer_recipe = recipe_to_dict(recipe)
    return tokenizer.requires_grad_(False).eval()


class TokenPriorMethod(Method):
    def __init__(self, cfg: TokenPriorConfig, model_cfg):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = load_tokenizer(cfg)
        tok = self.tokenizer.model.cfg
        if (tok.in_channels, tok.image_size) != (model_cfg.in_channels, model_cfg.image_size):
            raise GenlabError(f"the tokenizer encodes {tok.in_channels}x{tok.image_size}x{tok.image_size} images but "
                              f"the data is {model_cfg.in_channels}x{model_cfg.image_size}x{model_cfg.image_size}: "
                              "use the tokenizer's data section")
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
    def sample_tokens(self, n: int, *, label: Tensor | None = None, generator: torch.Generator | None = None,
                      temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> Tensor:
        """(n, h, w) codes drawn one position at a time with the KV cache."""
        device = next(self.model.parameters()).device
        label = None if label is None else label.to(device)
        cache = self.model.new_cache()
        tokens = torch.zeros(n, 0, dtype=torch.long, device=device)
        step = tokens
        for _ in range(self.grid[0] * self.grid[1]):
            logits = self.model(step, label, cache=cache)[:, -1]
            draw = sample_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
            step = draw[:, None]
            tokens = torch.cat([tokens, step], 1)
        return tokens.view(n, *self.grid)

    @torch.no_grad()
    def sample(self, n: int, *, label: Tensor | None = None, generator: torch.Generator | None = None,
               temperature: float | None = None, top_k: int | None = None, top_p: float | None = None,
               stats: dict | None = None, **_) -> Tensor:
        """n images: tokens from the prior, decoded by the tokenizer (other families' options are ignored)."""
        opts = dict(temperature=self.cfg.temperature if temperature is None else temperature,
                    top_k=self.cfg.top_k if top_k is None else top_k, top_p=self.cfg.top_p if top_p is None else top_p)
        tokens = self.sample_tokens(n, label=label, generator=generator, **opts)
        if stats is not None:
            stats.update(nfe=tokens[0].numel(), sampler="ancestral (one token per pass, KV cache)", **opts)
        return self.tokenizer.decode_tokens(tokens)
