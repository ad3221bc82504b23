"""genlab.metrics.text against hand-computed values: bits per byte, unigram entropy, distinct-n, repetition, and
generative perplexity (a scorer whose every conditional is uniform over the V − 1 non-mask ids has perplexity
exactly V − 1: exactly for the ar_lm, and for the mdlm's ELBO too, since every masked term is log(V − 1) and the
weights of each draw sum to L)."""

import math

import pytest
import torch

from genlab.errors import GenlabError
from genlab.methods.lm import ARLMConfig, ARLMMethod, MDLMConfig, MDLMMethod
from genlab.metrics.text import (
    bits_per_byte,
    distinct_ngrams,
    generative_perplexity,
    repetition,
    sample_statistics,
    unigram_entropy,
)
from genlab.models.lm import LMConfig
from genlab.text.bpe import BPETokenizer

BYTES = BPETokenizer([]).to_dict()  # 256 bytes + <eos> + <mask>: V = 258


def lm(kind: str, *, uniform: bool = False, seq_len: int = 8):
    torch.manual_seed(0)
    model = LMConfig(vocab_size=258, seq_len=seq_len, dim=16, depth=1, heads=2)
    method = (
        ARLMMethod(ARLMConfig(tokenizer=BYTES), model)
        if kind == "ar_lm"
        else MDLMMethod(MDLMConfig(tokenizer=BYTES), model)
    ).eval()
    if uniform:
        with torch.no_grad():
            method.model.head.weight.zero_()
            method.model.head.bias.zero_()
    return method


def test_bits_per_byte():
    assert bits_per_byte(3 * math.log(2), 1.5) == pytest.approx(2.0)
    assert bits_per_byte(math.log(2), 1.0) == pytest.approx(1.0)
    with pytest.raises(GenlabError, match="bytes_per_token"):
        bits_per_byte(1.0, 0.0)


def test_unigram_entropy():
    assert unigram_entropy([[0, 0, 1, 1]]) == pytest.approx(1.0)
    assert unigram_entropy(torch.tensor([[0, 1], [2, 3]])) == pytest.approx(2.0)  # pooled over the rows
    assert unigram_entropy([[5, 5, 5]]) == 0.0
    assert unigram_entropy([[0, 0, 0, 1]]) == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))
    assert unigram_entropy([]) == 0.0
    with pytest.raises(GenlabError, match="integer tensor"):
        unigram_entropy(torch.zeros(2, 3))


def test_distinct_ngrams():
    assert distinct_ngrams([[1, 2, 1, 2]], 1) == pytest.approx(2 / 4)
    assert distinct_ngrams([[1, 2, 1, 2]], 2) == pytest.approx(2 / 3)  # (1,2) (2,1) (1,2)
    assert distinct_ngrams(torch.tensor([[1, 2], [1, 2]]), 2) == pytest.approx(1 / 2)  # repeats across rows count
    assert distinct_ngrams([[1, 2], [2, 1]], 2) == 1.0  # no n-gram crosses rows: (2, 2) is not one
    assert distinct_ngrams([[1, 2, 3]], 3) == 1.0
    assert math.isnan(distinct_ngrams([[1], [2]], 2))
    with pytest.raises(GenlabError, match="n >= 1"):
        distinct_ngrams([[1]], 0)


def test_repetition():
    # row 1: (1,2,3) (2,3,1) (3,1,2) (1,2,3): 1 − 3/4; row 2: no repeat; row 3 is shorter than n: left out
    assert repetition([[1, 2, 3, 1, 2, 3], [1, 2, 3, 4], [7, 7]], 3) == pytest.approx(0.125)
    assert repetition([[4, 4, 4, 4, 4]], 1) == pytest.approx(0.8)
    assert repetition([[1, 2], [3, 4]], 2) == 0.0  # across rows is not repetition within a sample
    assert math.isnan(repetition([[1, 2]], 4))


def test_sample_statistics_of_a_degenerate_sample():
    stats = sample_statistics(torch.tensor([[3, 9] * 8] * 4))
    assert stats["unigram_entropy_bits"] == pytest.approx(1.0)
    assert stats["distinct_1"] == pytest.approx(2 / 64)
    assert stats["distinct_2"] == pytest.approx(2 / 60) and stats["distinct_3"] == pytest.approx(2 / 56)
    assert stats["repetition_4"] == pytest.approx(1 - 2 / 13)


@pytest.mark.parametrize("kind", ["ar_lm", "mdlm"])
def test_generative_perplexity_of_a_uniform_scorer_is_the_vocabulary(kind):
    method = lm(kind, uniform=True)
    ids = torch.randint(0, 257, (3, 20))  # longer than seq_len 8: windows of 8, 8, 4
    assert generative_perplexity(method, ids) == pytest.approx(257, rel=1e-4)
    assert generative_perplexity(method, ["héllo wörld, a text"]) == pytest.approx(257, rel=1e-4)


def test_generative_perplexity_is_exact_for_an_ar_scorer():
    method = lm("ar_lm")
    ids = torch.randint(0, 257, (2, 11))
    windows = [ids[:, :8], ids[:, 8:]]  # rows cut at seq_len, each window scored from the start symbol
    with torch.no_grad():
        nll = -sum(float(method.token_log_probs(w).sum()) for w in windows)
    assert generative_perplexity(method, ids) == pytest.approx(math.exp(nll / ids.numel()), rel=1e-5)
    assert generative_perplexity(method, ids[:, :8]) != pytest.approx(generative_perplexity(method, ids[:, 8:]))


def test_generative_perplexity_of_an_mdlm_scorer_is_its_bound():
    method = lm("mdlm", seq_len=4)
    ids = torch.randint(0, 257, (3, 4))
    exact_bound = math.exp(float(method.exact_nelbo(ids).sum()) / ids.numel())
    assert generative_perplexity(method, ids, samples=64) == pytest.approx(exact_bound, rel=0.05)


def test_generative_perplexity_refuses_bad_input():
    with pytest.raises(GenlabError, match="text run"):
        generative_perplexity(object(), torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(GenlabError, match="at least one token"):
        generative_perplexity(lm("ar_lm"), [[]])
    with pytest.raises(GenlabError, match="ids outside"):
        generative_perplexity(lm("ar_lm"), torch.tensor([[257]]))  # <mask> is never a sample
