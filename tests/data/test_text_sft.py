"""Supervised fine-tuning data and `method.init`: instruction windows (genlab.data.text, format: instructions),
their prompt_length through Dataset.batch and the trainer to the methods' masking, and starting from a run."""

from __future__ import annotations

import json

import pytest
import torch

from genlab.config import load_recipe
from genlab.data.text import TextConfig, build_text, instruction_pairs, split_names, text_tokenizer
from genlab.errors import GenlabError
from genlab.runs import load_run
from genlab.settings import SampleSettings
from genlab.train import Trainer, train
from tests.conftest import write_recipe

WORDS = ("apple", "zebra", "cloud", "river", "stone", "maple", "tiger", "lemon", "piano", "ocean", "amber", "delta")


@pytest.fixture
def corpus(tmp_path):
    """12 documents (one per JSON line, from line 10), each 3 paragraphs about its own word: the response depends
    on the prompt."""
    path = tmp_path / "c.jsonl"
    lines = [json.dumps({"text": f"{w} {w} is {w}.\n\nthe {w} and {w}.\n \n{w}, {w} {w}."}) for w in WORDS]
    path.write_text("\n" * 9 + "\n".join(lines) + "\n")  # lines 10..21: every name "c.jsonl#NN" is as long
    return path


def cfg(path, **kw) -> TextConfig:
    return TextConfig(source=str(path), format="instructions", **{"seq_len": 40, "merges": 30, **kw})


def test_instruction_windows_hold_prompt_then_response(corpus):
    c = cfg(corpus)
    data, tok = build_text(c), text_tokenizer(c)
    pairs = instruction_pairs(c.source, "train", c.seed)
    names = split_names(c.source, "train", c.seed)
    assert len(pairs) == 3 * len(names) == len(data) and data.x.dtype == torch.int64
    assert pairs[0][0] == f"Explain {names[0]}:\n" and pairs[0][1] == f"{WORDS[0]} {WORDS[0]} is {WORDS[0]}."
    for row, p, (prompt, response) in zip(data.x.tolist(), data.prompt_length.tolist(), pairs):
        assert row[:p] == tok.encode(prompt)
        body = tok.encode(response)
        assert row[p : p + len(body)] == body and set(row[p + len(body) :]) == {tok.eos_id}  # <eos>, then padding
    # the split is by document, as for plain windows: no test document's prompt among the train prompts
    test_prompts = {p for p, _ in instruction_pairs(c.source, "test", c.seed)}
    assert test_prompts and not test_prompts & {p for p, _ in pairs}
    # bytes per token counts the response and its <eos>, not the padding
    kept = sum(len(tok.encode(r)) + 1 for _, r in pairs)
    assert data.bytes_per_token == pytest.approx(sum(len(r.encode()) for _, r in pairs) / kept)
    batch = data.batch(torch.tensor([2, 0]))
    assert torch.equal(batch["prompt_length"], data.prompt_length[[2, 0]])


def test_long_responses_are_cut_and_prompts_that_fill_the_window_dropped(tmp_path, corpus):
    data = build_text(cfg(corpus, seq_len=20))
    eos = text_tokenizer(cfg(corpus)).eos_id
    assert data.x.shape[1] == 20 and (data.prompt_length < 20).all()
    assert ((data.x == eos).sum(1) == 0).any()  # a response cut at the window's end keeps no <eos>
    with pytest.raises(GenlabError, match="raise data.seq_len"):
        build_text(cfg(corpus, seq_len=4))
    tree = tiny_tree(corpus, "mdlm")
    tree["data"]["format"] = "chat"
    with pytest.raises(GenlabError, match="format"):
        load_recipe(write_recipe(tmp_path / "r.yaml", tree))


def tiny_tree(corpus, kind: str, **method) -> dict:
    return {
        "name": f"sft-{kind}",
        "seed": 0,
        "data": {"kind": "text", "source": str(corpus), "seq_len": 40, "merges": 30},
        "model": {"kind": "lm", "dim": 32, "depth": 2, "heads": 2},
        "method": {"kind": kind, **method},
        "train": {"steps": 3, "batch_size": 16, "warmup_steps": 1, "lr": 3e-3, "ema_decay": 0.5, "log_every": 1},
    }


@pytest.fixture
def pretrained(tmp_path, corpus):
    """A tiny mdlm run on the plain windows of the corpus (3 steps: only its weights matter)."""
    train(load_recipe(write_recipe(tmp_path / "pre.yaml", tiny_tree(corpus, "mdlm"))), tmp_path / "pre", progress=False)
    return tmp_path / "pre"


