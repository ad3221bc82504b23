"""GPT-style decoder-only transformer over token sequences, conditioned by a class prefix token.

The input is s = [class(y), t_0, ..., t_{L-2}] + learned positions; pre-LN blocks
h += Attn(LN(h)) (causal), h += MLP(LN(h)); logits at position i give p(t_i | y, t_{<i}). The null class
(row num_classes) serves unconditional sampling. A KV cache stores each layer's keys and values so
sampling costs one position per step. Sampling filters: temperature, top-k, top-p (nucleus,
Holtzman et al. 2020, The Curious Case of Neural Text Degeneration). `TextTransformer` conditions on a text
instead of a class: a start token from the pooled text and masked cross-attention to its tokens in every block.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.constraints import Fraction, OptCount, OptPositiveInt, PositiveInt, require
from genlab.errors import GenlabError


@dataclass
class TransformerConfig:
    kind: str = "transformer"
    in_channels: OptPositiveInt = None  # of the images the tokens decode to (filled from the data)
    image_size: OptPositiveInt = None
    num_classes: OptCount = None
    vocab_size: OptPositiveInt = None  # filled from the tokenizer
    seq_len: OptPositiveInt = None  # filled from the tokenizer
    dim: PositiveInt = 128
    depth: PositiveInt = 4
    heads: PositiveInt = 4
    mlp_ratio: PositiveInt = 4
    dropout: Fraction = 0.0

    def __post_init__(self) -> None:
        if self.dim >= 1 and self.heads >= 1:
            require(self.dim % self.heads == 0, "dim", f"must be divisible by heads={self.heads}, got {self.dim}")


class KVCache:
    """Per-layer keys and values (B, heads, t, head_dim) of the positions seen so far."""

    def __init__(self, depth: int):
        self.k: list[Tensor | None] = [None] * depth
        self.v: list[Tensor | None] = [None] * depth

    def length(self, layer: int = 0) -> int:
        """Positions cached so far in `layer`."""
        return 0 if self.k[layer] is None else self.k[layer].shape[2]

    def append(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        if self.k[layer] is not None:
            k, v = torch.cat([self.k[layer], k], 2), torch.cat([self.v[layer], v], 2)
        self.k[layer], self.v[layer] = k, v
        return k, v


def rotate(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """Rotary position embedding (RoPE, Su et al. 2021) of x (B, heads, T, d) at `positions` (T,): each pair of
    channels (j, j + d/2) turned by the angle position · base^(−2j/d), so q·k depends on the offset of the two
    positions only. Angles in float32, the result in x's dtype."""
    half = x.shape[-1] // 2
    freq = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angle = positions.to(device=x.device, dtype=torch.float32)[:, None] * freq  # (T, d/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], -1)


class Block(nn.Module):
    """Pre-LN block over (B, T, dim); `causal`: position i attends to positions <= i (with a KV cache, the cached
    positions too), else every position attends to every other (bidirectional, no cache); `rope`: queries and keys
    rotated by their positions (`rotate`; the cache keeps rotated keys). `cfg` is any config with dim, heads,
    mlp_ratio and dropout (TransformerConfig, genlab.models.lm.LMConfig)."""

    def __init__(self, cfg: TransformerConfig, index: int, *, causal: bool = True, rope: bool = False):
        super().__init__()
        self.index, self.heads, self.dropout, self.causal, self.rope = index, cfg.heads, cfg.dropout, causal, rope
        self.ln1, self.ln2 = nn.LayerNorm(cfg.dim), nn.LayerNorm(cfg.dim)
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.proj = nn.Linear(cfg.dim, cfg.dim)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.dim, cfg.mlp_ratio * cfg.dim),
            nn.GELU(),
            nn.Linear(cfg.mlp_ratio * cfg.dim, cfg.dim),
            nn.Dropout(cfg.dropout),
        )

    def attention(self, x: Tensor, cache: KVCache | None) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if not self.causal and cache is not None:
            raise GenlabError("a bidirectional transformer keeps no KV cache: call it on the whole sequence")
        past = 0 if cache is None else cache.length(self.index)
        if self.rope:
            where = torch.arange(past, past + t, device=x.device)
            q, k = rotate(q, where), rotate(k, where)
        if cache is not None:
            k, v = cache.append(self.index, k, v)
        if not self.causal:
            mask, causal = None, False
        elif past == 0:
            mask, causal = None, True
        else:  # new query i sits at position past + i and sees keys 0..past + i
            mask = torch.arange(past + t, device=x.device)[None] <= (past + torch.arange(t, device=x.device))[:, None]
            causal = False
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, dropout_p=drop)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))

    def forward(self, x: Tensor, cache: KVCache | None) -> Tensor:
        x = x + self.attention(self.ln1(x), cache)
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    """forward(tokens, cond, cache) -> logits (B, T', vocab) for the new positions.

    Without a cache (or with an empty one) the new positions are [class, tokens...]; with a filled
    cache they are the tokens alone, appended after the cached positions.
    """

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        if not cfg.vocab_size or not cfg.seq_len or cfg.dim % cfg.heads:
            raise GenlabError("model: transformer needs vocab_size and seq_len (from a tokenizer) and dim % heads == 0")
        self.cfg = cfg
        self.num_classes = cfg.num_classes or 0
        self.tok = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.cls = nn.Embedding(self.num_classes + 1, cfg.dim)  # row num_classes = null class
        self.pos = nn.Parameter(torch.randn(cfg.seq_len, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.depth))
        self.ln = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size)

    def new_cache(self) -> KVCache:
        return KVCache(self.cfg.depth)

    def forward(self, tokens: Tensor, cond: Tensor | None = None, *, cache: KVCache | None = None) -> Tensor:
        b = tokens.shape[0]
        past = 0 if cache is None else cache.length()
        h = self.tok(tokens)  # (B, T, dim)
        if past == 0:
            if cond is None:
                cond = torch.full((b,), self.num_classes, device=tokens.device, dtype=torch.long)
            h = torch.cat([self.cls(cond)[:, None], h], 1)
        if past + h.shape[1] > self.cfg.seq_len:
            raise GenlabError(f"sequence of {past + h.shape[1]} positions exceeds seq_len={self.cfg.seq_len}")
        h = h + self.pos[past : past + h.shape[1]]
        for block in self.blocks:
            h = block(h, cache)
        return self.head(self.ln(h))


