"""Image-to-image metrics: the seam statistic and colourfulness on hand-made images, FD with its floor, the scoring of
translations, and the shipped photo feature network."""

import math

import pytest
import torch

from genlab.data.base import Dataset
from genlab.edit.degrade import downsample, upsample
from genlab.errors import GenlabError
from genlab.metrics.image2image import (
    boundary_energy,
    boundary_pairs,
    colorfulness,
    fd_metrics,
    photo_feature_net,
    score_translations,
    seam,
)


def ramp(slope: float = 0.1, size: int = 32) -> torch.Tensor:
    """(1, 3, size, size): every channel rises by `slope` per column (centred in [-1, 1])."""
    cols = (torch.arange(size, dtype=torch.float64) - size / 2) * slope / 2
    return cols.expand(1, 3, size, size).clone()


def test_boundary_pairs_of_a_box_are_its_perimeter():
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:9, 3:10] = 1  # a 5 x 7 box away from the edges
    across, down = boundary_pairs(mask)
    assert int(across.sum()) == 2 * 5 and int(down.sum()) == 2 * 7
    assert int(sum(p.sum() for p in boundary_pairs(torch.ones(1, 1, 16, 16)))) == 0


def test_seam_is_one_for_the_truth_and_grows_with_a_step_at_the_boundary():
    truth = ramp(0.1)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :, 16:] = 1  # the right half is made: 32 horizontal pairs cross the boundary
    assert seam(truth, truth, mask) == pytest.approx(1.0)
    stepped = truth + 0.2 * mask  # the made half is brighter by 0.2: each crossing difference is 0.05 + 0.2
    assert seam(stepped, truth, mask) == pytest.approx((0.05 + 0.2) ** 2 / 0.05**2)
    flat = torch.where(mask.bool(), truth[..., 15:16], truth)  # continues the last kept value: no change across
    assert seam(flat, truth, mask) == pytest.approx(0.0)
    assert float(boundary_energy(truth, mask)) == pytest.approx(32 * 3 * 0.05**2)


def test_seam_averages_over_outputs_and_is_none_without_a_reference():
    truth, mask = ramp(0.1), torch.zeros(1, 1, 32, 32)
    mask[..., :, 16:] = 1
    outputs = torch.stack([truth, truth + 0.2 * mask])  # (k=2, n=1, C, H, W)
    assert seam(outputs, truth, mask) == pytest.approx((1 + 25) / 2)
    assert seam(truth, torch.zeros_like(truth), mask) is None  # a flat truth gives no scale


def test_colorfulness_of_grey_and_of_pure_red():
    assert float(colorfulness(torch.zeros(1, 3, 4, 4))) == 0.0
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1).expand(1, 3, 4, 4)  # (255, 0, 0) in 8 bits
    assert float(colorfulness(red)) == pytest.approx(0.3 * math.hypot(255, 127.5))
    with pytest.raises(GenlabError, match="RGB"):
        colorfulness(torch.zeros(1, 1, 4, 4))


def test_scores_of_perfect_translations_and_the_fd_floor():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(40, 1, 16, 16, generator=gen) * 2 - 1
    data = Dataset(x=x, name="noise")  # 8x8 pixel features
    truth = x[torch.randperm(40, generator=torch.Generator().manual_seed(3))[:20]]
    mask = torch.zeros(20, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    res = {"truth": truth, "source": truth, "mask": mask, "outputs": truth.expand(3, -1, -1, -1, -1), "nfe": 7}
    m = score_translations(res, data, task="inpaint", seed=3)
    assert m["psnr_db"] > 100 and m["ssim"] == pytest.approx(1.0) and m["diversity"] == 0.0
    assert m["fd"] == pytest.approx(0.0, abs=1e-6) and m["fd_floor"] > 0 and m["seam"] == pytest.approx(1.0)
    assert m["nfe"] == 7 and m["n"] == 20 and m["fd_features"].startswith("pixels")
    assert fd_metrics(truth, truth, Dataset(x=x[:30], name="noise"), seed=3)["fd_floor"] is None  # < 2n images


def test_the_photo_feature_net_sees_blur():
    from genlab.data.photos import PhotosConfig, build_photos
    from genlab.metrics.features import extract
    from genlab.metrics.fid import frechet_distance

    net = photo_feature_net()
    assert net.in_channels == 3 and net.image_size == 32 and net.heldout_accuracy > 0.5
    test = build_photos(PhotosConfig(n=64, n_test=256), split="test").x
    a, b = test[:128], test[128:]
    fa = extract(net, a)[0]
    floor = frechet_distance(extract(net, b)[0], fa)
    blurred = frechet_distance(extract(net, upsample(downsample(b, 4), 32))[0], fa)
    assert blurred > 2 * floor
