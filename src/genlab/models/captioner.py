"""The language side of a LLaVA-style captioner (Liu et al. 2023, small): an MLP projector and a causal LM.

A frozen image encoder (the method's; genlab's CLIP image tower) gives P patch tokens e (B, P, E). The projector
maps each to the LM's width, p = W2·GELU(W1·e) (B, P, dim), and the LM reads the sequence
[p_1 … p_P, <bos>, w_1 … w_n, <eos>] causally: the image tokens are a prefix, the words are predicted one by one.
The LM is genlab.models.lm's TextTransformer (pre-LN blocks, RoPE positions, KV cache); this module feeds it
embeddings instead of ids, so the prefix can be projected image tokens. Words come from a fixed word-level
vocabulary (genlab.models.clip's `words`: lower-case words and single punctuation marks), stored in the recipe, so
a checkpoint's config.json carries its tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import torch
from torch import Tensor, nn

from genlab.constraints import Fraction, OptPositiveInt, PositiveInt, Range, require
from genlab.errors import GenlabError
from genlab.models.clip import shapes_vocabulary, words
from genlab.models.lm import LMConfig, TextTransformer
from genlab.models.transformer import KVCache

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")  # ids 0, 1, 2, 3
PAD, UNK, BOS, EOS = range(4)
#: the words of the visual questions (genlab.methods.captioner.QUESTIONS) beyond the caption grammar
QUESTION_WORDS = ("what", "colour", "is", "the", "shape", "object", "how", "many", "shapes", "are", "there", "?")


def captioner_vocabulary() -> list[str]:
    """Every word of the shapes captions and of the visual questions and answers, sorted."""
    return sorted({*shapes_vocabulary(), *QUESTION_WORDS, "one", "two"})


@dataclass
class CaptionerConfig:
    kind: str = "captioner"
    in_channels: OptPositiveInt = None  # filled from the data; must match the image encoder's
    image_size: OptPositiveInt = None
    dim: PositiveInt = 96  # the LM's width
    depth: PositiveInt = 3
    heads: PositiveInt = 4
    mlp_ratio: PositiveInt = 4
    dropout: Fraction = 0.0
    projector_hidden: PositiveInt = 192  # the projector MLP's hidden width
    max_text: Annotated[int, Range(4)] = 24  # text tokens per sequence: <bos>, question, words, <eos>
    vocab: list[str] = field(default_factory=captioner_vocabulary)

    def __post_init__(self) -> None:
        if self.dim >= 1 and self.heads >= 1:
            require(self.dim % self.heads == 0, "dim", f"must be divisible by heads={self.heads}, got {self.dim}")


class WordTokenizer:
    """Word-level ids over SPECIALS + vocab; unknown words become <unk>."""

    def __init__(self, vocab: list[str]):
        self.words = [*SPECIALS, *vocab]
        self.ids = {w: i for i, w in enumerate(self.words)}
        if len(self.ids) != len(self.words):
            raise GenlabError("model.vocab has repeated words or special tokens: list each word once")

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        return [self.ids.get(w, UNK) for w in words(text)]

    def unknown(self, text: str) -> list[str]:
        """The words of `text` outside the vocabulary."""
        return [w for w in words(text) if w not in self.ids]

    def decode(self, ids: list[int]) -> str:
        """Words up to the first <eos>, specials dropped, punctuation attached to the word before it."""
        out: list[str] = []
        for i in ids:
            if i == EOS:
                break
            if i >= len(SPECIALS):
                w = self.words[i]
                if out and not w[0].isalnum():
                    out[-1] += w
                else:
                    out.append(w)
        return " ".join(out)


class CaptionerNet(nn.Module):
    """forward(ids (B, T), prefix (B, P, E) or None, cache=None) → logits (B, P + T, V) of the new positions.

    With a prefix the new positions are [projected prefix, ids]; with a filled cache they are appended after the
    cached ones (KV cache: decoding costs one position per call)."""

    def __init__(self, cfg: CaptionerConfig, *, encoder_width: int, image_tokens: int):
        super().__init__()
        if cfg.dim % cfg.heads:
            raise GenlabError(f"model.dim={cfg.dim} must be divisible by model.heads={cfg.heads}")
        self.cfg, self.image_tokens = cfg, image_tokens
        self.tokenizer = WordTokenizer(cfg.vocab)
        self.projector = nn.Sequential(
            nn.Linear(encoder_width, cfg.projector_hidden), nn.GELU(), nn.Linear(cfg.projector_hidden, cfg.dim)
        )
        lm_cfg = LMConfig(
            vocab_size=len(self.tokenizer),
            seq_len=image_tokens + cfg.max_text,
            dim=cfg.dim,
            depth=cfg.depth,
            heads=cfg.heads,
            mlp_ratio=cfg.mlp_ratio,
            dropout=cfg.dropout,
        )
        self.lm = TextTransformer(lm_cfg, causal=True)

    @property
    def seq_len(self) -> int:
        return self.lm.cfg.seq_len

    def new_cache(self) -> KVCache:
        return self.lm.new_cache()

    def forward(self, ids: Tensor, prefix: Tensor | None = None, *, cache: KVCache | None = None) -> Tensor:
        h = self.lm.tok(ids)  # (B, T, dim)
        if prefix is not None:
            h = torch.cat([self.projector(prefix).to(h.dtype), h], 1)  # (B, P + T, dim)
        past = 0 if cache is None else cache.length()
        if past + h.shape[1] > self.seq_len:
            raise GenlabError(
                f"a sequence of {past + h.shape[1]} positions exceeds the captioner's {self.seq_len} "
                f"({self.image_tokens} image tokens + model.max_text={self.cfg.max_text}): shorten the question"
            )
        if self.lm.pos is not None:
            h = h + self.lm.pos[past : past + h.shape[1]]
        for block in self.lm.blocks:
            h = block(h, cache)
        return self.lm.head(self.lm.ln(h))
