"""The verifier (image x caption -> log-odds) and best-of-K generation (genlab.rerank)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genlab.cli import main
from genlab.data.images import tensor_to_uint8
from genlab.data.shapes import (
    CONTRADICTIONS,
    TEXT_CONTRADICTIONS,
    contradict,
    parse_caption,
    sample_pairs,
    text_contradictions,
)
from genlab.errors import GenlabError
from genlab.methods.verifier import VerifierMethod, VerifierMethodConfig, degrade
from genlab.metrics.geneval import ObjectSpec, Prompt, score_image
from genlab.models.verifier import VerifierConfig
from genlab.rerank import (
    CANDIDATE_STRIDE,
    SELF_TIMES,
    best_of,
    candidates,
    choose,
    judge_evaluations,
    margins,
    references,
    scores,
    self_scores,
    verifier_run,
)
from genlab.runs import load_run
from tests.t2i_fixtures import HashEncoder, tiny_t2i_runs, train_recipe, use_hash_encoder

GRAMMAR = dict(grammar="full", pairs="varied", mix=(0.2, 0.25, 0.25, 0.3), paraphrase=0.5, paraphrase_forms="relations")


def true_of(image: np.ndarray, text: str) -> bool:
    """The suite's checker on the scene a caption states, with no object it does not ask for."""
    scene = parse_caption(text)
    objects = tuple(ObjectSpec(s.kind, s.colour, s.size) for s in scene.shapes)
    counted = len(scene.shapes) > 1 and len(set(scene.shapes)) == 1 and scene.relation is None
    prompt = Prompt(text, "any", objects[:1] if counted else objects, len(objects) if counted else None, scene.relation)
    got = score_image(image, prompt)
    return got["correct"] and not got["extra"]


def test_every_contradiction_is_false_of_the_image_and_the_caption_true():
    x, texts, _ = sample_pairs(400, seed=3, **GRAMMAR)
    method = VerifierMethod.__new__(VerifierMethod)  # only `negatives` is used: no network
    method.cfg = VerifierMethodConfig()
    false, hows = method.negatives(texts, np.random.default_rng(0))
    assert set(hows) == set(CONTRADICTIONS)  # every kind of change is drawn
    for image, text, neg, how in zip(tensor_to_uint8(x), texts, false, hows):
        assert parse_caption(neg) is not None, neg
        assert true_of(image, text), text
        assert not true_of(image, neg), (text, how, neg)


def test_contradict_changes_one_thing():
    scene = parse_caption("a red circle to the left of a blue square")
    rng = np.random.default_rng(0)
    seen = {}
    for _ in range(200):
        how, new = contradict(scene, rng)
        seen[how] = new
    assert seen["relation"].relation == "right of" and seen["relation"].shapes == scene.shapes
    assert [s.colour for s in seen["swap"].shapes] == ["blue", "red"]
    assert len(seen["fewer"].shapes) == 1 and "more" not in seen  # two shapes: never a third
    count = parse_caption("three green triangles")
    assert {len(contradict(count, rng)[1].shapes) for _ in range(200)} >= {2, 3, 4}


def test_every_text_contradiction_is_false_of_the_image():
    """The contradictions made from a caption's words alone (the references of the generator's self-judgement):
    each one the grammar parses is false of a render of the caption, by the suite's checker."""
    x, texts, _ = sample_pairs(400, seed=4, **GRAMMAR)
    hows, parsed, total = set(), 0, 0
    for image, text in zip(tensor_to_uint8(x), texts):
        for how, neg in text_contradictions(text):
            total += 1
            if parse_caption(neg) is None:  # e.g. "on top of" turned to "beneath": not in the training grammar
                continue
            parsed += 1
            hows.add(how)
            assert not true_of(image, neg), (text, how, neg)
    assert hows == set(TEXT_CONTRADICTIONS)  # every kind of change is made
    assert parsed >= 0.9 * total


