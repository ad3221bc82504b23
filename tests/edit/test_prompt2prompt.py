"""Prompt-to-prompt: attention control on tiny random DiTs (cross-attention and MM-DiT), token alignment and
re-weighting, and `genlab generate --edit-to` on the shipped checkpoint."""

import dataclasses

import pytest
import torch
from PIL import Image
from torch import Tensor

from genlab.cli import main
from genlab.edit.prompt2prompt import (
    AttentionControl,
    align_tokens,
    controlled,
    make_control,
    parse_reweight,
    prompt2prompt,
    word_positions,
)
from genlab.errors import GenlabError
from genlab.generate import text_run
from genlab.methods.latent import Text, stack_text
from genlab.models.dit import DiT, DiTConfig
from genlab.samplers import guided, sample

FAST = {"steps": 2, "seed": 3}


def tiny_dit(mode: str) -> DiT:
    """A micro DiT with every weight random (adaLN-Zero would make an untrained one output zeros), float64."""
    torch.manual_seed(0)
    cfg = DiTConfig(in_channels=2, image_size=4, num_classes=0, size="micro", text_dim=6, text_mode=mode)
    model = DiT(cfg).double()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model


def text(length: int, seed: int) -> Text:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(1, length, 6, generator=g, dtype=torch.float64)
    return Text(tokens, torch.ones(1, length, dtype=torch.bool), tokens.mean(1))


def sample_pairs(model: DiT, prompts: list[Text], noise: Tensor, *, scale: float, control=None) -> Tensor:
    """Guided Heun sampling of rows `prompts` (each 1 row) from `noise`, one batched call per evaluation."""
    n = len(prompts)
    table = stack_text([*prompts, text(2, 99)])  # rows: prompts, null

    def net(x_t, t, idx):
        return model(x_t, t, table.take(idx))

    idx = torch.arange(n)
    fn = guided(net, idx, scale=scale, null_cond=torch.full_like(idx, n))
    if control is not None:
        fn = control.timed(fn)
    with controlled(model, control) if control is not None else torch.no_grad():
        return sample(fn, noise, sampler="heun", steps=4, path="rectified", target="flow")


@pytest.mark.parametrize("mode", ["cross", "mmdit"])
@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_identical_prompts_reproduce_plain_sampling(mode, scale):
    """Injection from a source row identical to the edited row changes nothing (float64: within 1e-10)."""
    model, prompt = tiny_dit(mode), text(5, 1)
    noise = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    plain = sample_pairs(model, [prompt], noise, scale=scale)
    control = AttentionControl(1, list(range(5)), [True] * 5, [1.0] * 5, share=1.0)
    both = sample_pairs(model, [prompt, prompt], torch.cat([noise, noise]), scale=scale, control=control)
    torch.testing.assert_close(both, torch.cat([plain, plain]), atol=1e-10, rtol=0)
    assert all(layer.control is None for layer in model.modules() if hasattr(layer, "control"))  # uninstalled


@pytest.mark.parametrize("mode", ["cross", "mmdit"])
def test_injection_moves_the_edit_towards_the_source(mode):
    """With different prompts, sharing all steps changes the edit, and the source rows are never touched."""
    model, source, target = tiny_dit(mode), text(5, 1), text(5, 2)
    noise = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    pair, rows = [source, target], torch.cat([noise, noise])
    naive = sample_pairs(model, pair, rows, scale=3.0)
    control = AttentionControl(1, list(range(5)), [True] * 5, [1.0] * 5, share=1.0)
    p2p = sample_pairs(model, pair, rows, scale=3.0, control=control)
    torch.testing.assert_close(p2p[:1], naive[:1], atol=1e-10, rtol=0)
    assert (p2p[1:] - naive[1:]).abs().max() > 1e-3
    off = AttentionControl(1, list(range(5)), [True] * 5, [1.0] * 5, share=0.0)
    torch.testing.assert_close(sample_pairs(model, pair, rows, scale=3.0, control=off), naive, atol=1e-10, rtol=0)


def test_rewrite_swaps_refines_and_reweights():
    probs = torch.rand(4, 2, 3, 5)  # (2 pairs: source rows 0-1, edited rows 2-3), heads, queries, text keys
    control = AttentionControl(2, [0, 1, 0, 3, 4], [True, True, False, True, True], [1, 1, 2.0, 1, 1], share=1.0)
    out = control(probs, None)
    assert torch.equal(out[:2], probs[:2])
    assert torch.equal(out[2:, ..., [0, 1, 3, 4]], probs[:2, ..., [0, 1, 3, 4]])  # aligned tokens: the source's
    assert torch.equal(out[2:, ..., 2], 2 * probs[2:, ..., 2])  # a new token keeps its own map, re-weighted
    joint = torch.softmax(torch.randn(4, 2, 3 + 5, 3 + 5), dim=-1)  # MM-DiT: [3 image, 5 text] tokens
    out = AttentionControl(2, list(range(5)), [True] * 5, [1.0] * 5, share=1.0)(joint, 3)
    assert torch.equal(out[2:, :, :3, 3:], joint[:2, :, :3, 3:])  # image queries read the source's text block
    torch.testing.assert_close(out[2:, :, :3].sum(-1), torch.ones(2, 2, 3))  # rows still sum to one
    assert torch.equal(out[2:, :, 3:], joint[2:, :, 3:])  # text queries untouched


