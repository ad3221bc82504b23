"""Captioned shape videos: shapes, determinism, held-out kind×motion pairs, caption grammar, trainer resolution."""

import numpy as np
import pytest
import torch

from genlab.config import recipe_from_dict
from genlab.data import DATA_CONFIGS, build_dataset
from genlab.data.shapes import COLOURS
from genlab.data.videos import (
    HELDOUT_MOTIONS,
    MOTIONS,
    TRAVEL,
    Actor,
    VideosConfig,
    parse_video_caption,
    sample_videos,
    video_caption,
)
from genlab.errors import GenlabError
from genlab.train import resolve


def test_batches_have_the_declared_shape_and_range():
    data = build_dataset(DATA_CONFIGS["videos"](n=12, n_test=5, frames=8, seed=3))
    assert data.x.shape == (12, 8, 3, 32, 32) and data.x.dtype == torch.float32
    assert data.is_video and not data.is_image
    assert data.x.min() == -1 and data.x.max() == 1
    batch = data.batch(torch.tensor([0, 5]))
    assert batch["x"].shape == (2, 8, 3, 32, 32) and len(batch["text"]) == 2
    assert build_dataset(VideosConfig(n=12, n_test=5, frames=16), split="heldout").x.shape == (5, 16, 3, 32, 32)


def test_deterministic_from_seed_and_split():
    a, ta, _ = sample_videos(20, seed=1)
    b, tb, _ = sample_videos(20, seed=1)
    c, tc, _ = sample_videos(20, seed=2)
    d, _, _ = sample_videos(20, seed=1, split="test")
    assert torch.equal(a, b) and ta == tb
    assert not torch.equal(a, c) and ta != tc
    assert not torch.equal(a, d)


def test_heldout_pairs_only_in_heldout_and_every_motion_seen():
    for split in ("train", "test", "heldout"):
        _, texts, casts = sample_videos(300, split=split, seed=0)
        held = [any((a.kind, a.motion) in HELDOUT_MOTIONS for a in cast) for cast in casts]
        assert all(held) if split == "heldout" else not any(held)
        if split == "train":
            assert {a.motion for cast in casts for a in cast} == set(MOTIONS)
            assert {len(cast) for cast in casts} == {1, 2}
        for text, cast in zip(texts, casts):
            assert parse_video_caption(text) == cast  # every caption is in the grammar and names its actors


def test_captions_and_parser():
    a, b = Actor("red", "circle", "right"), Actor("orange", "square", "colour", "blue")
    assert video_caption((a, b)) == "a red circle moving to the right while an orange square turns blue"
    assert video_caption((a,), template=1) == "a red circle moves to the right"
    assert parse_video_caption("A blue triangle falls.") == (Actor("blue", "triangle", "down"),)
    assert parse_video_caption("a red circle dancing") is None
    assert parse_video_caption("a purple circle rises") is None


def test_motions_are_rendered():
    """A shape moving right: its pixels' mean x grows by TRAVEL from the first to the last frame; a colour change
    switches the colour halfway; a growing shape gains pixels."""
    from genlab.data.videos import draw_video, place

    rng = np.random.default_rng(0)
    for actor in (Actor("red", "square", "right"), Actor("red", "square", "up")):
        video = draw_video((actor,), place((actor,), rng, 8), 8)
        first, last = (np.nonzero(video[i].any(-1)) for i in (0, -1))
        dx, dy = last[1].mean() - first[1].mean(), last[0].mean() - first[0].mean()
        assert (dx, dy) == pytest.approx((TRAVEL, 0) if actor.motion == "right" else (0, -TRAVEL))
    grow = Actor("green", "circle", "grow")
    video = draw_video((grow,), place((grow,), rng, 8), 8)
    assert video[-1].any(-1).sum() > 2 * video[0].any(-1).sum()
    turn = Actor("green", "circle", "colour", "blue")
    video = draw_video((turn,), place((turn,), rng, 8), 8)
    assert tuple(video[3].max((0, 1))) == COLOURS["green"] and tuple(video[4].max((0, 1))) == COLOURS["blue"]


def test_bad_frames_and_split_are_errors():
    with pytest.raises(GenlabError, match="frames"):
        sample_videos(2, frames=2)
    with pytest.raises(GenlabError, match="split"):
        sample_videos(2, split="val")


def test_trainer_resolves_video_data_into_the_video_dit():
    tree = {
        "name": "videos",
        "data": {"kind": "videos", "n": 4, "n_test": 2, "frames": 4},
        "model": {"kind": "video_dit"},
        "method": {"kind": "flow"},
        "train": {"steps": 1},
    }
    recipe = recipe_from_dict(tree, "test")
    data = build_dataset(recipe.data)
    m = resolve(recipe, data).model
    assert (m.in_channels, m.image_size, m.frames) == (3, 32, 4)
    with pytest.raises(GenlabError, match="does not fit video data"):
        resolve(recipe_from_dict({**tree, "model": {"kind": "mlp"}}, "test"), data)