def test_text_contradictions_change_only_what_changes_the_meaning():
    def got(text: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for how, new in text_contradictions(text):
            out.setdefault(how, []).append(new)
        return out

    rel = got("a white circle on top of an orange square")
    assert rel["relation"] == ["a white circle beneath an orange square"]
    assert rel["colours"] == ["an orange circle on top of a white square"]  # articles follow the new word
    assert len(rel["colour"]) == 2 * 7 and len(rel["kind"]) == 2 * 2
    assert got("a red circle on the left and a blue square on the right")["relation"] == [
        "a red circle on the right and a blue square on the left"
    ]
    same = got("two shapes: a small red circle and a large red circle")  # exchanging sizes says the same
    assert "sizes" not in same and "relation" not in same and "colours" not in same
    assert got("3 red circles")["fewer"] == ["2 red circles"] and got("a single red square")["more"] == [
        "two red squares"
    ]
    assert "fewer" not in got("exactly one blue circle") and "more" not in got("four green squares")
    assert text_contradictions("an apple above a banana") == []


def test_degrade_keeps_shape_and_blurs_towards_the_mean():
    x = torch.zeros(4, 3, 8, 8)
    x[:, :, 4, 4] = 1.0
    y = degrade(x, blur=1.0, noise=0.0, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and (y[:, :, 4, 4] <= 1.0).all() and (y[:, :, 3, 4] >= 0).all()
    assert torch.equal(degrade(x, blur=0.0, noise=0.0), x)


def tiny_verifier(monkeypatch) -> VerifierMethod:
    use_hash_encoder(monkeypatch)
    torch.manual_seed(0)
    return VerifierMethod(VerifierMethodConfig(), VerifierConfig(in_channels=3, image_size=32, width=32, depth=2))


def test_verifier_learns_to_tell_the_caption_from_its_contradiction(monkeypatch):
    method = tiny_verifier(monkeypatch)
    assert method.model.cfg.text_dim == HashEncoder.dim
    x, texts, _ = sample_pairs(64, seed=1, grammar="full", mix=(1.0, 0.0, 0.0, 0.0), uncoloured=0.0)  # one shape
    opt = torch.optim.AdamW(method.parameters(), lr=3e-3)
    losses = []
    for step in range(60):
        torch.manual_seed(step)
        loss, logs = method.loss({"x": x, "text": texts})
        assert set(logs) == {"loss", "ranked", "acc"}
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-10:]) < 0.9 * np.mean(losses[:10])
    false, _ = method.negatives(texts, np.random.default_rng(123))
    ranked = (method.score(x, texts) > method.score(x, false)).float().mean()
    assert ranked >= 0.8  # the true caption outscores its contradiction (chance: 0.5)
    out = method.score(x[:5], texts[:5])
    assert out.shape == (5,) and out.dtype == torch.float32


