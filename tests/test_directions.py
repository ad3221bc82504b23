"""GANSpace (`genlab directions`): PCA of w on a tiny trained StyleGAN-style run, the grid, the measured names."""

import json

import pytest
import torch
from PIL import Image

from genlab.cli import main
from genlab.directions import (
    direction_grid,
    edits,
    ink_mass,
    measure_directions,
    principal_directions,
    sample_w,
    slant,
    write_directions,
)
from genlab.errors import GenlabError
from genlab.runs import load_run
from tests.conftest import write_recipe
from tests.methods.test_gan import TINY_GAN

TINY_STYLE = {
    **TINY_GAN,
    "name": "tiny-stylegan",
    "model": {"kind": "stylegan", "channels": 32, "latent_dim": 16, "w_dim": 16, "mapping_depth": 2},
    "method": {"kind": "gan", "loss": "non_saturating", "r1_gamma": 1.0},
    "train": {**TINY_GAN["train"], "steps": 2},
}


@pytest.fixture(scope="module")
def style_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stylegan")
    recipe = write_recipe(tmp / "style.yaml", TINY_STYLE)
    assert main(["train", str(recipe), "--out", str(tmp / "run"), "--no-progress"]) == 0
    return load_run(tmp / "run")


def test_components_orthonormal_and_ordered(style_run):
    dirs = principal_directions(style_run, samples=2000)
    v = dirs.components.double()
    torch.testing.assert_close(v @ v.T, torch.eye(16, dtype=torch.float64), atol=1e-5, rtol=0)
    assert (dirs.variance[:-1] >= dirs.variance[1:]).all() and dirs.variance[0] > 0
    assert abs(float(dirs.explained.sum()) - 1) < 1e-5
    # the variance of w projected on v_k is σ_k² (the PCA is of the mapping's output)
    w = sample_w(style_run, 2000) - dirs.mean
    proj_var = (w @ dirs.components[:3].T).var(0)
    torch.testing.assert_close(proj_var, dirs.variance[:3], rtol=1e-3, atol=1e-7)


def test_edit_moves_along_one_direction(style_run):
    dirs = principal_directions(style_run, samples=500)
    w = sample_w(style_run, 2)
    moved = edits(w, dirs, 1, torch.tensor([0.0, 2.0]))
    torch.testing.assert_close(moved[:, 0], w)
    delta = moved[:, 1] - w
    torch.testing.assert_close(delta @ dirs.components[1], torch.full((2,), 2 * float(dirs.sigma[1])))
    assert float((delta @ dirs.components[0]).abs().max()) < 1e-4


def test_measures():
    x = -torch.ones(2, 1, 8, 8)
    x[0, 0, :, 3] = 1  # a vertical bar: slant 0
    for r in range(8):
        x[1, 0, r, 7 - r] = 1  # "/": the top row furthest right
    assert torch.allclose(ink_mass(x), torch.tensor([1 / 8, 1 / 8]))
    s = slant(x)
    assert abs(float(s[0])) < 1e-6 and float(s[1]) == pytest.approx(1.0)


def test_grid_json_and_cli(style_run, tmp_path, capsys):
    dirs = principal_directions(style_run, samples=500)
    grid = direction_grid(style_run, dirs, components=3, points=5)
    assert grid.shape == (15, 1, 8, 8) and grid.min() >= -1 and grid.max() <= 1
    assert not torch.equal(grid[0], grid[4])  # the row changes along t
    measured = measure_directions(style_run, dirs, components=2, bases=20)
    assert [m["component"] for m in measured] == [0, 1]
    assert all(isinstance(m["name"], str) and m["class_change_rate"] is not None for m in measured)
    out = tmp_path / "dirs.png"
    argv = ["directions", str(style_run.path), "--components", "3", "--points", "4", "--samples", "300"]
    assert main([*argv, "-o", str(out)]) == 0
    assert "measured: 0:" in capsys.readouterr().out
    report = json.loads(out.with_suffix(".json").read_text())
    assert len(report["directions"]) == 3 and all("name" in d and "ink_effect" in d for d in report["directions"])
    with Image.open(out) as im:
        assert im.width > im.height  # 4 columns, 3 rows


def test_wrong_kind_is_refused(gan_run, digits_run, style_run, tmp_path, capsys):
    for run in (gan_run, digits_run):
        with pytest.raises(GenlabError, match="mapping network"):
            principal_directions(run)
    assert main(["directions", str(gan_run), "-o", str(tmp_path / "x.png")]) == 2
    assert "model.kind='dcgan'" in capsys.readouterr().err
    with pytest.raises(GenlabError, match="--components"):
        write_directions(style_run, tmp_path / "x.png", components=99, samples=100)
