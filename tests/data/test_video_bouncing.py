"""Bouncing videos (data and checker), old-motion data unchanged, and the temporal identity score."""

import hashlib

import numpy as np
import pytest

from genlab.data.images import tensor_to_uint8
from genlab.data.shapes import COLOURS
from genlab.data.videos import (
    BOUNCE,
    DIRECTIONS,
    HELDOUT_MOTIONS,
    IMAGE_SIZE,
    OLD_MOTIONS,
    Actor,
    VideosConfig,
    draw_video,
    parse_video_caption,
    sample_videos,
    trajectory,
    video_caption,
)
from genlab.metrics.video import Point, bounced, classify_motion, frame_objects, score_video, track

# sha256 (first 16 hex digits) of 60 videos + captions per split and frame count, seed 3, computed with the code
# before bouncing was added: `bouncing: false` must reproduce that data bit for bit
OLD_DATA = {
    ("train", 4): "83400340c4f9271c",
    ("train", 8): "59d09d52ad0024b6",
    ("test", 4): "b75db72163142087",
    ("test", 8): "b45d27ab3724b849",
    ("heldout", 4): "201010bc6d1d87bb",
    ("heldout", 8): "2736d8b158b082e5",
}


def test_old_motion_data_is_bit_identical_without_bouncing():
    for (split, frames), digest in OLD_DATA.items():
        x, texts, casts = sample_videos(60, split=split, seed=3, frames=frames, bouncing=False)
        got = hashlib.sha256(x.numpy().tobytes() + "|".join(texts).encode()).hexdigest()[:16]
        assert got == digest, (split, frames)
        assert all(a.motion in OLD_MOTIONS for cast in casts for a in cast)
    assert VideosConfig().bouncing  # the default draws bouncing too (a different random stream)


def test_bouncing_is_drawn_captioned_parsed_and_held_out():
    _, texts, casts = sample_videos(300, seed=0)
    bouncers = [a for cast in casts for a in cast if a.motion == "bouncing"]
    assert len(bouncers) > 20 and all(a.kind != "circle" for a in bouncers)  # circle×bouncing is held out
    _, held_texts, held = sample_videos(100, split="heldout", seed=0)
    assert any(a.kind == "circle" and a.motion == "bouncing" for cast in held for a in cast)
    assert ("circle", "bouncing") in HELDOUT_MOTIONS
    a, b = Actor("red", "square", "bouncing"), Actor("blue", "triangle", "bouncing")
    assert video_caption((a,)) == "a red square bouncing"
    assert video_caption((a, b)) == "a red square bouncing while a blue triangle bounces"
    assert parse_video_caption("A red square bounces.") == (a,)
    for text, cast in zip(texts + held_texts, casts + held):
        assert parse_video_caption(text) == cast


@pytest.mark.parametrize("frames", [4, 5, 8, 16])
def test_bouncing_reaches_the_wall_at_mid_clip_and_comes_back(frames):
    actor = Actor("green", "square", "bouncing")
    half = 4
    for direction, (dx, dy) in DIRECTIONS.items():
        start = {"right": (IMAGE_SIZE - half - BOUNCE, 16), "left": (half + BOUNCE, 16)}.get(direction)
        start = start or (16, IMAGE_SIZE - half - BOUNCE if direction == "down" else half + BOUNCE)
        path = trajectory(actor, start, frames, direction)
        assert tuple(path[0, :2]) == tuple(path[-1, :2]) == start  # back where it started
        along = (path[:, 0] - start[0]) * dx + (path[:, 1] - start[1]) * dy
        far = int(along.argmax())
        assert 0 < far < frames - 1 and (np.diff(along[: far + 1]) >= 0).all() and (np.diff(along[far:]) <= 0).all()
        video = draw_video((actor,), [path], frames)
        if frames % 2:  # an odd clip has a middle frame, where the shape touches the wall
            lit = video[frames // 2].any(-1)
            edge = {"right": lit[:, -1], "left": lit[:, 0], "down": lit[-1], "up": lit[0]}[direction]
            assert edge.any()
        assert not video[0].any(-1)[:, [0, -1]].any() or direction in ("up", "down")
        objects = [frame_objects(f) for f in video]
        assert classify_motion(track(objects, "green", "square")) == "bouncing"


def test_checker_needs_exactly_one_reversal():
    def path(xs):
        return [Point(float(x), 16.0, 40, "red", "square") for x in xs]

    assert bounced(path([8, 11, 14, 11, 8]))
    assert not bounced(path([8, 10, 12, 14, 16]))  # a translation: the farthest point is the last
    assert classify_motion(path([8, 10, 12, 14, 16])) == "right"
    assert not bounced(path([8, 14, 8, 14, 8]))  # two reversals
    assert not bounced(path([8, 11, 14, 13, 12]))  # comes back less than MIN_TRAVEL
    assert not bounced(path([8, 9, 10, 9, 8]))  # never goes MIN_TRAVEL out
    assert classify_motion(path([8, 9, 10, 9, 8])) == "still"


def test_identity_drops_when_a_tracked_object_changes_kind_or_colour():
    circle, square = Actor("red", "circle", "right"), Actor("red", "square", "right")
    start = (10, 16)
    path = trajectory(circle, start, 8)
    video = draw_video((circle,), [path], 8)
    assert score_video(video, (circle,))["identity"] == 1.0
    morph = np.concatenate([video[:4], draw_video((square,), [path], 8)[4:]])  # becomes a square halfway
    scores = score_video(morph, (circle,))
    assert scores["identity"] == pytest.approx(6 / 7) and scores["frames"] == 0.5
    blue = video.copy()
    blue[5][blue[5].any(-1)] = COLOURS["blue"]  # one frame flickers to blue
    assert score_video(blue, (circle,))["identity"] == pytest.approx(5 / 7)
    turn = Actor("red", "circle", "colour", "blue")
    switch = draw_video((turn,), [trajectory(turn, start, 8)], 8)
    assert score_video(switch, (turn,))["identity"] == 1.0  # the caption's one colour switch is allowed


def test_true_renders_score_one_with_bouncing_at_every_length():
    for frames in (4, 8):
        x, texts, casts = sample_videos(60, seed=7, frames=frames)
        assert any(a.motion == "bouncing" for cast in casts for a in cast)
        for video, cast in zip(x, casts):
            s = score_video(tensor_to_uint8(video), cast)
            assert s == {"motion": 1.0, "frames": 1.0, "consistency": 1.0, "identity": 1.0}
