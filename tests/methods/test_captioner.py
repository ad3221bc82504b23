"""The LLaVA-style captioner (genlab.methods.captioner): loss masking, KV-cached decoding, stages, init."""

from __future__ import annotations

import pytest
import torch

from genlab.config import load_recipe
from genlab.data.shapes import sample_pairs
from genlab.errors import GenlabError
from genlab.methods.captioner import CaptionerMethod, CaptionerMethodConfig, masked_loss, questions_of
from genlab.methods.clip import ClipMethod, ClipMethodConfig
from genlab.models.captioner import BOS, EOS, PAD, UNK, CaptionerConfig, WordTokenizer, captioner_vocabulary
from genlab.models.clip import ClipConfig
from tests.conftest import ROOT
from tests.methods.test_clip import TINY

NET = dict(dim=32, depth=2, heads=2, projector_hidden=32, max_text=20)


def tiny(stage: int = 2, *, pool: int = 1, seed: int = 0, **parts) -> CaptionerMethod:
    torch.manual_seed(seed)
    if not parts:
        parts = {"encoder": ClipMethod(ClipMethodConfig(), ClipConfig(**TINY))}
    return CaptionerMethod(CaptionerMethodConfig(stage=stage, pool=pool, vqa=0.0), CaptionerConfig(**NET), parts)


@pytest.fixture(scope="module")
def batch():
    x, texts, _ = sample_pairs(6, seed=3)
    return x, texts


def test_loss_masks_the_image_positions(batch):
    x, texts = batch
    m = tiny()
    rows = [m.training_rows([t])[0] for t in texts[:4]]
    rows.append((m.prompt_ids("what colour is the circle?"), m.tokenizer.encode("red")))
    logits, targets, keep = m.sequence(x[:5], rows)
    p = m.net.image_tokens
    ids = m.text_batch(rows)[0]
    assert p == (32 // TINY["patch"]) ** 2 and logits.shape[1] == targets.shape[1] == p + ids.shape[1]
    assert not keep[:, :p].any()
    # caption rows score every word and <eos>; the question row only its answer and <eos>
    assert keep.sum(1).tolist() == [len(m.tokenizer.encode(t)) + 1 for t in texts[:4]] + [2]
    assert targets[4, keep[4]].tolist() == [m.tokenizer.ids["red"], EOS]
    loss = masked_loss(logits, targets, keep)
    scrambled = targets.clone()
    scrambled[:, :p] = torch.randint(0, logits.shape[-1], scrambled[:, :p].shape)
    noisy = logits.detach().clone()
    noisy[:, :p] = torch.randn_like(noisy[:, :p]) * 10
    assert torch.equal(masked_loss(logits, scrambled, keep), loss)  # labels at image positions have no effect
    assert torch.equal(masked_loss(noisy, targets, keep), masked_loss(logits.detach(), targets, keep))
    changed = targets.clone()
    first = int(keep[0].nonzero()[0])
    changed[0, first] = (changed[0, first] + 1) % logits.shape[-1]
    assert not torch.equal(masked_loss(logits, changed, keep), loss)  # the caption's labels do
    probe = logits.detach().clone().requires_grad_(True)
    masked_loss(probe, targets, keep).backward()
    assert probe.grad[:, :p].abs().max() == 0 and probe.grad[keep].abs().max() > 0


def test_kv_cached_decoding_equals_a_full_recompute(batch):
    x, _ = batch
    m = tiny(pool=2).eval()
    prefix = m.image_tokens(x[:3])
    prompt = torch.tensor(m.prompt_ids("what shape is the red object?"))[None].expand(3, -1)
    new = m.decode(prefix, prompt)  # greedy, cached
    full = m.net(torch.cat([prompt, new], 1), prefix)  # one pass over the whole sequence
    start = prefix.shape[1] + prompt.shape[1] - 1
    cache = m.net.new_cache()
    steps = [m.net(prompt, prefix, cache=cache)[:, -1]]
    for k in range(new.shape[1] - 1):
        steps.append(m.net(new[:, k : k + 1], cache=cache)[:, -1])
    cached = torch.stack(steps, 1)  # (B, n, V)
    torch.testing.assert_close(cached, full[:, start : start + new.shape[1]], atol=1e-5, rtol=1e-5)
    # greedy decoding without a cache (the whole sequence recomputed per token) gives the same captions
    ids = torch.tensor(m.prompt_ids(None))[None].expand(3, -1)
    prefix_c = m.image_tokens(x[:3])
    for _ in range(m.net.seq_len - prefix_c.shape[1] - 1):
        logits = m.net(ids, prefix_c)[:, -1].index_fill(-1, torch.tensor([PAD, UNK, BOS]), float("-inf"))
        ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], 1)
    expected = [m.tokenizer.decode(r[1:]) for r in ids.tolist()]
    assert m.caption(x[:3]) == expected
    a = m.caption(x[:3], temperature=1.0, top_p=0.9, generator=torch.Generator().manual_seed(5))
    b = m.caption(x[:3], temperature=1.0, top_p=0.9, generator=torch.Generator().manual_seed(5))
    assert a == b


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_stages_train_only_their_parts(batch, stage):
    x, texts = batch
    m = tiny(stage)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    opt = torch.optim.SGD(m.optimizer_groups()["model"], lr=0.1)
    loss, logs = m.loss({"x": x, "text": texts})
    loss.backward()
    opt.step()
    grads = {
        "encoder": [p.grad for p in m.encoder.parameters()],
        "lm": [p.grad for p in m.net.lm.parameters()],
        "projector": [p.grad for p in m.net.projector.parameters()],
    }
    trained = {0: {"lm"}, 1: {"projector"}, 2: {"lm", "projector"}}[stage]
    for part, gs in grads.items():
        if part in trained:
            assert all(g is not None for g in gs) and max(float(g.abs().max()) for g in gs) > 0
        else:
            assert all(g is None for g in gs), part
    after = m.state_dict()
    changed = {"encoder": [], "lm": [], "projector": []}
    for key, value in before.items():
        part = "encoder" if key.startswith("encoder.") else "lm" if key.startswith("net.lm.") else "projector"
        changed[part].append(not torch.equal(value, after[key]))
    assert {part for part, flags in changed.items() if any(flags)} == trained


