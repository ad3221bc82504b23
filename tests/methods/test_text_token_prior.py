"""The Parti-style text-conditional token prior (method.kind text_token_prior): padding invariance, guided KV-cached
sampling against a full recompute, training, and the CLI end to end on tiny runs with the hashing text encoder."""

import json

import pytest
import torch

from genlab.cli import main
from genlab.errors import GenlabError
from genlab.methods.latent import Prompts, Text
from genlab.models.transformer import TextTransformer, TransformerConfig
from genlab.runs import load_run
from genlab.train import Trainer
from tests.t2i_fixtures import HashEncoder, coloured_squares, train_recipe, use_hash_encoder

TRAIN = {"batch_size": 16, "warmup_steps": 1, "log_every": 2, "grid_columns": 2, "lr": 3e-3}
VQ = {"kind": "vq", "channels": 16, "downsample": 2, "num_res_blocks": 1, "codebook_size": 16, "code_dim": 4}
PRIOR = {"kind": "transformer", "dim": 32, "depth": 2, "heads": 2}


def recipe(data, method: dict, model: dict, steps: int, name: str, **extra) -> dict:
    train = {**TRAIN, "steps": steps, "checkpoint_every": steps}
    data = {"kind": "npz", "path": str(data)}
    return {"name": name, "seed": 0, "data": data, "model": model, "method": method, "train": train, **extra}


def prior_method(tokenizer) -> dict:
    return {"kind": "text_token_prior", "tokenizer": str(tokenizer), "text_dropout": 0.2}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(data, tokenizer run, text prior run): 16x16 coloured squares, 4x4 tokens, the hashing text encoder."""
    tmp = tmp_path_factory.mktemp("parti")
    data = coloured_squares(tmp / "squares.npz", n=64)
    with pytest.MonkeyPatch.context() as mp:
        use_hash_encoder(mp)
        vq = train_recipe(recipe(data, {"kind": "vqvae"}, VQ, 4, "vq"), tmp, "vq")
        tree = recipe(data, prior_method(vq), PRIOR, 4, "prior", sample={"guidance_scale": 2.0})
        return data, vq, train_recipe(tree, tmp, "prior")


@pytest.fixture
def hashed(monkeypatch):
    use_hash_encoder(monkeypatch)


def tiny_model() -> TextTransformer:
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=7, seq_len=6, dim=16, depth=2, heads=2)
    return TextTransformer(cfg, HashEncoder.dim).eval()


def hashed_text(texts: list[str]) -> Text:
    emb = HashEncoder().encode(texts)
    return Text(emb.tokens, emb.mask, emb.pooled)


def test_padded_text_tokens_change_nothing():
    model = tiny_model()
    text = hashed_text(["a red square", "a blue square"])
    padded = text.pad_to(text.tokens.shape[1] + 3)
    padded.tokens[:, -3:] = 5.0  # garbage behind the mask must be ignored, not only zeros
    tokens = torch.randint(0, 7, (2, 5))
    assert torch.allclose(model(tokens, text), model(tokens, padded), atol=1e-5)
    unmasked = Text(padded.tokens, torch.ones_like(padded.mask), padded.pooled)
    assert not torch.allclose(model(tokens, text), model(tokens, unmasked), atol=1e-3)  # the mask is what acts


def test_text_changes_the_logits():
    model = tiny_model()
    tokens = torch.randint(0, 7, (1, 5))
    assert not torch.allclose(model(tokens, hashed_text(["a red square"])), model(tokens, hashed_text(["a blue"])))


def test_cached_guided_greedy_sampling_equals_a_full_recompute(runs, hashed):
    method = load_run(runs[2]).method
    text = method.encode_text(["a red square", "a green square", "", "blue"])  # 2 prompts, then what guides them
    scale = 3.0
    tokens = method.draw_tokens(
        2, method.guided_logits(text, scale), generator=None, temperature=0.0, top_k=0, top_p=1.0, callback=None
    ).flatten(1)  # (2, L)
    full = method.model(tokens.repeat(2, 1)[:, :-1], text)  # (4, L, V): every position recomputed, no cache
    cond, uncond = full.chunk(2)
    guided = uncond + scale * (cond - uncond)
    assert torch.equal(guided.argmax(-1), tokens)
    assert not torch.equal(cond.argmax(-1), uncond.argmax(-1))  # guidance had something to act on


def test_a_prompt_samples_the_same_whatever_its_batch(runs, hashed):
    """The other prompts of a batch pad this one's text: the greedy sample must not change."""
    run = load_run(runs[2])
    alone = run.sample(1, prompts=["a red square"], temperature=1e-6).x
    batch = run.sample(2, prompts=["a red square", "a very long and wordy caption of a white square"], temperature=1e-6)
    assert (alone[0] - batch.x[0]).abs().max() < 1e-5  # the same codes (the decoder's batch size may round)


