"""Autoregressive prior over the tokens of a frozen VQ-VAE: p(t | y) = Π_i p(t_i | y, t_{<i}), t = raster codes.

Training: t = tokenizer.encode_tokens(x), loss = −(1/L) Σ_i log p(t_i | y, t_{<i}) in nats per token,
with y replaced by the null class with probability `label_dropout`. Sampling draws tokens one at a
time through the transformer's KV cache (temperature, top-k, top-p) and decodes them to images.
log p(t) is not a likelihood of x (the decoder is deterministic), so `likelihood` stays None.
The tokenizer (a `vqvae` run) is a frozen part: the run layer loads it when this run is created, its recipe goes
into method.frozen and its weights into this run's checkpoint, so the run folder is self-contained.
`text_token_prior` is the same prior conditioned on a caption c instead of y (Parti, small): cross-attention to
MiniLM tokens, c dropped to "" with probability `text_dropout`, classifier-free guidance on the logits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.constraints import Count, OneOf, PositiveFloat, Probability, TopP
from genlab.errors import GenlabError
from genlab.methods import latent
from genlab.methods.base import AR_SETTINGS, Method, drop_labels
from genlab.models.transformer import KVCache, TextTransformer, Transformer, sample_logits
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
        self.model = self.build_model(model_cfg)
        self.num_classes = self.model.num_classes

    def build_model(self, model_cfg) -> Transformer:
        return Transformer(model_cfg)

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
        label = None if label is None else label.to(self.device)
        step_logits = lambda step, cache: self.model(step, label, cache=cache)[:, -1]  # noqa: E731
        opts = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
        return self.draw_tokens(n, step_logits, generator=generator, callback=callback, **opts)

    def draw_tokens(
        self,
        n: int,
        step_logits: Callable[[Tensor, KVCache], Tensor],
        *,
        generator: torch.Generator | None,
        temperature: float,
        top_k: int,
        top_p: float,
        callback: Callback | None,
    ) -> Tensor:
        """(n, h, w) codes: step_logits(new tokens (n, t), cache) -> next-token logits (n, V), one draw per pass."""
        cache = self.model.new_cache()
        tokens = torch.zeros(n, 0, dtype=torch.long, device=self.device)
        step = tokens
        total = self.grid[0] * self.grid[1]
        for i in range(total):
            logits = step_logits(step, cache)
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


@dataclass
class TextTokenPriorConfig:
    kind: str = "text_token_prior"
    tokenizer: str = ""  # a vqvae run folder (read once; its weights are then stored with this run)
    frozen: dict = field(default_factory=dict)  # the tokenizer's recipe, recorded when the run is created
    text_encoder: Annotated[str, OneOf(("minilm",))] = "minilm"  # packaged, named (not copied into the run)
    text_dropout: Probability = 0.1  # probability a caption becomes the null text "" (CFG training)
    temperature: PositiveFloat = 1.0  # sampling defaults
    top_k: Count = 0  # 0: all codes
    top_p: TopP = 1.0


class TextTokenPriorMethod(TokenPriorMethod):
    """Parti-style text-to-image (Yu et al. 2022, small): p(t | c) = Π_i p(t_i | c, t_{<i}) over the frozen
    tokenizer's codes, the caption c read by cross-attention to its MiniLM tokens (TextTransformer).

    Cross-attention rather than a prefix of projected text tokens: the image positions keep fixed indices whatever
    the caption's length, padding is one key mask, and the text's keys and values are computed once per sample.
    Training replaces a caption by "" with probability `text_dropout`; sampling guides the logits,
    l = l(neg) + s·(l(c) − l(neg)) with neg = "" (or a negative prompt), both halves in one batched pass
    through one KV cache, then temperature, top-k and top-p act on l.
    """

    sample_settings = AR_SETTINGS | {"guidance_scale"}
    sampled_by = "ancestral sampling with guided logits (one token per pass, KV cache)"
    takes_prompts = True

    def __init__(self, cfg: TextTokenPriorConfig, model_cfg, parts: dict):
        object.__setattr__(self, "text_encoder", latent.text_encoder(cfg.text_encoder))  # outside the module tree
        super().__init__(cfg, model_cfg, parts)

    def build_model(self, model_cfg) -> TextTransformer:
        return TextTransformer(model_cfg, self.text_encoder.dim)

    @property
    def image_shape(self) -> tuple[int, ...]:
        tok = self.tokenizer.model.cfg
        return (tok.in_channels, tok.image_size, tok.image_size)

    def encode_text(self, texts: list[str]) -> latent.Text:
        emb = self.text_encoder.encode(list(texts))
        return latent.Text(emb.tokens.to(self.device), emb.mask.to(self.device), emb.pooled.to(self.device))

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        if "text" not in batch:
            raise GenlabError("method.kind=text_token_prior needs captioned data (e.g. data.kind=shapes)")
        tokens = self.tokenizer.encode_tokens(batch["x"]).flatten(1)  # (B, L)
        drop = (torch.rand(len(batch["text"])) < self.cfg.text_dropout).tolist()  # global RNG, on the CPU
        text = self.encode_text(["" if d else c for d, c in zip(drop, batch["text"])])
        logits = self.model(tokens[:, :-1], text)  # (B, L, V)
        nll = F.cross_entropy(logits.flatten(0, 1).float(), tokens.flatten())
        return nll, {"loss": nll.detach(), "bits_per_token": nll.detach() / math.log(2)}

    def guided_logits(self, text: latent.Text, scale: float) -> Callable[[Tensor, KVCache], Tensor]:
        """step_logits for `draw_tokens`: text rows 0..n-1 are the prompts, rows n..2n-1 what they are guided
        against (read only when scale != 1); one pass of the model serves both halves."""
        n = text.tokens.shape[0] // 2
        if scale == 1.0:
            half = text.take(torch.arange(n, device=self.device))
            return lambda step, cache: self.model(step, half, cache=cache)[:, -1]

        def step_logits(step: Tensor, cache: KVCache) -> Tensor:
            cond, uncond = self.model(step.repeat(2, 1), text, cache=cache)[:, -1].float().chunk(2)  # (n, V) each
            return uncond + scale * (cond - uncond)

        return step_logits

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        cond: list[str] | latent.Prompts | None = None,
        settings: SampleSettings = DEFAULT_SETTINGS,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
    ) -> Samples:
        """n images for n prompts (None: DEFAULT_PROMPTS in blocks; `Prompts`: guided against the negatives)."""
        positive, negative = (cond.positive, list(cond.negative)) if isinstance(cond, latent.Prompts) else (cond, None)
        if positive is None:
            positive = [latent.DEFAULT_PROMPTS[i * len(latent.DEFAULT_PROMPTS) // n] for i in range(n)]
        negative = [""] * n if negative is None else negative
        for name, texts in (("prompt", positive), ("negative prompt", negative)):
            if isinstance(texts, Tensor) or len(texts) != n or not all(isinstance(p, str) for p in texts):
                raise GenlabError(f"a text_token_prior run takes one {name} (a string) per image, not labels")
        opts = {k: getattr(self.cfg, k) if v is None else v for k, v in settings.as_dict(AR_SETTINGS).items()}
        step_logits = self.guided_logits(self.encode_text([*positive, *negative]), settings.guidance_scale)
        tokens = self.draw_tokens(n, step_logits, generator=generator, callback=callback, **opts)
        return Samples(self.tokenizer.decode_tokens(tokens), tokens[0].numel(), self.sampled_by)