def test_sft_never_masks_prompt_tokens_end_to_end(tmp_path, corpus, pretrained):
    tree = tiny_tree(corpus, "mdlm", init=str(pretrained), loss_estimator="count")
    tree["data"]["format"] = "instructions"
    trainer = Trainer(load_recipe(write_recipe(tmp_path / "sft.yaml", tree)), tmp_path / "sft")
    batches, seen = [], []
    batch_of = trainer.data.batch
    trainer.data.batch = lambda idx: batches.append(batch_of(idx)) or batches[-1]
    hook = trainer.method.model.register_forward_pre_hook(lambda mod, args: seen.append(args[0].clone()))
    for _ in range(3):
        trainer.train_step()
    hook.remove()
    x = torch.cat([b["x"] for b in batches])
    prompt = torch.arange(40)[None] < torch.cat([b["prompt_length"] for b in batches])[:, None]
    x_t = torch.cat(seen)
    mask_id = trainer.method.mask_id
    assert torch.equal(x_t[prompt], x[prompt]) and (x_t[prompt] != mask_id).all()  # prompts always visible
    assert (x_t[~prompt] == mask_id).any() and (x_t[~prompt] != mask_id).any()  # responses partly masked


def test_init_copies_the_pretrained_weights_and_refuses_a_mismatch(tmp_path, corpus, pretrained):
    tree = tiny_tree(corpus, "mdlm", init=str(pretrained))
    tree["data"]["format"] = "instructions"
    trainer = Trainer(load_recipe(write_recipe(tmp_path / "sft.yaml", tree)), tmp_path / "sft")
    theirs = load_run(pretrained).method.model.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in trainer.method.model.state_dict().items())
    assert "init" in trainer.recipe.method.frozen  # recorded, so the saved run rebuilds without the folder
    other = {**tree, "model": {**tree["model"], "dim": 16}}
    with pytest.raises(GenlabError, match="another backbone"):
        Trainer(load_recipe(write_recipe(tmp_path / "bad.yaml", other)), tmp_path / "bad")
    wrong_kind = tiny_tree(corpus, "ar_lm", init=str(pretrained))
    with pytest.raises(GenlabError, match="not a 'ar_lm' run"):
        Trainer(load_recipe(write_recipe(tmp_path / "bad2.yaml", wrong_kind)), tmp_path / "bad2")
    missing = tiny_tree(corpus, "mdlm", init=str(tmp_path / "nowhere"))
    with pytest.raises(GenlabError, match="no such run folder"):
        Trainer(load_recipe(write_recipe(tmp_path / "bad3.yaml", missing)), tmp_path / "bad3")


@torch.no_grad()
def response_logp(method, x: torch.Tensor, prompt_length: torch.Tensor) -> float:
    """Mean log p_θ(response token | prompt, every response token masked) over the response tokens."""
    resp = torch.arange(x.shape[1])[None] >= prompt_length[:, None]
    logp = method.logits(torch.where(resp, method.mask_id, x)).log_softmax(-1).gather(-1, x[..., None])[..., 0]
    return float(logp[resp].mean())


def test_fine_tuned_mdlm_conditions_on_the_prompt(tmp_path, corpus, pretrained):
    tree = tiny_tree(corpus, "mdlm", init=str(pretrained), loss_estimator="count")
    tree["data"]["format"] = "instructions"
    tree["train"].update(steps=300, log_every=100, checkpoint_every=300)
    torch.manual_seed(0)
    train(load_recipe(write_recipe(tmp_path / "sft.yaml", tree)), tmp_path / "sft", progress=False)
    method = load_run(tmp_path / "sft").method  # rebuilt from the recorded init recipe, then its own weights
    data = build_text(cfg(corpus))
    # the same responses after each document's own prompt, and after another document's prompt of equal length
    swapped, n = data.x.clone(), len(data)
    for i in range(n):
        p = int(data.prompt_length[i])
        assert int(data.prompt_length[(i + 3) % n]) == p  # every prompt has as many tokens
        swapped[i, :p] = data.x[(i + 3) % n, :p]  # 3 paragraphs a document: the next document's prompt
    right = response_logp(method, data.x, data.prompt_length)
    wrong = response_logp(method, swapped, data.prompt_length)
    assert right > wrong + 0.3, (right, wrong)
    # the sampler keeps each document's prompt and, most of the time, writes that document's word
    rows, p = data.x[::3], int(data.prompt_length[0])
    greedy = SampleSettings(steps=40 - p, temperature=0.0)
    out = method.sample(len(rows), prompt_ids=rows[:, :p], settings=greedy, remasking="low_confidence")
    assert torch.equal(out.x[:, :p], rows[:, :p])
    words = [t.split()[0] for t in method.decode_text(rows[:, p:])]
    hits = [w in t for w, t in zip(words, method.decode_text(out.x[:, p:]))]
    assert sum(hits) >= len(hits) / 2, (words, method.decode_text(out.x[:, p:]))