def test_loss_falls_on_captions(runs, hashed, tmp_path):
    from genlab.config import load_recipe
    from tests.conftest import write_recipe

    tree = recipe(runs[0], prior_method(runs[1]), PRIOR, 12, "falls")
    trainer = Trainer(load_recipe(write_recipe(tmp_path / "r.yaml", tree)), tmp_path / "falls")
    losses = [trainer.train_step()["loss"] for _ in range(12)]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.2


def test_sample_settings_prompts_and_negatives(runs, hashed):
    run = load_run(runs[2])
    out = run.sample(3, seed=1)  # no prompts: the default prompt set
    assert out.x.shape == (3, 3, 16, 16) and out.x.min() >= -1 and out.x.max() <= 1 and out.nfe == 16
    a = run.sample(2, prompts=["a red square"] * 2, seed=3, top_k=4, guidance_scale=1.0).x
    assert torch.equal(a, run.sample(2, prompts=["a red square"] * 2, seed=3, top_k=4, guidance_scale=1.0).x)
    neg = run.sample(2, prompts=["a red square"] * 2, negative="blue", seed=3).x
    plain = run.sample(2, prompts=["a red square"] * 2, seed=3).x
    assert not torch.equal(neg, plain)  # guided against "blue" instead of ""
    with pytest.raises(GenlabError, match="--steps does not apply"):
        run.sample(2, steps=4)
    with pytest.raises(GenlabError, match="takes prompts, not --label"):
        run.sample(2, label=1)
    with pytest.raises(GenlabError, match="one prompt .* not labels"):
        run.method.sample(2, cond=torch.tensor([0, 1]))
    with pytest.raises(GenlabError, match="one negative prompt"):
        run.method.sample(2, cond=Prompts(["a", "b"], ["c"]))


def test_generate_and_geneval_end_to_end(runs, hashed, tmp_path, capsys):
    png = tmp_path / "x.png"
    assert main(["generate", "a red circle", "--run", str(runs[2]), "-o", str(png), "--n", "2"]) == 0
    assert png.is_file() and png.stat().st_size > 0
    opts = ["--top-k", "4", "--top-p", "0.9", "--temperature", "0.8", "--guidance-scale", "4", "--negative", "blue"]
    assert main(["generate", "a red circle", "--run", str(runs[2]), "-o", str(tmp_path / "z.png"), *opts]) == 0
    assert main(["generate", "a red circle", "--run", str(runs[2]), "--steps", "4"]) == 2
    assert "--steps does not apply" in capsys.readouterr().err
    out = tmp_path / "ev"
    assert main(["eval", str(runs[2]), "--prompts", "builtin", "--n-per-prompt", "1", "--out", str(out)]) == 0
    report = json.loads((out / "geneval.json").read_text())
    assert 0.0 <= report["rows"]["model"]["overall"] <= 1.0 and report["rows"]["model"]["images"] > 0


def test_wrong_kinds_are_one_line_errors(runs, hashed, tmp_path, capsys):
    data, vq, prior = runs
    assert main(["generate", "a red circle", "--run", str(vq), "-o", str(tmp_path / "y.png")]) == 2
    assert "not text-to-image" in capsys.readouterr().err
    bad = recipe(data, prior_method(prior), PRIOR, 2, "bad")  # the tokenizer is a text prior, not a vqvae run
    assert main(["train", str(_write(tmp_path, bad)), "--out", str(tmp_path / "b"), "--no-progress"]) == 2
    assert "is a 'text_token_prior' run, not a 'vqvae' run" in capsys.readouterr().err
    digits = recipe(data, prior_method(vq), PRIOR, 2, "digits")
    digits["data"] = {"kind": "digits", "size": 16}
    assert main(["train", str(_write(tmp_path, digits)), "--out", str(tmp_path / "d"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "needs captioned data" in err or "tokenizer encodes 3x16x16" in err


def _write(tmp_path, tree):
    import yaml

    path = tmp_path / f"{tree['name']}.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path
