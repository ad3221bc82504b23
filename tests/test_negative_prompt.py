"""Negative prompts: CFG against a negative prompt's prediction instead of the null text (shipped checkpoint)."""

import pytest
import torch

from genlab.cli import main
from genlab.errors import GenlabError
from genlab.generate import generate, text_run
from genlab.methods.latent import Prompts
from genlab.runs import load_run

FAST = {"steps": 2, "seed": 3}


@pytest.fixture(scope="module")
def run():
    return text_run()


def test_empty_negative_is_plain_cfg_exactly(run):
    plain = run.generate("a circle", 3, **FAST).x
    assert torch.equal(run.generate("a circle", 3, negative="", **FAST).x, plain)
    assert torch.equal(generate("a circle", n=3, run=run, negative="", best_of=1, **FAST).x, plain)


@pytest.mark.parametrize("sampler", ["heun", "dpmpp_2m"])
def test_a_negative_changes_the_output(run, sampler):
    plain = run.generate("a circle", 2, sampler=sampler, **FAST).x
    neg = run.generate("a circle", 2, negative="red", sampler=sampler, **FAST)
    assert (neg.x - plain).abs().max() > 0.05
    assert neg.cond == ["a circle"] * 2  # the samples record the positive prompts


def test_negative_is_per_prompt_and_guided_once_per_step(run):
    """Per-row negatives: row i of a mixed batch equals that row sampled alone (on the ODE: the default's SDE draws
    its noise per batch); one batched call per step."""
    prompts, negs, ode = ["a circle", "a square"], ["red", ""], {**FAST, "sampler": "heun"}
    both = run.sample(2, prompts=prompts, negative=negs, **ode).x
    first = run.sample(1, prompts=prompts[:1], negative="red", **ode).x
    torch.testing.assert_close(both[:1], first, atol=1e-4, rtol=0)
    method = run.method
    net, c, null = method.guidance_inputs(2, Prompts(prompts, ["red", "red"]), "cpu")
    assert c.tolist() == [0, 1] and null.tolist() == [3, 3]  # rows: prompts, null "", "red"


def test_guidance_formula(run):
    """The guided prediction is eps(neg) + s·(eps(pos) − eps(neg)) with the two halves from one table."""
    from genlab.samplers.guidance import guided

    method = run.method
    net, c, null = method.guidance_inputs(1, Prompts(["a circle"], ["red"]), "cpu")
    x, t = torch.randn(1, *method.shape, generator=torch.Generator().manual_seed(0)), torch.full((1,), 0.5)
    with torch.no_grad():
        out = guided(net, c, scale=3.0, null_cond=null)(x, t)
        pos = net(x, t, c)
        neg = method.net(x, t, method.encode_text(["red"], "cpu"))
    torch.testing.assert_close(out, neg + 3.0 * (pos - neg), atol=1e-4, rtol=0)


def test_negative_errors(run, digits_run):
    with pytest.raises(GenlabError, match="not text-conditional"):
        load_run(digits_run).sample(2, negative="red")
    with pytest.raises(GenlabError, match="guidance-scale"):
        run.generate("a circle", 2, negative="red", guidance_scale=1.0, steps=1)
    with pytest.raises(GenlabError, match="one per sample"):
        run.sample(2, prompts=["a", "b"], negative=["red"], steps=1)


def test_cli_negative(tmp_path, digits_run, capsys):
    out = tmp_path / "neg.png"
    assert main(["generate", "a circle", "--negative", "red", "--n", "2", "--steps", "2", "-o", str(out)]) == 0
    assert out.is_file() and "negative 'red'" in capsys.readouterr().out
    assert main(["generate", "a circle", "--negative", "red", "--run", str(digits_run), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not text-to-image" in err and len(err.splitlines()) == 1
