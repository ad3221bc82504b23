"""The video feature net: shipped asset, Fréchet distance sanity (itself ≈ 0, shuffled frames far), save / load."""

from importlib.resources import files
from pathlib import Path

import pytest
import torch

from genlab.data.videos import Actor, sample_videos
from genlab.errors import GenlabError
from genlab.metrics.fid import frechet_distance
from genlab.metrics.video_features import (
    LABELS,
    VIDEOS_ASSET,
    fit_video_net,
    label_targets,
    load_video_net,
    save_video_net,
    shuffle_frames,
    video_fd,
    video_features,
)


@pytest.fixture(scope="module")
def shipped():
    return load_video_net()


def test_shipped_net_is_small_and_knows_the_labels(shipped):
    path = Path(str(files("genlab").joinpath(VIDEOS_ASSET)))
    assert path.stat().st_size < 1_000_000
    assert shipped.cfg.num_labels == len(LABELS) and shipped.cfg.frames == 8
    x, _, casts = sample_videos(64, split="test", seed=11)
    pred = torch.sigmoid(shipped.logits(x)) > 0.5
    assert (pred == label_targets(casts).bool()).float().mean() > 0.9  # per-label accuracy (all-zero: ~0.77)


def test_fd_of_test_set_is_zero_against_itself_and_large_against_shuffled_frames(shipped):
    real, _, _ = sample_videos(200, split="test", seed=0)  # 200: FD's small-sample bias falls as 1/n
    other, _, _ = sample_videos(200, split="test", seed=1)
    f = video_features(shipped, real)
    assert f.dtype == torch.float64 and f.shape == (200, shipped.num_features)
    assert abs(frechet_distance(f, f)) < 1e-3  # eigenvalue rounding of a rank-deficient covariance
    floor = video_fd(real, other, net=shipped)  # two draws of the same distribution: sampling noise only
    shuffled = video_fd(real, shuffle_frames(real, seed=0), net=shipped)
    reversed_ = video_fd(real, real.flip(1), net=shipped)  # right <-> left, grow <-> shrink, ...
    assert shuffled > 3 * floor and reversed_ > 1.5 * floor


def test_shuffle_frames_permutes_every_video():
    x = torch.arange(3 * 4, dtype=torch.float32).view(3, 4, 1, 1, 1).expand(3, 4, 3, 2, 2)
    y = shuffle_frames(x, seed=0)
    for a, b in zip(x, y):
        assert not torch.equal(a, b) and sorted(b[:, 0, 0, 0].tolist()) == a[:, 0, 0, 0].tolist()


def test_labels_fit_save_load_and_errors(tmp_path):
    y = label_targets([(Actor("red", "circle", "colour", "blue"), Actor("green", "square", "bouncing"))])
    on = {LABELS[i] for i in y[0].nonzero().flatten().tolist()}
    assert on == {"colour:red", "colour:blue", "colour:green", "kind:circle", "kind:square"} | {
        "motion:colour",
        "motion:bouncing",
    }
    x, _, casts = sample_videos(8, seed=0, frames=4)
    net = fit_video_net(x, label_targets(casts), epochs=1, batch_size=8, width=4)
    path = save_video_net(net, tmp_path / "v.safetensors", info={"name": "tiny"})
    loaded = load_video_net(path)
    assert loaded.name == "tiny" and torch.equal(video_features(loaded, x), video_features(net, x))
    with pytest.raises(GenlabError, match="safetensors"):
        save_video_net(net, tmp_path / "v.pt", info={})
    (tmp_path / "bad.safetensors").write_bytes(b"not weights")
    (tmp_path / "bad.json").write_text((tmp_path / "v.json").read_text())
    with pytest.raises(GenlabError, match="unreadable"):
        load_video_net(tmp_path / "bad.safetensors")
    with pytest.raises(GenlabError, match="not found"):
        load_video_net(tmp_path / "missing.safetensors")
    with pytest.raises(GenlabError, match="32x32"):
        video_features(loaded, torch.zeros(2, 4, 3, 16, 16))
