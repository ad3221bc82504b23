"""The user's own videos (data.kind video_folder): GIFs and frame folders, captions, even frame sampling, errors."""

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.config import recipe_from_dict
from genlab.data import build_dataset
from genlab.data.video_folder import VideoFolderConfig, even_indices, load_video
from genlab.errors import GenlabError
from genlab.train import resolve


def frames_of(n: int, side: int = 12, width: int | None = None) -> list[np.ndarray]:
    """n frames (side × width) whose red level is 20 × the frame index; the first 4 columns green."""
    out = []
    for i in range(n):
        f = np.zeros((side, width or side, 3), dtype=np.uint8)
        f[..., 0] = 20 * i
        f[:, :4, 1] = 255
        out.append(f)
    return out


def write_gif(path, frames):
    ims = [Image.fromarray(f) for f in frames]
    ims[0].save(path, format="GIF", save_all=True, append_images=ims[1:], duration=50, loop=0)


def write_folder(path, frames, suffix=".png"):
    path.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(path / f"frame{i}{suffix}")  # frame10 after frame9: natural order


def test_gifs_and_frame_folders_with_sidecar_captions(tmp_path):
    write_gif(tmp_path / "a.gif", frames_of(10))
    write_folder(tmp_path / "b", frames_of(12))
    (tmp_path / "a.txt").write_text("a red thing\n")
    (tmp_path / "b.txt").write_text("a folder of frames")
    data = build_dataset(VideoFolderConfig(path=str(tmp_path), size=8, frames=4))
    assert data.x.shape == (2, 4, 3, 8, 8) and data.is_video
    assert data.texts == ["a red thing", "a folder of frames"]
    assert data.x.min() >= -1 and data.x.max() <= 1
    # frames taken evenly (0, 4, 7, 11 of 12 for b; 0, 3, 6, 9 of 10 for a): the red level says which frame
    assert even_indices(12, 4).tolist() == [0, 4, 7, 11] and even_indices(10, 4).tolist() == [0, 3, 6, 9]
    for video, n in ((data.x[0], 10), (data.x[1], 12)):
        red = (video[:, 0, :, -1].mean(-1) + 1) * 127.5  # the right column, away from the green band
        assert torch.allclose(red, torch.tensor(20.0 * even_indices(n, 4), dtype=torch.float32), atol=3)


def test_metadata_captions_and_centre_crop(tmp_path):
    write_gif(tmp_path / "wide.gif", frames_of(5, side=8, width=16))  # 16 wide: the centre 8 columns are kept
    write_folder(tmp_path / "clip", frames_of(5), suffix=".jpg")
    rows = [{"file_name": "wide.gif", "text": "wide"}, {"file_name": "clip", "text": "jpegs"}]
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    data = build_dataset(VideoFolderConfig(path=str(tmp_path), size=8, frames=5))
    assert data.texts == ["wide", "jpegs"] and data.x.shape == (2, 5, 3, 8, 8)
    video = load_video(tmp_path / "wide.gif", frames=5, size=8)
    assert video.shape == (5, 8, 8, 3) and video[..., 1].max() == 0  # the green columns 0-3 lie outside the crop
    assert video[..., 0].max(axis=(1, 2)).tolist() == [0, 20, 40, 60, 80]
    assert (data.x[0] == torch.from_numpy(video).permute(0, 3, 1, 2) / 127.5 - 1).all()


def test_no_captions_and_a_test_split(tmp_path):
    for i in range(5):
        write_gif(tmp_path / f"v{i}.gif", frames_of(4))
    train = build_dataset(VideoFolderConfig(path=str(tmp_path), size=8, frames=4, test_fraction=0.2))
    test = build_dataset(VideoFolderConfig(path=str(tmp_path), size=8, frames=4, test_fraction=0.2), split="test")
    assert train.texts is None and (len(train), len(test)) == (4, 1)


def test_errors_say_what_to_do(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    with pytest.raises(GenlabError, match="no videos found"):
        build_dataset(VideoFolderConfig(path=str(tmp_path / "empty")))
    with pytest.raises(GenlabError, match="not found"):
        build_dataset(VideoFolderConfig(path=str(tmp_path / "missing")))

    short = tmp_path / "short"
    short.mkdir()
    write_gif(short / "s.gif", frames_of(3))
    with pytest.raises(GenlabError, match=r"3 frame\(s\), fewer than data.frames=8"):
        build_dataset(VideoFolderConfig(path=str(short), frames=8))

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.gif").write_bytes(b"GIF89a not really")
    with pytest.raises(GenlabError, match="broken.gif: unreadable video"):
        build_dataset(VideoFolderConfig(path=str(bad)))

    nocap = tmp_path / "nocap"
    nocap.mkdir()
    write_gif(nocap / "a.gif", frames_of(8))
    write_gif(nocap / "b.gif", frames_of(8))
    (nocap / "a.txt").write_text("only one caption")
    with pytest.raises(GenlabError, match="b.txt is missing"):
        build_dataset(VideoFolderConfig(path=str(nocap)))

    mp4 = tmp_path / "mp4"
    mp4.mkdir()
    (mp4 / "clip.mp4").write_bytes(b"\x00" * 64)
    monkeypatch.setitem(sys.modules, "av", None)  # as if PyAV were not installed
    with pytest.raises(GenlabError, match="pip install av"):
        build_dataset(VideoFolderConfig(path=str(mp4)))

    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "clip").mkdir()
    with pytest.raises(GenlabError, match="no frames"):
        build_dataset(VideoFolderConfig(path=str(frames)))


def test_recipe_trains_a_video_dit_on_a_folder(tmp_path):
    for i in range(3):
        write_gif(tmp_path / f"v{i}.gif", frames_of(6))
    tree = {
        "name": "myvideos",
        "data": {"kind": "video_folder", "path": str(tmp_path), "size": 16, "frames": 4},
        "model": {"kind": "video_dit"},
        "method": {"kind": "flow"},
        "train": {"steps": 1},
    }
    recipe = recipe_from_dict(tree, "test")
    m = resolve(recipe, build_dataset(recipe.data)).model
    assert (m.in_channels, m.image_size, m.frames) == (3, 16, 4)
    with pytest.raises(GenlabError, match="frames"):
        recipe_from_dict({**tree, "data": {**tree["data"], "frames": 1}}, "test")