def test_verifier_errors(monkeypatch):
    method = tiny_verifier(monkeypatch)
    with pytest.raises(GenlabError, match="captioned"):
        method.loss({"x": torch.zeros(2, 3, 32, 32)})
    with pytest.raises(GenlabError, match="one text per image"):
        method.score(torch.zeros(2, 3, 32, 32), ["a red circle"])
    with pytest.raises(GenlabError, match="not generative"):
        method.sample(2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(text-to-image run, verifier run, their data .npz), both tiny, on the 16-pixel coloured squares."""
    tmp = tmp_path_factory.mktemp("rerank")
    data, _, t2i = tiny_t2i_runs(tmp, n=64, ae_steps=2, t2i_steps=2)
    tree = {
        "name": "tiny-verifier",
        "seed": 0,
        "data": {"kind": "npz", "path": str(data)},
        "model": {"kind": "verifier", "width": 16, "depth": 1, "heads": 2},
        "method": {"kind": "verifier"},
        "train": {"steps": 3, "batch_size": 8, "warmup_steps": 1, "log_every": 1, "checkpoint_every": 3},
    }
    with pytest.MonkeyPatch.context() as mp:
        use_hash_encoder(mp)
        return t2i, train_recipe(tree, tmp, "verifier"), data


def test_best_of_keeps_the_candidate_the_verifier_scores_highest(runs, monkeypatch):
    use_hash_encoder(monkeypatch)
    t2i, ver = load_run(runs[0]), verifier_run(runs[1])
    prompts = ["a red square", "a blue square", "a white square"]
    plain = t2i.sample(3, prompts=prompts, seed=5).x
    pool, first = candidates(t2i, prompts, k=3, seed=5)
    assert torch.equal(pool[0], plain) and torch.equal(first.x, plain)  # candidate 0 is plain generation
    assert torch.equal(pool[2], t2i.sample(3, prompts=prompts, seed=5 + 2 * CANDIDATE_STRIDE).x)
    assert torch.equal(candidates(t2i, prompts, k=3, seed=5, start=2)[0], pool[2:])  # a pool extended later
    assert torch.equal(best_of(t2i, prompts, k=1, seed=5).x, plain)
    logits = scores(ver, pool, prompts)
    assert logits.shape == (3, 3)
    picked = best_of(t2i, prompts, k=3, verifier=ver, seed=5)
    chosen, index = choose(pool, logits)
    assert torch.equal(picked.x, chosen) and picked.nfe == 3 * first.nfe
    for i in range(3):
        assert torch.equal(chosen[i], pool[int(logits[:, i].argmax()), i])
        assert logits[index[i], i] == logits[:, i].max()
    # no verifier: the generator judges, by its own error with the prompt vs with each contradiction of it
    own = self_scores(t2i, pool, prompts)
    assert own.shape == (3, 3) and torch.isfinite(own).all()
    assert torch.equal(self_scores(t2i, pool, prompts), own)  # seeded noise: the same scores again
    itself = best_of(t2i, prompts, k=3, seed=5)
    assert torch.equal(itself.x, choose(pool, own)[0])
    refs = 1 + len(references("a red square"))  # 7 other colours, 2 other kinds
    assert refs == 10 and itself.nfe == 3 * first.nfe + 3 * refs * len(SELF_TIMES) == 3 * first.nfe + judge_evaluations(
        prompts, 3
    )


def test_self_scores_weigh_the_prompt_against_its_references(runs, monkeypatch):
    use_hash_encoder(monkeypatch)
    t2i = load_run(runs[0])
    pool, _ = candidates(t2i, ["a red circle to the left of a blue square"] * 2, k=2, seed=1)
    left, right = "a red circle to the left of a blue square", "a red circle to the right of a blue square"
    assert references(left, ("relation",)) == [right] and references(right, ("relation",)) == [left]
    # one reference: the margin of "left" over "right" is minus that of "right" over "left" (same noise, same x_t)
    forward = self_scores(t2i, pool, [left] * 2, contrasts=("relation",))
    backward = self_scores(t2i, pool, [right] * 2, contrasts=("relation",))
    assert torch.allclose(forward, -backward, atol=1e-6) and forward.abs().max() > 0
    # the least margin over several references is at most the margin over each one of them
    both = self_scores(t2i, pool, [left] * 2, contrasts=("relation", "colours"))
    assert (both <= forward + 1e-6).all()
    # no contradiction of the kinds asked: the empty prompt is the reference (the judge without contrasts)
    assert references("a red square", ("relation",)) == [""]
    plain = self_scores(t2i, pool, ["a red square"] * 2, contrasts=())
    assert torch.equal(self_scores(t2i, pool, ["a red square"] * 2, contrasts=("relation",)), plain)


def test_margins_log_ratio_and_difference():
    """The judge's margin from errors (T, K, N, C), column 0 the prompt: the least over the other columns of the mean
    over times of log(e_c / e_prompt) or e_c − e_prompt; NaN columns (an image with fewer references) and columns
    left out are no reference."""
    nan = float("nan")
    e = torch.tensor([[[[1.0, 2.0, 3.0], [2.0, 1.0, nan]]], [[[1.0, 8.0, 3.0], [2.0, 4.0, nan]]]])  # T 2, K 1, N 2
    log = margins(e, "log")
    assert torch.allclose(log, torch.tensor([[np.log(3.0), 0.0]]).float())  # image 0: min(log 4, log 3)
    assert torch.allclose(margins(e, "difference"), torch.tensor([[2.0, 0.5]]))  # image 0: min(4.0, 2.0)
    only_first = torch.tensor([[True, True, False], [True, True, False]])  # image 0 against column 1 alone
    assert torch.allclose(margins(e, "difference", only_first), torch.tensor([[4.0, 0.5]]))
    assert torch.allclose(margins(e, "log", only_first), torch.tensor([[np.log(4.0), 0.0]]).float())
    # the log ratio does not care how large an image's errors are; the difference grows with them
    scaled = e * torch.tensor([1.0, 10.0])[None, None, :, None]
    assert torch.allclose(margins(scaled, "log"), log)
    assert torch.allclose(margins(scaled, "difference"), torch.tensor([[2.0, 5.0]]))
    with pytest.raises(GenlabError, match="margin must be one of"):
        margins(e, "ratio")


def test_self_scores_rank_the_true_prompt_above_a_wrong_one():
    """The shipped default, on real renders, prefers each image's own caption to the caption of another scene of
    the same kind (a diffusion classifier's reading of log p(prompt | image))."""
    from genlab.generate import text_run

    x, texts, _ = sample_pairs(24, split="test", seed=2, grammar="full", mix=(0.5, 0.0, 0.5, 0.0), uncoloured=0.0)
    method = VerifierMethod.__new__(VerifierMethod)
    method.cfg = VerifierMethodConfig()
    false, _ = method.negatives(texts, np.random.default_rng(0))  # one changed attribute or relation each
    pool = x.unsqueeze(0)  # one candidate per image: the scores compare the two prompts instead
    run = text_run()
    true, wrong = (self_scores(run, pool, t, contrasts=())[0] for t in (texts, false))  # both against the empty prompt
    assert (true > wrong).float().mean() >= 0.75
    # against its contradictions (the default): the true caption beats every one of them on most renders
    assert (self_scores(run, pool, texts)[0] > 0).float().mean() >= 0.75


def test_generate_and_eval_best_of_cli(runs, monkeypatch, tmp_path, capsys):
    use_hash_encoder(monkeypatch)
    t2i, ver = (str(r) for r in runs[:2])
    out = tmp_path / "best.png"
    args = ["generate", "a red square", "--run", t2i, "--n", "2", "--best-of", "2", "--verifier", ver, "-o", str(out)]
    assert main(args) == 0 and out.is_file()
    assert "best of 2" in capsys.readouterr().out
    ev = tmp_path / "ev"
    args = ["eval", t2i, "--prompts", "builtin", "--n-per-prompt", "1", "--steps", "1", "--out", str(ev)]
    assert main([*args, "--best-of", "2", "--verifier", ver]) == 0
    import json

    report = json.loads((ev / "geneval.json").read_text())
    assert report["settings"]["best_of"] == 2 and report["settings"]["verifier"] == ver
    assert main([*args, "--best-of", "2"]) == 0  # the generator judges
    assert json.loads((ev / "geneval.json").read_text())["settings"]["verifier"] == "the generator"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--best-of", "0"], "--best-of must be an integer in"),
        (["--best-of", "2", "--verifier", "RUN"], "is a 'latent_flow' run, not a verifier"),
        (["--best-of", "2", "--from-png", "x.png"], "--best-of and --verifier search plain"),
        (["--verifier", "RUN", "--from-png", "x.png"], "--best-of and --verifier search plain"),
        (["--verifier", "RUN"], "--verifier judges the candidates of --best-of K"),
        (
            ["--best-of", "2", "--n", "4097", "-o", "grid.png"],
            "a .png grid holds at most 4096 images",
        ),  # before sampling
    ],
)
def test_best_of_errors(runs, monkeypatch, capsys, extra, message):
    use_hash_encoder(monkeypatch)
    extra = [str(runs[0]) if e == "RUN" else e for e in extra]
    prompt = [] if "--from-png" in extra else ["a red square"]
    assert main(["generate", *prompt, "--run", str(runs[0]), *extra]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("flag, value", [("--best-of", "2"), ("--best-of", "1"), ("--verifier", "RUN")])
def test_eval_best_of_needs_prompts(runs, capsys, flag, value):
    assert main(["eval", str(runs[0]), flag, str(runs[0]) if value == "RUN" else value]) == 2
    assert f"{flag} goes with --prompts" in capsys.readouterr().err


def test_the_rerank_benchmark_judges_read_the_references_of_self_scores(monkeypatch):
    """benchmarks/t2i_rerank.py computes one error pass over every caption and picks each judge's columns: they are
    exactly the prompt and its `references` for that judge's contrasts, on every suite prompt."""
    from tests.conftest import ROOT

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import t2i_rerank

    texts = [p.text for p in t2i_rerank.suite_prompts(1)]
    captions = t2i_rerank.all_captions(texts)
    for contrasts, _ in t2i_rerank.GENERATOR_JUDGES.values():
        cols = t2i_rerank.judge_columns(captions, contrasts)
        for text, row, keep in zip(texts, captions, cols):
            assert [c for c, k in zip(row, keep) if k] == [text, *references(text, contrasts)]
