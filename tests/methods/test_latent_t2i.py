"""Latent text-to-image flow: frozen autoencoder copied in, text dropout to the null text, batched CFG."""

import dataclasses
import shutil

import pytest
import torch
from safetensors.torch import load_file

from genlab.config import recipe_from_dict
from genlab.errors import GenlabError
from genlab.methods.latent import LatentFlowMethod
from genlab.runs import build_method, load_run
from genlab.settings import SampleSettings
from genlab.train import resolve
from tests.t2i_fixtures import t2i_recipe, tiny_t2i_runs, train_recipe, use_hash_encoder


@pytest.fixture(autouse=True)
def hash_encoder(monkeypatch):
    use_hash_encoder(monkeypatch)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tiny_t2i_runs(tmp_path_factory.mktemp("t2i"), n=128, ae_steps=4, t2i_steps=8)


def method_for(data, ae, **method):
    tree = t2i_recipe(data, ae)
    tree["method"].update(method)
    from genlab.data import build_dataset

    recipe = recipe_from_dict(tree, "test")
    return build_method(resolve(recipe, build_dataset(recipe.data)))


def test_text_dropout_gives_the_null_embedding(runs):
    data, ae, _ = runs
    m = method_for(data, ae, text_dropout=1.0)
    text = m.encode_text(["a red square", "a blue square", "a green square"], "cpu")
    dropped, null = m._drop_labels(text), m.null_text(3, "cpu")
    length = null.tokens.shape[1]
    assert torch.equal(dropped.tokens[:, :length], null.tokens) and not dropped.tokens[:, length:].any()
    assert torch.equal(dropped.mask[:, :length], null.mask) and not dropped.mask[:, length:].any()
    assert torch.equal(dropped.pooled, null.pooled)
    kept = method_for(data, ae, text_dropout=0.0)._drop_labels(text)
    assert all(torch.equal(a, b) for a, b in zip(kept, text))


def test_autoencoder_is_frozen_copied_and_the_run_self_contained(runs, tmp_path):
    data, ae, t2i = runs
    ae_method, m = load_run(ae).method, load_run(t2i).method
    assert torch.equal(m.autoencoder.scale_factor, ae_method.ae.scale_factor)
    for (name, p), q in zip(m.autoencoder.named_parameters(), ae_method.ae.parameters()):
        assert torch.equal(p, q), name
    trainable = {id(p) for ps in m.optimizer_groups().values() for p in ps}
    assert not any(id(p) in trainable for p in m.autoencoder.parameters())
    assert trainable == {id(p) for p in m.model.parameters()}
    gen = torch.Generator().manual_seed(0)
    euler = SampleSettings(sampler="euler", steps=2)
    before = m.sample(2, cond=["a red square", "a blue square"], settings=euler, generator=gen).x
    moved = shutil.copytree(t2i, tmp_path / "moved")
    shutil.rmtree(tmp_path / "moved" / "checkpoint" / "state")
    ae_copy = shutil.move(ae, tmp_path / "ae-away")  # the autoencoder's run folder is no longer there
    try:
        m2 = load_run(moved).method
        gen = torch.Generator().manual_seed(0)
        after = m2.sample(2, cond=["a red square", "a blue square"], settings=euler, generator=gen).x
    finally:
        shutil.move(ae_copy, ae)
    assert before.shape == (2, 3, 16, 16) and before.abs().max() <= 1
    torch.testing.assert_close(after, before)


def test_guidance_is_one_batched_call_per_step(runs):
    _, _, t2i = runs
    m = load_run(t2i).method
    sizes = []
    m.model.register_forward_hook(lambda mod, args, out: sizes.append(args[0].shape[0]))
    out = m.sample(3, cond=["a red square"] * 3, settings=SampleSettings(sampler="euler", steps=4, guidance_scale=3.0))
    assert sizes == [6] * 4 and out.nfe == 4  # cond and uncond together, 3 + 3 rows
    sizes.clear()
    m.sample(3, cond=["a red square"] * 3, settings=SampleSettings(sampler="euler", steps=4, guidance_scale=1.0))
    assert sizes == [3] * 4  # s = 1 is the conditional model alone


def test_training_lowers_the_loss_and_needs_captions(runs, tmp_path):
    data, ae, _ = runs
    m = method_for(data, ae, text_dropout=0.0)
    from genlab.data import build_dataset
    from genlab.data.base import Dataset

    d = build_dataset(recipe_from_dict(t2i_recipe(data, ae), "test").data)
    batch = d.batch(torch.arange(32))
    opt = torch.optim.Adam(m.optimizer_groups()["model"], lr=3e-3)
    losses = []
    for _ in range(25):
        torch.manual_seed(0)  # same t and noise every step: the loss must fall on this fixed batch
        loss, _ = m.loss(batch, "model")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]
    with pytest.raises(GenlabError, match="captioned"):
        m.loss(Dataset(x=d.x[:4]).batch(torch.arange(4)), "model")
    tree = t2i_recipe(data, tmp_path / "missing")
    with pytest.raises(GenlabError, match="no such run folder"):
        build_method(recipe_from_dict(tree, "test"))


