"""CycleGAN: the image history buffer, the cycle and identity terms, losses that fall, the translate contract,
held-out metrics and a bit-identical resume (the history lives in checkpointed buffers)."""

import copy

import pytest
import torch
from torch import nn

from genlab.config import load_recipe, recipe_from_dict
from genlab.data import build_dataset
from genlab.errors import GenlabError
from genlab.methods.cyclegan import CycleGANConfig, CycleGANMethod, HistoryBuffer, domain_scores
from genlab.models.patchgan import PatchGANConfig
from tests.ar_helpers import assert_resume_identical
from tests.conftest import write_recipe

TINY_CYCLEGAN = {
    "name": "tiny-cyclegan",
    "seed": 0,
    "data": {"kind": "unpaired", "size": 32, "n": 32, "n_test": 16},
    "model": {"kind": "patchgan", "channels": 4, "disc_channels": 4, "dropout": 0.0},
    "method": {"kind": "cyclegan", "history": 6, "classifier_steps": 5},
    "train": {
        "steps": 5,
        "batch_size": 4,
        "warmup_steps": 0,
        "log_every": 1,
        "checkpoint_every": 10,
        "grid_columns": 2,
    },
}


def tiny(**cfg) -> CycleGANMethod:
    torch.manual_seed(0)
    model = PatchGANConfig(in_channels=3, image_size=32, channels=8, disc_channels=8, dropout=0.0)
    return CycleGANMethod(CycleGANConfig(**cfg), model)


@pytest.fixture(scope="module")
def domains():
    """(a, b): 16 patches of each domain, (16, 3, 32, 32)."""
    data = build_dataset(recipe_from_dict(copy.deepcopy(TINY_CYCLEGAN), "test").data)
    return data.x[:16], data.y[:16]


def test_history_fills_then_shows_stored_fakes_half_the_time():
    torch.manual_seed(0)
    buf = HistoryBuffer(4, (1, 2, 2))
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    assert torch.equal(buf.query(first), first) and int(buf.count) == 4  # while filling: the new fakes, stored
    assert torch.equal(buf.images, first)
    stored, swaps = set(range(4)), 0
    for step in range(200):  # fakes valued 100 + ...: a stored one is recognisable by its value
        new = (100.0 + 4 * step + torch.arange(4.0)).view(4, 1, 1, 1).expand(4, 1, 2, 2)
        shown = buf.query(new)[:, 0, 0, 0].tolist()
        for value, fresh in zip(shown, new[:, 0, 0, 0].tolist()):
            if value != fresh:  # an older fake, which must have been in the history (stored before, or earlier in
                assert value in stored  # this batch: each fake enters the history as soon as it is seen)
                swaps += 1
            stored.add(fresh)
        stored = set(buf.images[:, 0, 0, 0].tolist())
    assert int(buf.count) == 4
    assert abs(swaps / 800 - 0.5) < 0.06, swaps  # probability 1/2 per fake


def test_history_is_deterministic_under_a_seed_and_optional():
    fakes = [torch.randn(3, 3, 4, 4, generator=torch.Generator().manual_seed(i)) for i in range(5)]

    def run(seed):
        torch.manual_seed(seed)
        buf = HistoryBuffer(4, (3, 4, 4))
        return [buf.query(f) for f in fakes], buf.images.clone()

    (out1, hist1), (out2, hist2), (out3, _) = run(0), run(0), run(1)
    assert all(torch.equal(a, b) for a, b in zip(out1, out2)) and torch.equal(hist1, hist2)
    assert not all(torch.equal(a, b) for a, b in zip(out1, out3))
    off = HistoryBuffer(0, (3, 4, 4))
    assert off.query(fakes[0]) is fakes[0]


class Same(nn.Module):
    def forward(self, x, *, generator=None):
        return x


def test_cycle_and_identity_terms_vanish_for_identity_generators(domains):
    a, b = domains
    method = tiny()
    method.ab.generator, method.ba.generator = Same(), Same()
    terms = method.generator_terms(a, b)
    assert float(terms["cycle"]) == 0.0 and float(terms["identity"]) == 0.0
    assert float(terms["gan"]) > 0
    assert float(tiny(identity_weight=0.0).generator_terms(a, b)["identity"]) == 0.0


def test_generator_loss_is_the_weighted_sum(domains):
    a, b = domains
    method = tiny(cycle_weight=7.0, identity_weight=0.3)
    torch.manual_seed(0)
    loss, logs = method.loss({"x": a, "y": b}, "gen")
    expected = logs["gan"] + 7.0 * logs["cycle"] + 0.3 * 7.0 * logs["identity"]
    torch.testing.assert_close(loss.detach(), expected)


@pytest.mark.parametrize("group", ["gen", "disc"])
def test_loss_falls_with_the_other_networks_fixed(domains, group):
    a, b = domains[0][:8], domains[1][:8]
    method = tiny(history=0)
    opt = torch.optim.Adam(method.optimizer_groups()[group], lr=2e-3, betas=(0.5, 0.999))
    losses = []
    for _ in range(12):
        loss, info = method.loss({"x": a, "y": b}, group)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(info[f"loss/{group}"]))
    assert losses[-1] < 0.8 * losses[0], losses


def test_translate_contract(domains):
    a, b = domains
    method = tiny()
    assert list(method.optimizer_groups()) == ["gen", "disc"]
    assert torch.equal(method.degrade(a)["source"], a)
    out = method.translate(a[:3])
    assert out.x.shape == (3, 3, 32, 32) and out.nfe == 1
    torch.testing.assert_close(method.translate(a[:3, :1]).x, out.x)  # a grey image is R = G = B
    assert method.translate_back(b[:2]).x.shape == (2, 3, 32, 32)
    rows = method.preview({"x": a[:2], "y": b[:2]})
    assert rows.shape == (2, 6, 3, 32, 32) and torch.equal(rows[:, 0], a[:2]) and torch.equal(rows[:, 3], b[:2])
    with pytest.raises(GenlabError, match="--resize"):
        method.translate(torch.zeros(1, 3, 16, 16))
    with pytest.raises(GenlabError, match="genlab edit"):
        method.sample(2)
    with pytest.raises(GenlabError, match="unpaired"):
        method.loss({"x": a}, "gen")


def test_heldout_metrics_report_cycle_psnr_and_domain_scores():
    recipe = recipe_from_dict(copy.deepcopy(TINY_CYCLEGAN), "test")
    test = build_dataset(recipe.data, split="test")
    method = tiny(classifier_steps=5)
    method.ab.generator, method.ba.generator = Same(), Same()
    m = method.heldout_metrics(test)
    assert m["cycle_psnr_aba_db"] > 100 and m["cycle_psnr_bab_db"] > 100  # identity: a perfect cycle
    assert m["psnr_db"] > 100 and m["task"] == "translate"  # G(a) = a: the input itself
    assert {"domain_accuracy", "g_ab_in_b", "f_ba_in_a"} <= set(m)


def test_domain_classifier_tells_colour_from_grey(domains):
    a, b = domains
    scores = domain_scores(a, b, fake_b=b, fake_a=a, steps=150, seed=0)
    assert scores["domain_accuracy"] >= 0.75
    assert scores["g_ab_in_b"] >= 0.75 and scores["f_ba_in_a"] >= 0.75  # the real other domain passes as it


def test_resume_is_bit_identical(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path / "cyclegan.yaml", copy.deepcopy(TINY_CYCLEGAN)))
    assert_resume_identical(recipe, tmp_path)  # the history (6 slots) fills after 2 steps and swaps after
