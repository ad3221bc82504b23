"""The text models (genlab.methods.lm): the AR model's cache, exact likelihood and SFT loss; the MDLM's ELBO, its
estimators, the bound, LLaDA sampling (schedule, blocks, prompts, infilling) and SFT masking.

The bound test: −ELBO(x) is the mean over orders σ of −log p^σ(x), p^σ(x) = Π_k p_θ(x_σ(k) | x_σ(<k)) (an any-order
autoregressive model), so by Jensen −ELBO(x) ≥ −log p_mix(x) with p_mix = (1/L!) Σ_σ p^σ, a normalised
distribution (the one random-order unmasking samples from). On a vocabulary of 3 text ids and L = 3 every
sequence and order is enumerable: the test checks the identity, the normalisation, the inequality (with a real
gap), that both Monte-Carlo estimators converge to the exact value and that the sampler draws from p_mix.
"""

import itertools
import math

import pytest
import torch

from genlab.errors import GenlabError
from genlab.methods.lm import ARLMConfig, ARLMMethod, MDLMConfig, MDLMMethod, linear_schedule
from genlab.models import build_model
from genlab.models.lm import LMConfig, TextTransformer
from genlab.models.transformer import sample_logits
from genlab.settings import SampleSettings
from genlab.text.bpe import BPETokenizer

BYTES = BPETokenizer([]).to_dict()  # byte-level: 256 bytes + <eos> 256 + <mask> 257


def make(
    kind: str, *, vocab: int = 258, seq_len: int = 16, dim: int = 32, seed: int = 0, position: str = "rope", **cfg
):
    torch.manual_seed(seed)
    model = LMConfig(vocab_size=vocab, seq_len=seq_len, dim=dim, depth=2, heads=2, position=position)
    tok = BYTES if vocab == 258 else {}
    if kind == "ar_lm":
        return ARLMMethod(ARLMConfig(tokenizer=tok, **cfg), model).eval()
    return MDLMMethod(MDLMConfig(tokenizer=tok, **cfg), model).eval()


def sharpen(method, scale: float = 6.0):
    """Peaked, context-dependent conditionals from random weights (so orders disagree and bounds have gaps)."""
    with torch.no_grad():
        method.model.head.weight.mul_(scale)
    return method


# ----------------------------------------------------------------------------- the backbone


def test_rotary_scores_depend_on_the_offset_only():
    from genlab.models.transformer import rotate

    torch.manual_seed(0)
    q, k = torch.randn(2, 1, 1, 5, 8).unbind(0)  # (B, heads, T, d)
    pos = torch.tensor([0, 3, 4, 9, 2])

    def scores(shift: int) -> torch.Tensor:
        return rotate(q, pos + shift) @ rotate(k, pos + shift).transpose(-1, -2)

    assert torch.allclose(scores(0), scores(17), atol=1e-5) and not torch.allclose(scores(0), q @ k.transpose(-1, -2))
    assert torch.allclose(rotate(q, pos).norm(dim=-1), q.norm(dim=-1), atol=1e-6)  # a rotation


@pytest.mark.parametrize("position", ["rope", "learned"])
def test_kv_cache_logits_equal_full_recompute(position):
    torch.manual_seed(0)
    cfg = LMConfig(vocab_size=11, seq_len=8, dim=16, depth=2, heads=2, position=position)
    model = TextTransformer(cfg, causal=True).eval()
    assert (model.pos is None) == (position == "rope")
    tokens = torch.randint(0, 11, (3, 8))
    full = model(tokens)
    cache = model.new_cache()
    steps = torch.cat(
        [model(tokens[:, :3], cache=cache)] + [model(tokens[:, i : i + 1], cache=cache) for i in range(3, 8)], 1
    )
    assert torch.allclose(steps, full, atol=1e-5)
    with pytest.raises(GenlabError, match="exceeds seq_len"):
        model(tokens[:, :1], cache=cache)


