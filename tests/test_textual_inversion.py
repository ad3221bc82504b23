"""Textual inversion: the placeholder hook of the MiniLM encoder, learning one embedding, files and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.cli import main
from genlab.errors import GenlabError
from genlab.methods.latent import text_encoder
from genlab.runs import load_run
from genlab.textual_inversion import Concept, concept_loss, learn, load, save, using, word_concept
from tests.t2i_fixtures import autoencoder_recipe, coloured_squares, t2i_recipe, train_recipe, use_hash_encoder


@pytest.fixture(scope="module")
def minilm_run(tmp_path_factory):
    """A tiny text-to-image run that reads the real MiniLM (placeholders need its word-embedding table)."""
    tmp = tmp_path_factory.mktemp("ti")
    data = coloured_squares(tmp / "squares.npz", n=64)
    with pytest.MonkeyPatch.context() as mp:
        use_hash_encoder(mp)  # the autoencoder reads no text
        ae = train_recipe(autoencoder_recipe(data, steps=2, checkpoint_every=2), tmp, "ae")
    return train_recipe(t2i_recipe(data, ae, steps=4, checkpoint_every=4), tmp, "t2i")


def squares(n: int, colour=(0, 255, 0), size: int = 16) -> torch.Tensor:
    """n images (n, 3, size, size) in [-1, 1] of a solid square of one colour at different places."""
    x = np.zeros((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        x[i, 2 + i : 8 + i, 3 + i : 9 + i] = colour
    return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1


def test_a_placeholder_holding_a_words_embedding_encodes_exactly_as_that_word():
    enc = text_encoder("minilm")
    red = enc.tokenizer("red", add_special_tokens=False)["input_ids"][0]
    plain = enc.encode(["a red circle to the left of a blue square", "red"])
    with enc.concepts({"<c>": enc.input_embeddings().weight[red].clone()}):
        placed = enc.encode(["a <c> circle to the left of a blue square", "<c>"])
    for a, b in zip((plain.tokens, plain.mask, plain.pooled), (placed.tokens, placed.mask, placed.pooled)):
        assert torch.equal(a, b)
    outside = enc.encode(["a <c> circle to the left of a blue square"])  # no concept: "<", "c", ">" again
    assert outside.tokens.shape[1] == plain.tokens.shape[1] + 2


def test_learning_lowers_the_loss_and_leaves_the_model_unchanged(minilm_run):
    run = load_run(minilm_run)
    before = {k: v.clone() for k, v in run.method.state_dict().items()}
    x = squares(3)
    concept = learn(run, x, token="<g>", steps=10, lr=0.05, batch_size=4, init="shape", log_every=5)
    assert concept.token == "<g>" and concept.text_encoder == "minilm" and len(concept.losses) == 2
    start = word_concept(run, "shape", "<g>")
    assert not torch.equal(concept.vector, start.vector)
    assert concept_loss(run, x, concept, draws=48) < concept_loss(run, x, start, draws=48)
    after = run.method.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in run.method.parameters())


def test_save_and_load_round_trip(tmp_path, minilm_run):
    vec = torch.randn(384)
    out = save(Concept("<c>", vec, "minilm", str(minilm_run), 7, "shape", [0.5, 0.25]), tmp_path / "c.safetensors")
    back = load(out)
    assert torch.equal(back.vector, vec) and (back.token, back.text_encoder, back.steps) == ("<c>", "minilm", 7)
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["token"] == "<c>" and info["steps"] == 7 and info["run"] == str(minilm_run)
    assert info["losses"] == [0.5, 0.25]
    with pytest.raises(GenlabError, match=r"\.safetensors"):
        save(back, tmp_path / "c.pt")


def test_clear_errors(tmp_path, minilm_run, digits_run):
    run = load_run(minilm_run)
    with pytest.raises(GenlabError, match="no embedding defines"):
        with using(run, None, prompts=["<c> to the left of a red square"]):
            pass
    other = Concept("<c>", torch.zeros(384), "clip:runs/shapes-clip")
    with pytest.raises(GenlabError, match="made for text encoder 'clip:runs/shapes-clip'"):
        with using(run, [other], prompts=["<c>"]):
            pass
    with pytest.raises(GenlabError, match="at least one image"):
        learn(run, [], steps=1)
    with pytest.raises(GenlabError, match="not text-to-image"):
        learn(digits_run, squares(1), steps=1)
    with pytest.raises(GenlabError, match="<name>"):
        learn(run, squares(1), token="c", steps=1)


def test_cli_learns_a_token_and_generates_with_it(tmp_path, minilm_run, capsys):
    paths = []
    for i, im in enumerate(squares(2)):
        paths.append(tmp_path / f"g{i}.png")
        Image.fromarray(((im.permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()).save(paths[-1])
    emb = tmp_path / "g.safetensors"
    argv = ["textual-inversion", *map(str, paths), "--token", "<g>", "--run", str(minilm_run), "--steps", "3"]
    assert main([*argv, "-o", str(emb), "--no-progress"]) == 0
    assert "<g>" in capsys.readouterr().out and emb.is_file() and emb.with_suffix(".json").is_file()
    gen = ["generate", "<g> to the left of a red square", "--run", str(minilm_run), "--n", "2", "--steps", "2"]
    assert main([*gen, "--embedding", str(emb), "-o", str(tmp_path / "out.npz")]) == 0
    images = np.load(tmp_path / "out.npz")["images"]
    assert images.shape == (2, 16, 16, 3)
    assert main([*gen, "-o", str(tmp_path / "no.png")]) == 2
    assert "no embedding defines" in capsys.readouterr().err and not (tmp_path / "no.png").exists()
    assert main([*argv, "-o", str(tmp_path / "g.pt")]) == 2