def filter_logits(logits: Tensor, *, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Logits (..., V) with all but the top-k, and outside the smallest set of probability >= top_p, at -inf."""
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        before = probs.cumsum(-1) - probs  # mass of the strictly more likely tokens
        drop_sorted = before >= top_p  # the most likely token is always kept
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_logits(
    logits: Tensor,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One draw per row of logits (..., V) -> (...,) int64 on logits' device; temperature 0 is argmax. The draw
    happens on the generator's device (a CPU generator gives the same tokens whether the model runs on a GPU)."""
    if temperature <= 0:
        return logits.argmax(-1)
    logits = filter_logits(logits.float() / temperature, top_k=top_k, top_p=top_p)
    probs = logits.softmax(-1).reshape(-1, logits.shape[-1])
    where = probs.device if generator is None else generator.device
    return torch.multinomial(probs.to(where), 1, generator=generator).to(logits.device).view(logits.shape[:-1])


class TextCache(KVCache):
    """A KVCache that also keeps each layer's cross-attention keys and values of the text (computed once)."""

    def __init__(self, depth: int):
        super().__init__(depth)
        self.text: list[tuple[Tensor, Tensor] | None] = [None] * depth
        self.mask: Tensor | None = None  # (B, 1, 1, S) bool, True = a real text token


class TextBlock(Block):
    """Block with cross-attention to text between self-attention and the MLP (the Transformer decoder of
    Vaswani et al. 2017, as in Parti): h += CrossAttn(LN(h), text), keys at padded text positions masked out."""

    def __init__(self, cfg: TransformerConfig, index: int):
        super().__init__(cfg, index)
        self.ln_text = nn.LayerNorm(cfg.dim)
        self.q_text, self.kv_text = nn.Linear(cfg.dim, cfg.dim), nn.Linear(cfg.dim, 2 * cfg.dim)
        self.proj_text = nn.Linear(cfg.dim, cfg.dim)

    def cross_attention(self, x: Tensor, memory: Tensor | None, mask: Tensor, cache: TextCache | None) -> Tensor:
        b, t, d = x.shape
        kv = None if cache is None else cache.text[self.index]
        if kv is None:  # memory (B, S, dim) -> keys and values (B, heads, S, head_dim) each
            kv = self.kv_text(memory).view(b, -1, 2, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
            if cache is not None:
                cache.text[self.index] = kv
        q = self.q_text(x).view(b, t, self.heads, d // self.heads).transpose(1, 2)  # (B, heads, T, head_dim)
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=mask, dropout_p=drop)
        return self.proj_text(y.transpose(1, 2).reshape(b, t, d))

    def forward(self, x: Tensor, cache: KVCache | None, memory: Tensor | None = None, mask: Tensor | None = None):
        x = x + self.attention(self.ln1(x), cache)
        x = x + self.cross_attention(self.ln_text(x), memory, mask, cache)
        return x + self.mlp(self.ln2(x))


class TextTransformer(Transformer):
    """forward(tokens, text, cache) -> logits (B, T', vocab): the Transformer with a text start token and
    cross-attention to the text in every block.

    The text is a genlab.methods.latent.Text: tokens (B, S, text_dim), mask (B, S), pooled (B, text_dim).
    Position 0 is the learned start token + W_p·pooled; every block reads W_m·tokens through cross-attention whose
    padded keys are masked, so padding the text changes nothing. With a filled cache the text is not read again.
    """

    def __init__(self, cfg: TransformerConfig, text_dim: int):
        super().__init__(dataclasses.replace(cfg, num_classes=0))
        self.blocks = nn.ModuleList(TextBlock(cfg, i) for i in range(cfg.depth))
        self.text_in = nn.Linear(text_dim, cfg.dim)  # text tokens -> the memory every block attends to
        self.pooled_in = nn.Linear(text_dim, cfg.dim)

    def new_cache(self) -> TextCache:
        return TextCache(self.cfg.depth)

    def forward(self, tokens: Tensor, text=None, *, cache: KVCache | None = None) -> Tensor:
        past = 0 if cache is None else cache.length()
        h = self.tok(tokens)  # (B, T, dim)
        memory = None
        mask = None if cache is None else cache.mask
        if past == 0:
            if text is None:
                raise GenlabError("the text transformer needs the text for the first positions")
            start = self.cls.weight[0] + self.pooled_in(text.pooled.to(h.dtype))  # (B, dim)
            h = torch.cat([start[:, None], h], 1)
            memory, mask = self.text_in(text.tokens.to(h.dtype)), text.mask[:, None, None, :]  # (B, S, dim), (B,1,1,S)
            if cache is not None:
                cache.mask = mask
        if past + h.shape[1] > self.cfg.seq_len:
            raise GenlabError(f"sequence of {past + h.shape[1]} positions exceeds seq_len={self.cfg.seq_len}")
        h = h + self.pos[past : past + h.shape[1]]
        for block in self.blocks:
            h = block(h, cache, memory, mask)
        return self.head(self.ln(h))
