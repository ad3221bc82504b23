import math

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.cli import main
from genlab.errors import GenlabError
from genlab.interpolate import interpolate_run, lerp, slerp
from genlab.methods import Method
from genlab.runs import load_run


def test_slerp_endpoints_norms_and_angles():
    torch.manual_seed(0)
    a, b = torch.randn(3, 64, dtype=torch.float64), torch.randn(3, 64, dtype=torch.float64)
    b = b / b.norm(dim=1, keepdim=True) * a.norm(dim=1, keepdim=True)  # equal norms: slerp keeps them
    t = torch.linspace(0, 1, 5, dtype=torch.float64)
    z = slerp(a, b, t)  # (3, 5, 64)
    torch.testing.assert_close(z[:, 0], a)
    torch.testing.assert_close(z[:, -1], b)
    torch.testing.assert_close(z.norm(dim=2), a.norm(dim=1, keepdim=True).expand(3, 5))
    theta = torch.arccos((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)))
    angle_from_a = torch.arccos(((z * a[:, None]).sum(2) / (z.norm(dim=2) * a.norm(dim=1)[:, None])).clamp(-1, 1))
    torch.testing.assert_close(angle_from_a, theta[:, None] * t[None], atol=1e-6, rtol=0)  # constant speed
    mid = lerp(a, b, t)[:, 2]  # lerp's midpoint falls inside the shell
    assert (mid.norm(dim=1) < 0.9 * a.norm(dim=1)).all()
    torch.testing.assert_close(slerp(a, a, t)[:, 3], a)  # parallel endpoints fall back to lerp


def test_interpolate_cli_writes_a_png_grid(gan_run, tmp_path):
    out = tmp_path / "interp.png"
    assert main(["interpolate", str(gan_run), "--n-rows", "3", "--steps", "5", "-o", str(out)]) == 0
    img = np.asarray(Image.open(out))
    assert img.ndim >= 2 and img.shape[1] > img.shape[0]  # 3 rows of 5 digits: wider than tall
    x = interpolate_run(gan_run, n_rows=3, steps=5, label=7, mode="lerp", seed=1)
    assert x.shape == (15, 1, 8, 8) and x.min() >= -1 and x.max() <= 1
    rows = x.view(3, 5, -1)
    step = (rows[:, 1:] - rows[:, :-1]).norm(dim=2)  # neighbours in a row are closer than the row's ends
    assert (step.max(dim=1).values < (rows[:, -1] - rows[:, 0]).norm(dim=1)).all()
    assert math.isfinite(float(x.sum()))


def test_flow_runs_interpolate_their_initial_noise(digits_run):
    x = interpolate_run(digits_run, n_rows=2, steps=3, seed=0)
    assert x.shape == (6, 1, 8, 8) and torch.isfinite(x).all()
    run = load_run(digits_run)
    gen = torch.Generator().manual_seed(0)
    z_a = torch.randn((2, 1, 8, 8), generator=gen)
    first = run.method.sample(2, cond=torch.arange(2), noise=z_a, settings=run.settings).x
    torch.testing.assert_close(x.view(2, 3, 1, 8, 8)[:, 0], first)  # t = 0 is the sample from z_a


def test_a_stochastic_recipe_sampler_interpolates_on_its_ode(digits_run):
    run = load_run(digits_run)
    run.recipe.sample = run.recipe.sample.replace(sampler="euler_maruyama", steps=8)
    heun = load_run(digits_run)
    heun.recipe.sample = heun.recipe.sample.replace(sampler="heun", steps=8)
    x = interpolate_run(run, n_rows=2, steps=3, seed=0)
    torch.testing.assert_close(x, interpolate_run(heun, n_rows=2, steps=3, seed=0))
    assert not torch.equal(x, interpolate_run(load_run(digits_run), n_rows=2, steps=3, seed=0))


def test_interpolate_errors_are_user_errors(gan_run, digits_run, tmp_path):
    assert main(["interpolate", str(gan_run), "--label", "12", "-o", str(tmp_path / "x.png")]) == 2
    assert main(["interpolate", str(gan_run), "-o", str(tmp_path / "x.jpg")]) == 2
    assert main(["interpolate", str(gan_run), "--steps", "1", "-o", str(tmp_path / "x.png")]) == 2
    run = load_run(digits_run)

    class NoLatent(Method):
        pass

    with pytest.raises(GenlabError, match="no latent space"):
        interpolate_run(run.replace(method=NoLatent()))