def test_causal_and_bidirectional_attention():
    torch.manual_seed(0)
    cfg = LMConfig(vocab_size=9, seq_len=6, dim=16, depth=2, heads=4)
    tokens = torch.randint(0, 9, (2, 6))
    changed = tokens.clone()
    changed[:, 3] = (changed[:, 3] + 1) % 9
    causal, bidir = TextTransformer(cfg, causal=True).eval(), TextTransformer(cfg, causal=False).eval()
    a, b = causal(tokens), causal(changed)
    assert torch.equal(a[:, :3], b[:, :3]) and not torch.allclose(a[:, 3:], b[:, 3:])
    a, b = bidir(tokens), bidir(changed)
    assert not torch.allclose(a[:, :3], b[:, :3], atol=1e-4)  # earlier positions see the later token
    with pytest.raises(GenlabError, match="no KV cache"):
        bidir.new_cache()
    with pytest.raises(GenlabError, match="ar_lm or mdlm"):
        build_model(cfg)


# ----------------------------------------------------------------------------- ar_lm


@pytest.mark.parametrize(("position", "bound"), [("learned", 0.3), ("rope", 1.5)])
def test_a_bidirectional_model_learns_where_a_mask_sits(position, bound):
    """Every odd token copies its left neighbour; with all copies hidden, only position tells a <mask> which visible
    token is its own. Under N(0, 1) token embeddings beside 0.02 learned position embeddings the MDLM stayed at the
    position-blind cost (about 1.9 nats here, log 8 = 2.08) after 300 steps; on one scale it learns the copy (0.02).
    With rotary positions it must tell offset −1 from +1 by the rotation's sine: 1.05 after 300 steps."""
    m = make("mdlm", seq_len=16, position=position).train()
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)

    def batch(n: int) -> torch.Tensor:
        return torch.randint(97, 105, (n, 8), generator=gen).repeat_interleave(2, 1)  # x[2i+1] = x[2i]

    for _ in range(300):
        loss, _ = m.loss({"x": batch(32)})
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = batch(64)
    hidden = torch.zeros_like(x, dtype=torch.bool)
    hidden[:, 1::2] = True
    with torch.no_grad():
        logp = m.eval().logits(torch.where(hidden, m.mask_id, x)).log_softmax(-1)
    assert float(-logp.gather(-1, x[..., None]).squeeze(-1)[hidden].mean()) < bound


def test_ar_sampling_with_cache_equals_recompute():
    method = make("ar_lm")
    prompt = torch.tensor([104, 105, 32])  # "hi "
    got = method.sample(
        4, settings=SampleSettings(top_k=50), generator=torch.Generator().manual_seed(3), prompt_ids=prompt
    )
    assert got.x.shape == (4, 16) and got.nfe == 13 and (got.x[:, :3] == prompt).all()
    gen, x = torch.Generator().manual_seed(3), prompt[None].expand(4, -1)
    for _ in range(13):  # no cache: the whole prefix each time, <eos> as the start symbol
        start = torch.full((4, 1), method.eos_id)
        logits = method.logits(torch.cat([start, x], 1))[:, -1]
        x = torch.cat([x, sample_logits(logits, top_k=50, generator=gen)[:, None]], 1)
    assert torch.equal(got.x, x)
    assert (got.x != method.mask_id).all()