def test_align_tokens():
    assert align_tokens([1, 5, 7, 2], [1, 6, 7, 2], "swap") == ([0, 1, 2, 3], [True] * 4)
    assert align_tokens([1, 5, 7, 2], [1, 8, 8, 7, 2], "swap") == ([0, 1, 1, 2, 3], [True] * 5)  # 1 -> 2 tokens
    assert align_tokens([1, 7, 2], [1, 9, 7, 2], "refine") == ([0, 0, 1, 2], [True, False, True, True])
    assert align_tokens([1, 5, 7, 2], [1, 6, 7, 2], "refine")[1] == [True, False, True, True]


@pytest.fixture(scope="module")
def run():
    return text_run()


def test_word_positions_and_modes(run):
    enc = run.method.text_encoder
    ids = enc.tokenize(["a small red circle"])[0]  # [CLS] a small red circle [SEP]
    assert word_positions(enc, ids, "red") == [3] and word_positions(enc, ids, "blue") == []
    control = make_control(run.method, "a circle", "a small red circle", n=1)  # more words: refine
    assert control.use.tolist() == [True, True, False, False, True, True]
    assert parse_reweight(["red=2", "circle=0.5"]) == {"red": 2.0, "circle": 0.5}


def test_shipped_identical_prompts_and_reweight_one(run):
    plain = run.generate("a red circle", 2, **FAST, sampler="heun").x  # the ODE prompt-to-prompt runs on
    same = prompt2prompt("a red circle", "a red circle", run=run, n=2, share=1.0, **FAST)
    torch.testing.assert_close(same.x, torch.cat([plain, plain]), atol=1e-4, rtol=0)
    edit = prompt2prompt("a red circle", "a blue circle", run=run, n=2, **FAST).x
    one = prompt2prompt("a red circle", "a blue circle", run=run, n=2, weights={"blue": 1.0}, **FAST).x
    assert torch.equal(one, edit)  # factor 1 is a no-op, bit for bit
    more = prompt2prompt("a red circle", "a blue circle", run=run, n=2, weights={"blue": 3.0}, **FAST).x
    assert (more[2:] - edit[2:]).abs().max() > 1e-3 and torch.equal(more[:2], edit[:2])


def test_a_stochastic_recipe_sampler_edits_on_its_ode(run):
    def sampling(**changes):  # the run with its recipe's sample section changed (a copy: the fixture is shared)
        return run.replace(recipe=dataclasses.replace(run.recipe, sample=run.recipe.sample.replace(**changes)))

    sde, ode = sampling(sampler="euler_maruyama", steps=4), sampling(sampler="heun", steps=4)
    got = prompt2prompt("a red circle", "a blue circle", run=sde, n=2, seed=3)
    torch.testing.assert_close(got.x, prompt2prompt("a red circle", "a blue circle", run=ode, n=2, seed=3).x)


def test_errors(run):
    with pytest.raises(GenlabError, match="not a word"):
        prompt2prompt("a red circle", "a blue circle", run=run, weights={"green": 2.0}, **FAST)
    with pytest.raises(GenlabError, match="share"):
        prompt2prompt("a red circle", "a blue circle", run=run, share=1.5, **FAST)
    with pytest.raises(GenlabError, match="deterministic"):
        prompt2prompt("a red circle", "a blue circle", run=run, sampler="euler_maruyama", **FAST)
    with pytest.raises(GenlabError, match="WORD=FACTOR"):
        parse_reweight(["red"])


def test_cli_generate_edit_to(tmp_path, capsys):
    out = tmp_path / "p2p.png"
    args = ["generate", "a red circle", "--edit-to", "a blue circle", "--n", "3", "--steps", "2", "-o", str(out)]
    assert main(args) == 0
    assert "edits to 'a blue circle'" in capsys.readouterr().out
    width, height = Image.open(out).size
    assert width > height  # one row of 3 sources above one row of 3 edits
    assert main(["generate", "a red circle", "--reweight", "blue=2", "--steps", "2", "-o", str(out)]) == 2
    assert "not a word" in capsys.readouterr().err
