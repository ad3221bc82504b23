"""The text-encoder interface that conditional models consume.

`encode(texts)` maps B strings to per-token states `tokens` (B, L, dim), a padding mask `mask` (B, L)
(True = real token) and a sentence vector `pooled` (B, dim); L is the longest tokenisation in the batch
(<= max_length). Encoders are frozen and deterministic; results are cached per string, so a caption is
encoded once per process. The null text for classifier-free guidance is `encode([""])` (it still has
real tokens, e.g. [CLS] [SEP], so attention over it is never empty).
A text longer than max_length tokens is cut to its first max_length tokens; `encode` says so with a
UserWarning (once per distinct text) that names how many tokens were kept and how the ignored tail begins.

Textual inversion (Gal et al. 2022): inside `with encoder.concepts({"<c>": v})` the placeholder "<c>" of a text
is one token whose input embedding (the word-embedding row the network reads, before position embeddings) is
the vector v (in_dim,); everything after that lookup is the frozen network, so gradients reach v through it
(`encode_live`). Encoders that support it override `input_embeddings` and read `self.placeholders` in
`tokenize` / `run`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from genlab.errors import GenlabError

CACHE_LIMIT = 100_000  # cached strings per encoder; the cache is cleared when it grows past this
TAIL_WORDS = 8  # words of an ignored tail quoted in the truncation warning


@dataclass
class TextEmbedding:
    tokens: Tensor  # (B, L, dim) float
    mask: Tensor  # (B, L) bool, True = real token
    pooled: Tensor  # (B, dim) float

    def to(self, device: torch.device | str) -> TextEmbedding:
        return TextEmbedding(self.tokens.to(device), self.mask.to(device), self.pooled.to(device))


def padded(rows: list[tuple[Tensor, Tensor]], dim: int, device) -> TextEmbedding:
    """The batch of per-text (tokens (L_i, dim), pooled (dim,)) as `TextEncoder.encode` returns it: tokens padded with
    zeros to the longest, its mask, the pooled vectors stacked."""
    length = max(r[0].shape[0] for r in rows)
    out = torch.zeros(len(rows), length, dim, device=device)  # (B, L, dim)
    mask = torch.zeros(len(rows), length, dtype=torch.bool, device=device)  # (B, L)
    for i, (tok, _) in enumerate(rows):
        out[i, : len(tok)], mask[i, : len(tok)] = tok, True
    return TextEmbedding(out, mask, torch.stack([r[1] for r in rows]))


class TextEncoder(nn.Module):
    """A frozen encoder. Its network is held outside the module tree (`self.frozen`), so a consumer's
    parameters, state_dict and checkpoint never contain it, and `copy.deepcopy` (the trainer's EMA copy)
    shares it instead of copying it; `.to(device)` still moves it. Subclasses implement `tokenize` and `run`."""

    def __init__(self, frozen: nn.Module, *, name: str, dim: int, max_length: int):
        super().__init__()
        self.name, self.dim, self.max_length = name, dim, max_length
        object.__setattr__(self, "frozen", frozen.requires_grad_(False).eval())
        self._cache: dict[str, tuple[Tensor, Tensor]] = {}
        self._warned: set[str] = set()  # texts whose truncation was already reported
        self.placeholders: dict[str, Tensor] = {}  # textual inversion: placeholder -> input embedding (in_dim,)

    def __deepcopy__(self, memo: dict) -> TextEncoder:
        return self  # frozen and stateless apart from the cache: one shared instance is exact

    def _apply(self, fn, recurse: bool = True):
        self.frozen._apply(fn)
        self._cache.clear()
        return super()._apply(fn, recurse)

    @property
    def device(self) -> torch.device:
        return next(self.frozen.parameters()).device

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text (at most max_length, at least one)."""
        raise NotImplementedError

    def run(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """(per-token states (b, n, dim), pooled (b, dim)) of unpadded ids (b, n)."""
        raise NotImplementedError

    def input_embeddings(self) -> nn.Embedding | None:
        """The frozen word-embedding table (vocab, in_dim) a placeholder's vector stands in for; None: this
        encoder does not support placeholders (textual inversion)."""
        return None

    @contextlib.contextmanager
    def concepts(self, table: dict[str, Tensor]) -> Iterator[TextEncoder]:
        """Within the block, each placeholder of `table` ("<c>") is one token whose input embedding is its vector
        (in_dim,); the encoding cache is cleared on entry and exit, so no text keeps a stale encoding."""
        if table and self.input_embeddings() is None:
            raise GenlabError(f"text encoder {self.name!r} takes no learned placeholders: use a 'minilm' run")
        old = self.placeholders
        self.placeholders = {**old, **table}
        self._cache.clear()
        try:
            yield self
        finally:
            self.placeholders = old
            self._cache.clear()

    def encode_live(self, texts: list[str]) -> TextEmbedding:
        """`encode` without the cache and with gradients (to the placeholder vectors): for learning them."""
        return TextEmbedding(*self._encode_batch(list(texts)))

    def overflow(self, text: str) -> tuple[int, int, str] | None:
        """(tokens kept, tokens of the whole text, the ignored tail as text) when `tokenize` cuts `text` to
        max_length tokens; None when it fits. Subclasses that can truncate override this."""
        return None

    def _warn_truncated(self, texts: list[str]) -> None:
        for text in texts:
            if text in self._warned or (cut := self.overflow(text)) is None:
                continue
            if len(self._warned) >= CACHE_LIMIT:
                self._warned.clear()
            self._warned.add(text)
            kept, total, tail = cut
            words = tail.split()
            start = " ".join(words[:TAIL_WORDS]) + (" ..." if len(words) > TAIL_WORDS else "")
            warnings.warn(
                f"text encoder {self.name!r} reads at most {self.max_length} tokens: kept the first {kept:,} "
                f"of {total:,} tokens of a {len(text):,}-character text and ignored the rest, from "
                f"{start!r} ({len(words):,} words); shorten the text",
                UserWarning,
                stacklevel=4,
            )

    def _encode_batch(self, texts: list[str]) -> tuple[Tensor, Tensor, Tensor]:
        """Texts run in groups of equal token length (no padding inside the network), so a string's
        embedding does not depend on the other strings of the batch beyond rounding (a group's size changes how
        the matrix products are blocked: about 1e-6)."""
        ids = self.tokenize(texts)
        length = max(len(i) for i in ids)
        tokens = torch.zeros(len(texts), length, self.dim, device=self.device)  # (B, L, dim)
        mask = torch.zeros(len(texts), length, dtype=torch.bool, device=self.device)  # (B, L)
        pooled = torch.zeros(len(texts), self.dim, device=self.device)  # (B, dim)
        for n in sorted({len(i) for i in ids}):
            rows = [k for k, i in enumerate(ids) if len(i) == n]
            tokens[rows, :n], pooled[rows] = self.run(torch.tensor([ids[k] for k in rows], device=self.device))
            mask[rows, :n] = True
        return tokens, mask, pooled

    @torch.no_grad()
    def encode(self, texts: list[str]) -> TextEmbedding:
        """Embeddings of `texts` (a list of strings), padded to the longest in the batch."""
        if isinstance(texts, str):
            texts = [texts]
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            self._warn_truncated(todo)
            if len(self._cache) + len(todo) > CACHE_LIMIT:
                self._cache.clear()
            tokens, mask, pooled = self._encode_batch(todo)
            for i, text in enumerate(todo):
                self._cache[text] = (tokens[i, mask[i]].float(), pooled[i].float())  # (L_i, dim), (dim,)
        return padded([self._cache[t] for t in texts], self.dim, self.device)

    def forward(self, texts: list[str]) -> TextEmbedding:
        return self.encode(texts)

    def train(self, mode: bool = True) -> TextEncoder:
        return super().train(False)  # frozen: dropout stays off whatever the consumer does