@torch.no_grad()
def test_ar_likelihood_is_normalised_and_matches_the_loss():
    method = sharpen(make("ar_lm", vocab=5, seq_len=3))  # text ids 0..2, <eos> 3, <mask> 4
    seqs = torch.tensor(list(itertools.product(range(4), repeat=3)))  # every sequence, <eos> included
    lp = method.log_likelihood(seqs)
    assert float(lp.exp().sum()) == pytest.approx(1.0, abs=1e-5)
    start = torch.full((len(seqs), 1), 3)
    logits = method.model(torch.cat([start, seqs[:, :-1]], 1))[..., :4]  # by hand: <mask> excluded
    by_hand = logits.log_softmax(-1).gather(-1, seqs[..., None]).squeeze(-1)
    assert torch.allclose(lp, by_hand.sum(1), atol=1e-5)
    loss, logs = method.loss({"x": seqs})
    assert float(loss.detach()) == pytest.approx(float(-by_hand.mean()), abs=1e-5)
    assert float(logs["bits_per_token"]) == pytest.approx(float(loss) / math.log(2))
    prompt_length = torch.randint(0, 3, (len(seqs),))  # SFT: the response positions only, per sequence
    sft, _ = method.loss({"x": seqs, "prompt_length": prompt_length})
    resp = torch.arange(3)[None] >= prompt_length[:, None]
    expected = torch.stack([-by_hand[i][resp[i]].mean() for i in range(len(seqs))]).mean()
    assert float(sft) == pytest.approx(float(expected), abs=1e-5)


def test_never_samples_mask_and_refuses_bad_input():
    for kind in ("ar_lm", "mdlm"):
        method = make(kind, seq_len=8)
        with torch.no_grad():
            method.model.head.bias[method.mask_id] = 100.0  # the network prefers <mask> everywhere
        x = method.sample(3, generator=torch.Generator().manual_seed(0)).x
        assert x.dtype == torch.long and (x != method.mask_id).all()
        with pytest.raises(GenlabError, match="prompt_ids instead of cond"):
            method.sample(2, cond=torch.zeros(2, dtype=torch.long))
        with pytest.raises(GenlabError, match="shorten it"):
            method.sample(2, prompt_ids=list(range(9)))
        with pytest.raises(GenlabError, match="outside"):
            method.log_likelihood(torch.full((1, 8), method.mask_id))
    with pytest.raises(GenlabError, match="model.vocab_size=300"):
        ARLMMethod(ARLMConfig(tokenizer=BYTES), LMConfig(vocab_size=300, seq_len=8))
    with pytest.raises(GenlabError, match="needs model.kind=lm"):
        MDLMMethod(MDLMConfig(), LMConfig(kind="transformer", vocab_size=10, seq_len=8))


def test_decode_text_marks_documents():
    method = make("mdlm")
    ids = [*b"hi", method.eos_id, *"yo é".encode()]
    assert method.decode_text(torch.tensor([ids])) == ["hiyo é"]
    assert method.decode_text(torch.tensor([ids]), eos="|") == ["hi|yo é"]


# ----------------------------------------------------------------------------- mdlm: the ELBO


@torch.no_grad()
def test_mdlm_loss_matches_a_hand_computation():
    method = make("mdlm", seq_len=6, eps=0.0)
    x = torch.randint(0, 256, (4, 6))
    masked = torch.tensor([[1, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1], [0, 1, 0, 0, 0, 1]]).bool()
    t = torch.tensor([0.5, 0.1, 1.0, 0.25])
    x_t = torch.where(masked, 257, x)
    logp = method.model(x_t)[..., :257].log_softmax(-1).gather(-1, x[..., None]).squeeze(-1)  # <mask> excluded
    by_hand = torch.stack([-logp[b][masked[b]].sum() / t[b] for b in range(4)])
    assert torch.allclose(method.nelbo_terms(x, masked, 1 / t), by_hand, atol=1e-5)
    assert float(method.nelbo_terms(x, masked, 1 / t)[1]) == 0.0  # nothing masked: no term

    torch.manual_seed(7)  # the loss: t low-discrepancy over the batch, masks Bernoulli(t), weight 1/(t·L)
    loss, logs = method.loss({"x": x})
    torch.manual_seed(7)
    u = (torch.rand(()) + torch.arange(4) / 4) % 1
    t = 1 - u
    masked = torch.rand(4, 6) < t[:, None]
    logp = method.model(torch.where(masked, 257, x))[..., :257].log_softmax(-1).gather(-1, x[..., None]).squeeze(-1)
    expected = torch.stack([-logp[b][masked[b]].sum() / (t[b] * 6) for b in range(4)]).mean()
    assert float(loss) == pytest.approx(float(expected), abs=1e-5)
    assert float(logs["mask_rate"]) == pytest.approx(float(masked.float().mean()))


