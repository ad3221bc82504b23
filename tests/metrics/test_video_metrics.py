"""Motion checker: 100 % on true renders, about chance on shuffled captions, 'still' for a still video."""

import numpy as np
import pytest
import torch

from genlab.data.images import tensor_to_uint8, uint8_to_tensor
from genlab.data.videos import MOTIONS, Actor, draw_video, place, sample_videos, video_caption
from genlab.errors import GenlabError
from genlab.metrics.video import classify_motion, frame_objects, score_video, track, video_scores


def render(casts: list[tuple[Actor, ...]], frames: int = 8, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    videos = [draw_video(cast, place(cast, rng, frames), frames) for cast in casts]
    return uint8_to_tensor(np.concatenate(videos)).unflatten(0, (len(casts), frames))  # (B, T, 3, H, W)


def test_true_renders_score_100_percent():
    for split in ("train", "heldout"):
        x, texts, _ = sample_videos(40, split=split, seed=5)
        assert video_scores(x, texts) == {"motion": 1.0, "frames": 1.0, "consistency": 1.0, "identity": 1.0}


def test_every_motion_is_classified():
    colours = {"colour": "blue"}
    casts = [(Actor("red", kind, m, colours.get(m)),) for m in MOTIONS for kind in ("circle", "square", "triangle")]
    x = render(casts)
    for video, (actor,) in zip(x, casts):
        frames = [frame_objects(f) for f in tensor_to_uint8(video)]
        assert classify_motion(track(frames, actor.colour, actor.kind)) == actor.motion


def test_shuffled_captions_score_about_chance():
    """One object, every motion equally often: a caption of another video states the right motion ~1/7 of the
    time; the true captions score 1."""
    casts = [(Actor("red", "circle", m, "blue" if m == "colour" else None),) for m in MOTIONS] * 6
    x = render(casts, seed=1)
    texts = [video_caption(c) for c in casts]
    assert video_scores(x, texts)["motion"] == 1.0
    g = torch.Generator().manual_seed(0)
    shuffled = [
        video_scores(x, [texts[i] for i in torch.randperm(len(texts), generator=g)])["motion"] for _ in range(3)
    ]
    assert np.mean(shuffled) == pytest.approx(1 / len(MOTIONS), abs=0.12)
    mixed, mixed_texts, _ = sample_videos(40, seed=2)  # random casts: wrong objects as well, so below chance
    assert video_scores(mixed, mixed_texts[1:] + mixed_texts[:1])["motion"] < 0.15


def test_still_video_fails_every_motion_and_lost_objects_score_zero():
    x = render([(Actor("red", "circle", "grow"),)])
    still = x[:, :1].expand(-1, 8, -1, -1, -1)  # the first frame repeated
    for m in MOTIONS:
        actor = Actor("red", "circle", m, "blue" if m == "colour" else None)
        assert score_video(tensor_to_uint8(still[0]), (actor,))["motion"] == 0
    assert video_scores(torch.full_like(x, -1.0), ["a red circle growing"]) == {
        "motion": 0.0,
        "frames": 0.0,
        "consistency": 1.0,
        "identity": 0.0,
    }


def test_bad_captions_and_shapes_are_errors():
    x = render([(Actor("red", "circle", "grow"),)])
    with pytest.raises(GenlabError, match="grammar"):
        video_scores(x, ["a red circle dancing"])
    with pytest.raises(GenlabError, match="B captions"):
        video_scores(x[0], ["a red circle growing"])
