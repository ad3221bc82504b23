"""Metrics of language models and of their samples (token ids), as pure functions.

Samples are token ids `ids`: an int tensor (n, L) or a list of n rows of ints (rows may differ in length). Every
statistic counts every id it is given, <eos> included (an <eos> is a sampled token like any other); n-grams never
cross from one row into the next.

bits_per_byte(nats_per_token, bytes_per_token)
    nats_per_token / ln 2 / bytes_per_token: a model's cost in bits per UTF-8 byte of text, comparable across
    tokenizers (genlab.data.text: Dataset.bytes_per_token counts <eos> as a token of 0 bytes).
unigram_entropy(ids)
    H = −Σ_v p̂_v log2 p̂_v in bits, p̂_v = count(v) / total over all the ids: the entropy of the empirical token
    distribution of the samples. Degenerate samples ("the the the ...") have a low H; the corpus's own H (of the
    same number of real windows) is the reference. It grows with the number of tokens counted, so compare equal
    sizes.
distinct_ngrams(ids, n)
    distinct-n = |set of n-grams over all rows| / total n-grams (each row of length L holds max(L − n + 1, 0)).
    1 when no n-gram repeats; lower means repetition across or within samples.
repetition(ids, n=4)
    Mean over rows of 1 − |distinct n-grams of the row| / |n-grams of the row| (the "seq-rep-n" of Welleck et al.
    2019): the share of a sample's n-grams that repeat one earlier in the same sample. 0 for no repetition.
    Rows shorter than n are left out.
generative_perplexity(method, ids)
    exp(−Σ_rows log p(row) / total tokens) under a scoring run's method: the perplexity the scorer assigns to the
    samples. For an `ar_lm` scorer log p is exact (one causal pass, each row read after the start symbol <eos>),
    so this is the usual generative perplexity. For an `mdlm` scorer `log_likelihood` returns its ELBO (a lower
    bound on log p, estimated with K Monte-Carlo draws), so the value is an estimate of an upper bound on the
    scorer's perplexity. Rows longer than the scorer's seq_len are cut into consecutive windows of at most
    seq_len tokens, each scored on its own. `ids` may also be a list of strings, tokenized by the scorer's own
    tokenizer (for a scorer with another tokenizer; the perplexity is then per scorer token).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from genlab.errors import GenlabError


def _rows(ids: Tensor | Sequence[Sequence[int]]) -> list[list[int]]:
    """ids as a list of rows of ints; a GenlabError for anything but (n, L) integer ids."""
    if isinstance(ids, Tensor):
        if ids.dim() != 2 or ids.dtype.is_floating_point:
            raise GenlabError(f"token ids must be an integer tensor (n, L), got {ids.dtype} {tuple(ids.shape)}")
        return ids.tolist()
    return [[int(i) for i in row] for row in ids]


def bits_per_byte(nats_per_token: float, bytes_per_token: float) -> float:
    """nats_per_token / ln 2 / bytes_per_token (see the module docstring)."""
    if not bytes_per_token > 0:
        raise GenlabError(f"bytes_per_token must be > 0, got {bytes_per_token}")
    return float(nats_per_token) / math.log(2) / float(bytes_per_token)


def unigram_entropy(ids: Tensor | Sequence[Sequence[int]]) -> float:
    """Entropy in bits of the empirical distribution of all the ids (0 for none)."""
    counts = Counter(i for row in _rows(ids) for i in row)
    total = sum(counts.values())
    return -sum(c / total * math.log2(c / total) for c in counts.values()) if total else 0.0


def _ngrams(row: list[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(row[i : i + n]) for i in range(len(row) - n + 1)]


def distinct_ngrams(ids: Tensor | Sequence[Sequence[int]], n: int) -> float:
    """Distinct n-grams / total n-grams over all rows (n-grams within rows); nan when there is no n-gram."""
    if n < 1:
        raise GenlabError(f"n-grams need n >= 1, got {n}")
    grams = [g for row in _rows(ids) for g in _ngrams(row, n)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def repetition(ids: Tensor | Sequence[Sequence[int]], n: int = 4) -> float:
    """Mean over rows (of length >= n) of 1 − distinct / total n-grams of the row; nan when no row has an n-gram."""
    if n < 1:
        raise GenlabError(f"n-grams need n >= 1, got {n}")
    rates = [1 - len(set(g)) / len(g) for g in (_ngrams(row, n) for row in _rows(ids)) if g]
    return sum(rates) / len(rates) if rates else float("nan")


def sample_statistics(ids: Tensor | Sequence[Sequence[int]]) -> dict[str, float]:
    """The sample statistics an evaluation reports: unigram entropy (bits), distinct-1/2/3, repetition (4-grams)."""
    return {
        "unigram_entropy_bits": unigram_entropy(ids),
        **{f"distinct_{k}": distinct_ngrams(ids, k) for k in (1, 2, 3)},
        "repetition_4": repetition(ids, 4),
    }


def generative_perplexity(method: Any, ids: Tensor | Sequence[Sequence[int]] | Sequence[str], **opts: Any) -> float:
    """exp(mean NLL per token) of the samples `ids` under a text method (see the module docstring); `opts` go to
    `method.log_likelihood` (an mdlm's `samples`, `seed`, `estimator`)."""
    if not getattr(method, "makes_text", False):  # any object may be passed here
        raise GenlabError(f"the scorer is a {getattr(method, 'kind', type(method).__name__)} method: use a text run")
    if len(ids) and isinstance(ids[0], str):
        rows = [method.tokenizer.encode(text) for text in ids]
    else:
        rows = _rows(ids)
    windows = [row[i : i + method.seq_len] for row in rows for i in range(0, len(row), method.seq_len)]
    if not windows:
        raise GenlabError("generative perplexity needs at least one token")
    by_length: dict[int, list[list[int]]] = {}
    for w in windows:
        by_length.setdefault(len(w), []).append(w)
    nll, tokens = 0.0, 0
    for length, group in by_length.items():
        lp = method.log_likelihood(torch.tensor(group, dtype=torch.long), **opts)
        nll -= float(lp.double().sum())
        tokens += length * len(group)
    return math.exp(nll / tokens)