def test_training_times_are_stratified_in_eps_to_one():
    method = make("mdlm", eps=0.01)
    t = method.draw_t(8, torch.device("cpu")).sort().values
    assert float(t.min()) > 0.01 and float(t.max()) <= 1.0
    assert torch.allclose(t.diff(), torch.full((7,), 0.99 / 8), atol=1e-6)  # one draw per stratum


@torch.no_grad()
@pytest.mark.parametrize("estimator", ["time", "count"])
def test_mdlm_sft_never_masks_the_prompt(estimator):
    method = make("mdlm", seq_len=10, loss_estimator=estimator)
    x = torch.randint(0, 256, (64, 10))
    prompt_length = torch.randint(0, 10, (64,))
    seen = []
    hook = method.model.register_forward_pre_hook(lambda mod, args: seen.append(args[0].clone()))
    torch.manual_seed(1)
    loss, _ = method.loss({"x": x, "prompt_length": prompt_length})
    hook.remove()
    prompt = torch.arange(10)[None] < prompt_length[:, None]
    x_t = seen[0]
    assert torch.equal(x_t[prompt], x[prompt])  # prompt tokens always visible
    assert (x_t[~prompt] == 257).float().mean() > 0.3  # response tokens masked at rate E[t] ≈ 1/2
    logp = method.model(x_t)[..., :257].log_softmax(-1).gather(-1, x[..., None]).squeeze(-1)
    masked = x_t == 257
    if estimator == "time":  # weight 1/(t · response length)
        torch.manual_seed(1)
        t = method.draw_t(64, torch.device("cpu"))
        weight = 1 / (t * (~prompt).sum(1))
    else:  # m of the response tokens masked, weight 1/m
        assert (masked.sum(1) >= 1).all() and (masked.sum(1) <= (~prompt).sum(1)).all()
        weight = 1 / masked.sum(1)
    expected = torch.stack([-logp[b][masked[b]].sum() * weight[b] for b in range(64)]).mean()
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)


@torch.no_grad()
def test_both_loss_estimators_are_unbiased_for_the_elbo():
    method = make("mdlm", vocab=5, seq_len=3, dim=16, eps=0.0)
    seqs = torch.tensor(list(itertools.product(range(4), repeat=3)))
    exact = float(method.exact_nelbo(seqs).mean()) / 3  # −ELBO per token, averaged over the 64 sequences
    for estimator, tol in (("count", 0.01), ("time", 0.03)):
        method.cfg.loss_estimator = estimator
        losses = []
        for seed in range(20):
            torch.manual_seed(seed)
            losses.append(float(method.loss({"x": seqs.repeat(20, 1)})[0]))
        assert sum(losses) / len(losses) == pytest.approx(exact, abs=tol), estimator


