"""Byte-level BPE: pre-split, exact merges on small corpora, Unicode round trips, specials, serialisation, speed."""

from __future__ import annotations

import json
import random
import time

import pytest
import torch

from genlab.errors import GenlabError
from genlab.text.bpe import BPETokenizer, chunks, merge_pair, train_bpe

CORPUS = [
    "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs.\n",
    "    def __init__(self, x):\n        self.x = x  # the other thing\n",
    "Numbers 12345 and 2024, then the end of the theory of these themes.\n\n",
]
UNICODE = [
    "",
    "plain ascii",
    "emoji 😀👍🏽 and a family 👨‍👩‍👧 (ZWJ)",
    "中文字符与日本語のテキスト，한국어",
    "combining: e\u0301 a\u0308\u0323 n\u0303 and precomposed é",
    "NUL \x00 inside, and \x7f DEL, \x01 controls",
    "tabs\tand\r\nCRLF\rCR\u2028LS\u00a0NBSP\u3000ideographic space",
    "right-to-left: שלום עולם مرحبا",
    "   leading and trailing spaces   ",
    "\ufffd replacement char and \U0010ffff the last code point",
]


@pytest.fixture(scope="module")
def tok() -> BPETokenizer:
    return train_bpe(CORPUS * 3, 60)


def test_chunks_are_lossless_and_keep_words_with_their_space():
    assert chunks("Hello, world!  foo_bar 42x") == ["Hello", ",", " world", "!", " ", " foo_bar", " 42", "x"]
    assert chunks("a\n    b") == ["a", "\n   ", " b"]
    for text in UNICODE + CORPUS:
        assert "".join(chunks(text)) == text


def test_known_merges_and_tie_break_by_smaller_pair():
    # "aaab": (a,a) counts 2 -> 256 = "aa"; then (256,a) and (a,b) tie at 1 -> the smaller pair (97, 98) first
    t = train_bpe(["aaab"], 10)
    assert t.merges == [(97, 97), (97, 98), (256, 257)]  # stops early: no pair left
    assert t.encode("aaab") == [258] and t.num_merges == 3
    assert train_bpe(["cd", "ab"], 2).merges == [(97, 98), (99, 100)]  # equal counts: smaller pair first


def test_training_is_deterministic_and_order_free():
    a = train_bpe(CORPUS, 40)
    b = train_bpe(list(reversed(CORPUS)), 40)
    assert a.merges == b.merges and a.num_merges == 40


def test_merges_never_cross_chunks(tok):
    for i in range(256, tok.eos_id):
        piece = tok.token_bytes(i).decode("utf-8", errors="replace")
        assert len(chunks(piece)) == 1, piece


def test_encode_equals_merges_applied_in_training_order(tok):
    text = "".join(CORPUS) + " the thesis of those theorists"
    for chunk in chunks(text):
        ids = list(chunk.encode())
        for k, pair in enumerate(tok.merges):
            ids = merge_pair(ids, pair, 256 + k)
        assert tok.encode(chunk) == ids


def test_round_trip_unicode(tok):
    for t in (tok, BPETokenizer([])):
        for text in UNICODE + CORPUS:
            assert t.decode(t.encode(text)) == text
    rng = random.Random(0)
    pool = [c for c in map(chr, range(0x20000)) if not 0xD800 <= ord(c) <= 0xDFFF]
    for _ in range(50):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 40)))
        assert tok.decode(tok.encode(text)) == text


def test_lone_surrogates_become_replacement_chars(tok):
    text = "a\ud800b \udfff and a split pair \ud83d\ude00"
    ids = tok.encode(text)
    assert tok.decode(ids) == "a\ufffdb \ufffd and a split pair \ufffd\ufffd"


def test_merges_reduce_token_count():
    text = "".join(CORPUS)
    counts = [len(train_bpe(CORPUS, m).encode(text)) for m in (0, 10, 50)]
    assert counts[0] == len(text.encode()) and counts[0] > counts[1] > counts[2]


def test_specials_ids_and_never_encoded(tok):
    m = tok.num_merges
    assert (tok.eos_id, tok.mask_id, tok.vocab_size) == (256 + m, 257 + m, 258 + m)
    text = "literal <eos> and <mask> tokens in the text"
    ids = tok.encode(text)
    assert tok.eos_id not in ids and tok.mask_id not in ids and max(ids) < tok.eos_id
    assert tok.decode([tok.mask_id, *ids, tok.eos_id, tok.eos_id]) == text
    assert tok.decode(torch.tensor(ids)) == text
    with pytest.raises(GenlabError, match="outside the vocabulary"):
        tok.decode([tok.vocab_size])


def test_invalid_utf8_bytes_decode_with_replacement(tok):
    assert tok.decode([0xE4, 0xB8]) == "\ufffd"  # a cut-off 3-byte character
    assert tok.decode([ord("a"), 0xFF, ord("b")]) == "a\ufffdb"


def test_dict_round_trip(tok):
    d = json.loads(json.dumps(tok.to_dict()))
    assert d["kind"] == "bpe" and len(d["merges"]) == tok.num_merges
    back = BPETokenizer.from_dict(d)
    assert back.merges == tok.merges and back.vocab_size == tok.vocab_size
    text = "".join(CORPUS + UNICODE)
    assert back.encode(text) == tok.encode(text)


@pytest.mark.parametrize(
    "bad",
    [{"kind": "wordpiece", "merges": []}, {"merges": [[97, 98]]}, {"kind": "bpe", "merges": [[97]]},
     {"kind": "bpe", "merges": [[97, 256]]}, {"kind": "bpe", "merges": [[97, True]]}, []],
)  # fmt: skip
def test_from_dict_rejects_bad_tokenizers(bad):
    with pytest.raises(GenlabError):
        BPETokenizer.from_dict(bad)


def test_topics_2000_merges_fast():
    topics = pytest.importorskip("pydoc_data.topics").topics
    texts = [topics[k] for k in sorted(topics)]
    start = time.perf_counter()
    t = train_bpe(texts, 2000)
    seconds = time.perf_counter() - start
    assert t.num_merges == 2000 and t.vocab_size == 2258
    assert seconds < 30, f"2000 merges took {seconds:.1f} s"
    text = texts[0]
    assert len(text.encode()) / len(t.encode(text)) > 3  # ~3.7 bytes per token on English
