"""The text backbone shared by the autoregressive and the masked-diffusion language models (model kind `lm`).

h_0 = E[tokens] (+ P[positions] with `position: learned`; no class token), then `depth` pre-LN blocks of
genlab.models.transformer (h += Attn(LN(h)), h += MLP(LN(h))), then logits = W·LN(h) + b, (B, T, V). Positions:
`rope` (the default) rotates every block's queries and keys by their positions (genlab.models.transformer.rotate),
so attention scores depend on the offset between two positions, which is what a masked position needs to find
its neighbours; `learned` adds a learned embedding per position instead. A causal model also reads position from
its mask, a bidirectional one (the masked diffusion LM) only from these.
Whether attention is causal is the method's choice, not the recipe's: `ar_lm` builds it causal (position i sees
positions <= i; a KV cache makes sampling cost one position per call), `mdlm` bidirectional (every position sees
every other; no cache). Both read the same `LMConfig`, so one recipe's model section serves both methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from genlab.constraints import Fraction, OptPositiveInt, PositiveInt, require
from genlab.errors import GenlabError
from genlab.models.transformer import Block, KVCache


@dataclass
class LMConfig:
    kind: str = "lm"
    vocab_size: OptPositiveInt = None  # filled from the data's tokenizer (bytes + merges + <eos>, <mask>)
    seq_len: OptPositiveInt = None  # filled from the data's windows
    dim: PositiveInt = 128
    depth: PositiveInt = 4
    heads: PositiveInt = 4
    mlp_ratio: PositiveInt = 4
    dropout: Fraction = 0.0
    position: Literal["rope", "learned"] = "rope"

    def __post_init__(self) -> None:
        if self.dim >= 1 and self.heads >= 1:
            require(self.dim % self.heads == 0, "dim", f"must be divisible by heads={self.heads}, got {self.dim}")


class TextTransformer(nn.Module):
    """forward(tokens (B, T) int64, cache=None) -> logits (B, T, vocab_size) of the new positions.

    Causal with a cache: the T new tokens sit at positions past..past+T-1 after the cached ones. Positions never
    exceed seq_len."""

    def __init__(self, cfg: LMConfig, *, causal: bool):
        super().__init__()
        if not cfg.vocab_size or not cfg.seq_len:
            raise GenlabError("model: lm needs vocab_size and seq_len (filled from text data: set data.kind: text)")
        self.cfg, self.causal = cfg, causal
        # token and position embeddings on one scale (std 0.02 both, as GPT-2): under nn.Embedding's default N(0, 1)
        # a learned position is 1/50 of the input and a bidirectional model learns where a <mask> sits slowly
        self.tok = nn.Embedding(cfg.vocab_size, cfg.dim)
        nn.init.normal_(self.tok.weight, std=0.02)
        rope = cfg.position == "rope"
        self.pos = None if rope else nn.Parameter(torch.randn(cfg.seq_len, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg, i, causal=causal, rope=rope) for i in range(cfg.depth))
        self.ln = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size)

    def new_cache(self) -> KVCache:
        if not self.causal:
            raise GenlabError("a bidirectional lm keeps no KV cache")
        return KVCache(self.cfg.depth)

    def forward(self, tokens: Tensor, *, cache: KVCache | None = None) -> Tensor:
        past = 0 if cache is None else cache.length()
        if past + tokens.shape[1] > self.cfg.seq_len:
            raise GenlabError(f"sequence of {past + tokens.shape[1]} positions exceeds seq_len={self.cfg.seq_len}")
        h = self.tok(tokens)  # (B, T, dim)
        if self.pos is not None:
            h = h + self.pos[past : past + tokens.shape[1]]
        for block in self.blocks:
            h = block(h, cache)
        return self.head(self.ln(h))
