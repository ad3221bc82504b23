"""Image-to-image metrics: the seam statistic and colourfulness on hand-made images, FD with its floor, the scoring of
translations, and the shipped photo feature network."""

import math

import pytest
import torch

from genlab.data.base import Dataset
from genlab.edit.degrade import downsample, upsample
from genlab.errors import GenlabError
from genlab.metrics.features import FeatureNet, extract
from genlab.metrics.fid import frechet_distance
from genlab.metrics.image2image import (
    boundary_energy,
    boundary_pairs,
    colorfulness,
    fd_features,
    fd_metrics,
    photo_feature_net,
    score_translations,
    seam,
    tile_side,
    tiles,
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

    net = photo_feature_net()
    assert net.in_channels == 3 and net.image_size == 32 and net.heldout_accuracy > 0.5
    test = build_photos(PhotosConfig(n=64, n_test=256), split="test").x
    a, b = test[:128], test[128:]
    fa = extract(net, a)[0]
    floor = frechet_distance(extract(net, b)[0], fa)
    blurred = frechet_distance(extract(net, upsample(downsample(b, 4), 32))[0], fa)
    assert blurred > 2 * floor


def test_tiles_are_the_non_overlapping_squares_in_row_major_order():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    t = tiles(x, 2)  # 2 images x (2 rows x 3 cols) tiles
    assert t.shape == (12, 3, 2, 2)
    assert torch.equal(t[0], x[0, :, :2, :2]) and torch.equal(t[2], x[0, :, :2, 4:])
    assert torch.equal(t[3], x[0, :, 2:, :2]) and torch.equal(t[11], x[1, :, 2:, 4:])
    with pytest.raises(GenlabError, match="multiples of 4"):
        tiles(x, 4)


def mosaic(patches: torch.Tensor) -> torch.Tensor:
    """(N, C, 2s, 2s) images, each four consecutive s-patches (4N, C, s, s) laid out 2x2 in row-major order."""
    n, c, s = len(patches) // 4, patches.shape[1], patches.shape[-1]
    return patches.reshape(n, 2, 2, c, s, s).permute(0, 3, 1, 4, 2, 5).reshape(n, c, 2 * s, 2 * s)


def tiles_of(images: torch.Tensor) -> torch.Tensor:
    """Indices of the four patches that `mosaic` laid out as images `images` (n,): (4n,)."""
    return (4 * images[:, None] + torch.arange(4)).flatten()


def test_fd_of_64_pixel_photos_is_the_fd_of_their_32_pixel_tiles():
    net = photo_feature_net()
    gen = torch.Generator().manual_seed(0)
    small = torch.rand(160, 3, 32, 32, generator=gen) * 2 - 1  # 40 images of 4 tiles
    out = (small + 0.3 * torch.randn(small.shape, generator=gen)).clamp(-1, 1)
    big, big_out = mosaic(small), mosaic(out)
    data = Dataset(x=big, name="photos")
    assert tile_side(net, big, data) == 32 and tile_side(net, small, Dataset(x=small, name="photos")) is None
    assert tile_side(net, big, Dataset(x=big, name="noise")) is None  # the scale argument holds for photos only
    assert torch.allclose(fd_features(net, big[:5], tile=32), extract(net, small[:20])[0])

    truth_pick = torch.randperm(40, generator=torch.Generator().manual_seed(3))
    truth, others = truth_pick[:20], truth_pick[20:]
    m = fd_metrics(big_out[truth], big[truth], data, seed=3, feature_net=net)
    f_truth = extract(net, small[tiles_of(truth)])[0]
    assert m["fd"] == pytest.approx(frechet_distance(extract(net, out[tiles_of(truth)])[0], f_truth), rel=1e-6)
    assert m["fd_floor"] == pytest.approx(frechet_distance(extract(net, small[tiles_of(others)])[0], f_truth), rel=1e-6)
    assert m["fd_features"] == f"{net.name} on 32x32 tiles"


def test_fd_of_32_pixel_photos_is_unchanged():
    net = photo_feature_net()
    x = torch.rand(40, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    order = torch.randperm(40, generator=torch.Generator().manual_seed(3))
    truth, others, out = x[order[:20]], x[order[20:]], x[order[:20]].flip(-1)
    m = fd_metrics(out, truth, Dataset(x=x, name="photos"), seed=3, feature_net=net)
    f_truth = extract(net, truth)[0]
    assert m["fd"] == frechet_distance(extract(net, out)[0], f_truth)  # bit-identical: the whole image, as before
    assert m["fd_floor"] == frechet_distance(extract(net, others)[0], f_truth)
    assert m["fd_features"] == net.name


def test_fixed_size_nets_still_resize_other_data():
    class Mean(torch.nn.Module):
        def forward(self, x):
            return x.flatten(2).mean(2)  # (B, C): unchanged by a resize of a constant image

    net = FeatureNet(module=Mean(), name="mean", image_size=8)
    x = torch.rand(40, 1, 1, 1, generator=torch.Generator().manual_seed(0)).expand(40, 1, 16, 16)
    assert tile_side(net, x, Dataset(x=x, name="digits")) is None
    assert fd_metrics(x[:20], x[:20], Dataset(x=x, name="digits"), seed=0, feature_net=net)["fd_features"] == "mean"


def test_tiled_fd_sees_the_blur_of_64_pixel_photos_that_resizing_hides():
    """A 2x bicubic blur of a 64-patch is nearly undone by resizing it to 32; its 32-pixel tiles keep the loss."""
    from genlab.data.photos import PhotosConfig, build_photos

    net = photo_feature_net()
    test = build_photos(PhotosConfig(size=64, n=64, n_test=128), split="test").x
    a, b = test[:64], test[64:]
    blurred = upsample(downsample(b, 2), 64)
    ratios = {}
    for tile in (None, 32):
        fa = fd_features(net, a, tile=tile)
        floor = frechet_distance(fd_features(net, b, tile=tile), fa)
        ratios[tile] = frechet_distance(fd_features(net, blurred, tile=tile), fa) / floor
    assert ratios[32] > 3 and ratios[32] > 2 * ratios[None]  # measured: 6.2 and 1.4 (seed 0)