def test_a_genlab_clip_text_encoder_is_copied_into_the_run(runs, tmp_path):
    """text_encoder: clip:RUN is a frozen part: retraining (or deleting) that CLIP run later changes nothing."""
    data, ae, _ = runs
    clip_tree = {
        "name": "tiny-clip",
        "seed": 0,
        "data": {"kind": "npz", "path": str(data)},
        "model": {"kind": "clip", "patch": 8, "width": 16, "image_depth": 1, "text_depth": 1, "heads": 2},
        "method": {"kind": "clip"},
        "train": {"steps": 2, "batch_size": 16, "warmup_steps": 0, "log_every": 1, "checkpoint_every": 2},
    }
    clip_run = train_recipe(clip_tree, tmp_path, "clip")
    tree = t2i_recipe(data, ae, steps=2, checkpoint_every=2)
    tree["method"]["text_encoder"] = f"clip:{clip_run}"
    t2i = train_recipe(tree, tmp_path, "t2i-clip")
    prompts, euler = ["a red square", "a blue square"], SampleSettings(sampler="euler", steps=2)
    before = load_run(t2i).method.sample(2, cond=prompts, settings=euler, generator=torch.Generator().manual_seed(0))
    assert any(k.startswith("text_clip.") for k in load_file(str(t2i / "checkpoint" / "ema.safetensors")))
    shutil.rmtree(clip_run)  # retrain the CLIP with another seed into the same folder
    train_recipe({**clip_tree, "seed": 1}, tmp_path, "clip")
    after = load_run(t2i).method.sample(2, cond=prompts, settings=euler, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(after.x, before.x)


def test_method_init_fine_tunes_a_text_to_image_run(runs, tmp_path):
    """method.init: the new run starts from the init run's DiT (EMA weights) in its latent space; the folder
    reloads on its own, with the autoencoder named or taken from the init run (autoencoder: "")."""
    data, ae, t2i = runs
    image = load_run(t2i).method
    for autoencoder in (str(ae), ""):
        m = method_for(data, ae, init=str(t2i), autoencoder=autoencoder)
        for (name, p), q in zip(m.model.named_parameters(), image.model.parameters()):
            assert torch.equal(p, q), name
        for p, q in zip(m.autoencoder.parameters(), image.autoencoder.parameters()):
            assert torch.equal(p, q)
    tree = t2i_recipe(data, ae, steps=2, checkpoint_every=2)
    tree["method"]["init"] = str(t2i)
    tuned = train_recipe(tree, tmp_path, "tuned")
    run = load_run(tuned)
    assert run.recipe.method.frozen["init"]["name"] == "tiny-t2i" and run.step == 2
    moved = image.model.state_dict()
    assert any(not torch.equal(v, moved[k]) for k, v in run.method.model.state_dict().items())  # it trained on
    other = t2i_recipe(data, ae)
    other["model"]["width"] = 64
    other["method"]["init"] = str(t2i)
    with pytest.raises(GenlabError, match="another DiT than this recipe's model section"):
        build_method(resolve(recipe_from_dict(other, "t"), build_dataset_of(other)))
    recipe = recipe_from_dict(t2i_recipe(data, ae), "t")
    with pytest.raises(GenlabError, match="reads text with"):
        cfg = dataclasses.replace(recipe.method, init=str(t2i), text_encoder="clip:x")
        LatentFlowMethod(cfg, recipe.model, {"init": image})
    with pytest.raises(GenlabError, match='method.autoencoder is ""'):
        method_for(data, ae, autoencoder="")


def test_method_grow_starts_a_deeper_dit_computing_what_init_did(runs):
    """method.grow: init's blocks spread over a deeper DiT, the new ones the identity, so the grown DiT's output is
    init's on any input; trained parameters of init sit in blocks i·depth // theirs; a shallower depth is refused."""
    data, ae, t2i = runs
    image = load_run(t2i).method
    have = len(image.model.blocks)
    tree = t2i_recipe(data, ae)
    tree["model"]["depth"] = 2 * have + 1
    tree["method"].update(init=str(t2i), grow=True)
    m = build_method(resolve(recipe_from_dict(tree, "t"), build_dataset_of(tree)))
    assert len(m.model.blocks) == 2 * have + 1
    for i, block in enumerate(image.model.blocks):
        ours = m.model.blocks[i * (2 * have + 1) // have].state_dict()
        assert all(torch.equal(v, ours[k]) for k, v in block.state_dict().items())
    gen = torch.Generator().manual_seed(0)
    side = image.model.cfg.image_size
    x = torch.randn(3, image.model.cfg.in_channels, side, side, generator=gen)
    t = torch.rand(3, generator=gen)
    text = image.encode_text(["a red square", "a blue circle left of a green square", ""], "cpu")
    with torch.no_grad():
        torch.testing.assert_close(m.model(x, t, text), image.model(x, t, text), rtol=1e-5, atol=1e-6)
    tree["model"]["depth"] = have + 1
    tree["method"]["grow"] = False
    with pytest.raises(GenlabError, match="method.grow: true"):
        build_method(resolve(recipe_from_dict(tree, "t"), build_dataset_of(tree)))
    if have > 1:
        tree["model"]["depth"], tree["method"]["grow"] = have - 1, True
        with pytest.raises(GenlabError, match="more than model.depth"):
            build_method(resolve(recipe_from_dict(tree, "t"), build_dataset_of(tree)))


def build_dataset_of(tree: dict):
    from genlab.data import build_dataset

    return build_dataset(recipe_from_dict(tree, "t").data)