def test_init_copies_an_earlier_stage_and_checks_the_network(batch):
    first = tiny(1, seed=1)
    second = tiny(2, seed=2, init=first)
    for key, value in first.state_dict().items():
        assert torch.equal(second.state_dict()[key], value)
    assert second.encoder is first.encoder
    other = CaptionerMethod(
        CaptionerMethodConfig(stage=2, init="x"), CaptionerConfig(**{**NET, "dim": 16}), {"encoder": first.encoder}
    )
    with pytest.raises(GenlabError, match="another model section"):
        other.start_from(first)
    with pytest.raises(GenlabError, match="stage-0 captioner"):
        tiny(0).caption(batch[0][:1])


def test_questions_tokenizer_and_recipes():
    assert questions_of("a red circle to the left of a red square") == [
        ("how many shapes are there?", "two"),
        ("what colour is the circle?", "red"),
        ("what colour is the square?", "red"),
    ]
    assert questions_of("a picture of a large blue triangle")[1:] == [
        ("what colour is the triangle?", "blue"),
        ("what shape is the blue object?", "triangle"),
    ]
    assert questions_of("not a caption") == []
    tok = WordTokenizer(captioner_vocabulary())
    for text in ("two shapes: a red circle and an orange square", "what colour is the circle?"):
        assert tok.decode(tok.encode(text) + [EOS, 5]) == text and not tok.unknown(text)
    _, texts, _ = sample_pairs(200, seed=1)
    assert all(not tok.unknown(t) for t in texts)  # the vocabulary covers the caption grammar
    stages = [load_recipe(ROOT / "recipes" / f"shapes-captioner{s}.yaml") for s in ("-lm", "-stage1", "")]
    assert [r.method.stage for r in stages] == [0, 1, 2]
    assert (
        stages[1].method.init == "runs/shapes-captioner-lm" and stages[2].method.init == "runs/shapes-captioner-stage1"
    )
    assert all(r.model == stages[0].model and r.method.pool == stages[0].method.pool for r in stages)


def test_captioner_keeps_its_tensors_on_the_models_device(batch):
    from tests.test_devices import PretendDevice, pretend

    x, texts = batch
    m = tiny(pool=2).eval()
    tagged = pretend(m, {"x": x[:2]})["x"]
    with PretendDevice():
        m.loss({"x": tagged, "text": texts[:2]})
        m.caption(tagged)
        questions = [None, "what colour is the circle?"]
        m.caption(tagged, questions=questions, temperature=1.0, top_p=0.9, generator=torch.Generator().manual_seed(0))