def order_mixture(method, seqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p_mix(x), mean over orders of −log p^σ(x)) of every row, by enumerating the L! orders."""
    n, length = seqs.shape
    per_order = []
    for order in itertools.permutations(range(length)):
        x_t, lp = torch.full_like(seqs, method.mask_id), torch.zeros(n, dtype=torch.float64)
        for i in order:
            logp = method.logits(x_t)[:, i].log_softmax(-1)
            lp += logp.gather(-1, seqs[:, i : i + 1]).squeeze(-1).double()
            x_t[:, i] = seqs[:, i]
        per_order.append(lp)
    lps = torch.stack(per_order)  # (L!, n)
    return torch.logsumexp(lps, 0) - math.log(len(lps)), -lps.mean(0)


@torch.no_grad()
def test_mdlm_bound_on_an_enumerable_model():
    method = sharpen(make("mdlm", vocab=5, seq_len=3, dim=16))  # text ids 0..2, <eos> 3, <mask> 4
    seqs = torch.tensor(list(itertools.product(range(4), repeat=3)))
    log_mix, order_nll = order_mixture(method, seqs)
    assert float(log_mix.exp().sum()) == pytest.approx(1.0, abs=1e-5)  # p_mix is a distribution
    nelbo = method.exact_nelbo(seqs)
    assert torch.allclose(nelbo, order_nll, atol=1e-4)  # −ELBO = E_σ[−log p^σ(x)]
    gap = nelbo - (-log_mix)
    assert float(gap.min()) >= -1e-5 and float(gap.max()) > 1e-2  # a bound, and not a trivial one
    one = sharpen(make("mdlm", vocab=5, seq_len=1, dim=16))  # L = 1: the bound is the exact NLL
    x1 = torch.arange(4)[:, None]
    assert torch.allclose(
        one.exact_nelbo(x1), -one.logits(torch.full_like(x1, 4))[:, 0].log_softmax(-1).diag().double(), atol=1e-5
    )

    # the Monte-Carlo estimators are unbiased for the ELBO (seeded, so the tolerances are fixed numbers); on the
    # unsharpened model, whose terms have a smaller spread: "time"'s 1/t weight has the heavier tail
    method = make("mdlm", vocab=5, seq_len=3, dim=16)
    nelbo = method.exact_nelbo(seqs)
    for estimator, k, mean_tol, max_tol in (("count", 400, 0.03, 0.3), ("time", 1000, 0.1, 1.0)):
        stats = {}
        err = method.log_likelihood(seqs, estimator=estimator, samples=k, seed=1, stats=stats).double() + nelbo
        assert stats["nfe"] == k
        assert abs(float(err.mean())) < mean_tol and float(err.abs().max()) < max_tol, estimator
    a, b = (method.log_likelihood(seqs[:2], samples=4, seed=s) for s in (0, 0))
    assert torch.equal(a, b)  # seeded


@torch.no_grad()
def test_random_remasking_with_l_steps_samples_the_order_mixture():
    method = sharpen(make("mdlm", vocab=5, seq_len=3, dim=16))
    seqs = torch.tensor(list(itertools.product(range(4), repeat=3)))
    p_mix = order_mixture(method, seqs)[0].exp()
    x = method.sample(
        20000, settings=SampleSettings(steps=3), generator=torch.Generator().manual_seed(0), remasking="random"
    ).x
    codes = (x * torch.tensor([16, 4, 1])).sum(1)
    freq = torch.bincount(codes, minlength=64)[(seqs * torch.tensor([16, 4, 1])).sum(1)].double() / len(x)
    assert 0.5 * float((freq - p_mix).abs().sum()) < 0.03  # total variation


# ----------------------------------------------------------------------------- mdlm: sampling


def test_linear_schedule():
    counts = linear_schedule(torch.tensor([7, 3, 0]), 3)
    assert counts.tolist() == [[3, 2, 2], [1, 1, 1], [0, 0, 0]]


@torch.no_grad()
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_l_steps_fill_each_position_once(temperature):
    method = make("mdlm", seq_len=12, temperature=temperature)
    states = []
    out = method.sample(
        5,
        settings=SampleSettings(steps=12),
        generator=torch.Generator().manual_seed(0),
        callback=lambda s: states.append(s.x_t.clone()),
    )
    assert out.nfe == 12 and len(states) == 12
    prev = torch.full((5, 12), method.mask_id)
    for x in states:
        newly = (prev == method.mask_id) & (x != method.mask_id)
        assert newly.sum(1).tolist() == [1] * 5  # one token per row per step
        kept = prev != method.mask_id
        assert torch.equal(x[kept], prev[kept])  # never changed once unmasked
        prev = x
    assert torch.equal(prev, out.x) and (out.x != method.mask_id).all()


@torch.no_grad()
def test_blocks_fill_left_to_right_and_prompts_stay():
    method = make("mdlm", seq_len=16, block_length=4)
    prompt = [104, 105]
    states = []
    out = method.sample(
        3, settings=SampleSettings(steps=7), prompt_ids=prompt, callback=lambda s: states.append(s.x_t.clone())
    )
    assert out.nfe == 7 and (out.x[:, :2] == torch.tensor(prompt)).all()
    blocks = [range(2, 6), range(6, 10), range(10, 14), range(14, 16)]  # the generated span, cut from the prompt on
    done = [[bool((s[:, list(b)] != method.mask_id).all()) for b in blocks] for s in states]
    for row in done:  # a block is complete before the next one starts
        assert row == sorted(row, reverse=True)
    for s in states:
        for j in range(1, 4):
            started = (s[:, list(blocks[j])] != method.mask_id).any()
            assert not started or all((s[:, list(b)] != method.mask_id).all() for b in blocks[:j])
    with pytest.raises(GenlabError, match="raise steps or block_length"):
        method.sample(1, settings=SampleSettings(steps=3), prompt_ids=prompt)


@torch.no_grad()
def test_sampling_in_row_chunks_is_the_same(monkeypatch):
    import genlab.methods.lm as lm

    method = make("mdlm", seq_len=8, temperature=0.0)  # argmax and low confidence: no randomness
    full = method.sample(5, settings=SampleSettings(steps=4)).x
    monkeypatch.setattr(lm, "MAX_LOGITS", 2 * 8 * 258)  # 2 rows per network call
    assert torch.equal(method.sample(5, settings=SampleSettings(steps=4)).x, full)


@torch.no_grad()
def test_infill_changes_only_the_masked_positions():
    method = make("mdlm", seq_len=12)
    ids = torch.tensor([list(b"hello, world")] * 2)
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[0, 5:7], mask[1, 3:10] = True, True
    ids[mask] = method.mask_id  # whatever stands there is ignored
    for remasking in ("low_confidence", "random"):
        out = method.infill(
            ids, mask, settings=SampleSettings(steps=4), remasking=remasking, generator=torch.Generator().manual_seed(0)
        )
        assert torch.equal(out.x[~mask], ids[~mask]) and (out.x != method.mask_id).all()
        assert out.nfe == 4
    with pytest.raises(GenlabError, match="one shape"):
        method.infill(ids, mask[:, :5])


# ----------------------------------------------------------------------------- end to end on genlab's trainer


@pytest.mark.parametrize("kind", ["ar_lm", "mdlm"])
def test_trains_on_text_and_round_trips(tmp_path, kind):
    from genlab.config import load_recipe
    from genlab.runs import load_run
    from genlab.train import Trainer
    from tests.conftest import tiny_text_tree, write_recipe

    docs = [f"The quick brown fox number {i} jumps over the lazy dog, and the cat sat on the mat." for i in range(80)]
    (tmp_path / "docs.txt").write_text("\n\n".join(docs))
    tree = tiny_text_tree(kind, tmp_path / "docs.txt", steps=40)
    trainer = Trainer(load_recipe(write_recipe(tmp_path / "r.yaml", tree)), tmp_path / "run")
    (tmp_path / "run").mkdir()
    assert trainer.recipe.model.vocab_size == 256 + 40 + 2 and trainer.recipe.model.seq_len == 16
    losses = [trainer.train_step()["loss"] for _ in range(40)]
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5, losses
    trainer.save()
    loaded = load_run(tmp_path / "run").method
    x = trainer.data.x[:4]
    opts = {"seed": 3} if kind == "mdlm" else {}
    assert torch.equal(loaded.log_likelihood(x, **opts), trainer.ema.eval().log_likelihood(x, **opts))
    out = loaded.sample(2, settings=SampleSettings(steps=4), generator=torch.Generator().manual_seed(0))
    text = loaded.decode_text(out.x)
    assert len(text) == 2 and all(isinstance(t, str) for t in text)
    assert loaded.decode_text(x[:1], eos="|")[0] in "|".join(docs)  # a window is a piece of the corpus
