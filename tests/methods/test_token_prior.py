import json
import shutil

import pytest
import torch

from genlab.errors import GenlabError
from genlab.models.transformer import Transformer, TransformerConfig, filter_logits, sample_logits
from genlab.runs import load_run
from genlab.settings import SampleSettings
from genlab.train import train
from tests.ar_helpers import assert_resume_identical, assert_round_trip, losses_fall, tiny_recipe
from tests.methods.test_vqvae import MODEL as VQ_MODEL

PRIOR = {"kind": "transformer", "dim": 16, "depth": 2, "heads": 2}


@pytest.fixture(scope="module")
def tokenizer_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vq")
    return train(tiny_recipe(tmp, VQ_MODEL, {"kind": "vqvae"}, steps=4), tmp / "run", progress=False)


def prior_recipe(tmp_path, tokenizer, **overrides):
    return tiny_recipe(tmp_path, PRIOR, {"kind": "token_prior", "tokenizer": str(tokenizer)}, **overrides)


def test_kv_cache_logits_equal_full_recompute():
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(num_classes=3, vocab_size=7, seq_len=6, dim=16, depth=2, heads=2)).eval()
    tokens, label = torch.randint(0, 7, (4, 6)), torch.tensor([0, 1, 2, 3])  # 3 = the null class
    full = model(tokens[:, :-1], label)  # (4, 6, 7): position i predicts token i
    cache = model.new_cache()
    steps = [model(tokens[:, :0], label, cache=cache)] + [
        model(tokens[:, i : i + 1], label, cache=cache) for i in range(5)
    ]
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)
    cache = model.new_cache()  # a prefix of several tokens at once, then one more
    chunked = torch.cat([model(tokens[:, :3], label, cache=cache), model(tokens[:, 3:5], label, cache=cache)], 1)
    assert torch.allclose(chunked, full, atol=1e-5)


def test_attention_is_causal():
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(num_classes=0, vocab_size=5, seq_len=8, dim=16, depth=2, heads=4)).eval()
    tokens = torch.randint(0, 5, (2, 7))
    changed = tokens.clone()
    changed[:, 4] = (changed[:, 4] + 1) % 5
    a, b = model(tokens), model(changed)  # token 4 enters at position 5
    assert torch.equal(a[:, :5], b[:, :5]) and not torch.allclose(a[:, 5:], b[:, 5:])


def test_top_k_and_top_p_filtering():
    logits = torch.log(torch.tensor([[0.1, 0.5, 0.05, 0.3, 0.05]]))
    kept = lambda **kw: torch.isfinite(filter_logits(logits, **kw))[0].tolist()  # noqa: E731
    assert kept(top_k=2) == [False, True, False, True, False]
    assert kept(top_p=0.75) == [False, True, False, True, False]  # 0.5 + 0.3 is the smallest set >= 0.75
    assert kept(top_p=0.85) == [True, True, False, True, False]
    assert kept(top_p=0.01) == [False, True, False, False, False]  # the most likely token always stays
    assert kept(top_k=3, top_p=0.6) == [False, True, False, True, False]
    gen = torch.Generator().manual_seed(0)
    draws = sample_logits(logits.expand(2000, 5), top_p=0.75, generator=gen)
    assert set(draws.tolist()) == {1, 3}
    assert (draws == 1).float().mean().item() == pytest.approx(0.5 / 0.8, abs=0.04)
    assert torch.equal(sample_logits(logits, temperature=0.0), torch.tensor([1]))


def test_tokenizer_must_be_a_vqvae_run_of_the_same_images(tmp_path, tokenizer_run):
    with pytest.raises(GenlabError, match="method.tokenizer=.*no such run folder"):
        train(prior_recipe(tmp_path, tmp_path / "missing"), tmp_path / "a", progress=False)
    fake = tmp_path / "fake"
    shutil.copytree(tokenizer_run, fake)
    config = json.loads((fake / "checkpoint" / "config.json").read_text())
    config["recipe"]["method"] = {"kind": "flow"}
    (fake / "checkpoint" / "config.json").write_text(json.dumps(config))
    with pytest.raises(GenlabError, match="not a 'vqvae' run"):
        train(prior_recipe(tmp_path, fake), tmp_path / "b", progress=False)
    recipe = prior_recipe(tmp_path, tokenizer_run)
    recipe.data.size = 16
    with pytest.raises(GenlabError, match="tokenizer encodes 1x8x8"):
        train(recipe, tmp_path / "c", progress=False)


def test_prior_is_self_contained_frozen_and_samples_images(tmp_path, tokenizer_run):
    run = train(prior_recipe(tmp_path, tokenizer_run, steps=3), tmp_path / "prior", progress=False)
    tokenizer = load_run(tokenizer_run).method
    moved = tmp_path / "moved"
    shutil.move(tokenizer_run, moved)  # the prior must not need the tokenizer's folder any more
    try:
        prior = load_run(run).method
        for k, v in tokenizer.state_dict().items():
            assert torch.equal(prior.tokenizer.state_dict()[k], v), k  # frozen: bit-identical after training
        gen = torch.Generator().manual_seed(0)
        x = prior.sample(3, cond=torch.tensor([1, 2, 3]), generator=gen, settings=SampleSettings(top_k=5, top_p=0.9)).x
        assert x.shape == (3, 1, 8, 8) and x.min() >= -1 and x.max() <= 1
        tokens = prior.sample_tokens(3, generator=torch.Generator().manual_seed(0))
        assert tokens.shape == (3, 4, 4) and tokens.dtype == torch.int64 and tokens.max() < 16
    finally:
        shutil.move(moved, tokenizer_run)


def test_loss_falls_round_trip_and_resume(tmp_path, tokenizer_run):
    first, last = losses_fall(prior_recipe(tmp_path, tokenizer_run, lr=0.01), tmp_path)
    assert last < first - 0.3  # nats per token, starting near log(16) = 2.77
    recipe = prior_recipe(tmp_path, tokenizer_run)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert_round_trip(recipe, tmp_path, lambda m: m.sample(4, cond=torch.arange(4), generator=gen()).x)
    assert_resume_identical(recipe, tmp_path)
