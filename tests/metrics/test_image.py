"""PSNR and SSIM against known values and against scikit-image's independent implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

from genlab.data.images import center_crop_resize, uint8_to_tensor
from genlab.errors import GenlabError
from genlab.metrics.image import psnr, ssim


def reference_ssim(x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """scikit-image's SSIM with the Wang et al. (2004) settings, one value per image of (B, C, H, W)."""
    return [
        structural_similarity(
            a.double().permute(1, 2, 0).numpy(),
            b.double().permute(1, 2, 0).numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=2.0,
            channel_axis=2,
        )
        for a, b in zip(x, y)
    ]


def photo_batch(size: int = 48) -> torch.Tensor:
    """Two real photos (astronaut, coffee) as (2, 3, size, size) in [-1, 1]."""
    import skimage.data

    images = [center_crop_resize(f(), size) for f in (skimage.data.astronaut, skimage.data.coffee)]
    return uint8_to_tensor(np.stack(images))


def test_identical_images_have_ssim_one_and_capped_psnr():
    x = torch.rand(3, 3, 16, 20, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert torch.allclose(ssim(x, x), torch.ones(3), atol=1e-6)
    assert torch.allclose(psnr(x, x), torch.full((3,), 10 * math.log10(4e12)))  # psnr_db's MSE floor 1e-12


def test_psnr_of_a_known_mse():
    x = torch.zeros(2, 3, 8, 8)
    y = torch.stack([torch.full((3, 8, 8), 0.1), torch.full((3, 8, 8), -1.0)])  # MSE 0.01 and 1
    expected = torch.tensor([10 * math.log10(4 / 0.01), 10 * math.log10(4.0)])  # 26.0206 dB, 6.0206 dB
    assert torch.allclose(psnr(x, y), expected, atol=1e-4)
    assert torch.allclose(psnr(x - 5.0, y + 5.0)[1], torch.tensor(0.0), atol=1e-5)  # clamped to -1 vs 1: MSE 4


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ssim_matches_scikit_image_on_random_images(dtype):
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 32, 24, generator=gen, dtype=torch.float64) * 2 - 1
    y = (x + 0.3 * torch.randn(x.shape, generator=gen, dtype=torch.float64)).clamp(-1, 1)
    ours = ssim(x.to(dtype), y.to(dtype))
    assert ours.dtype == dtype and ours.shape == (3,)
    assert np.allclose(ours.double().numpy(), reference_ssim(x, y), atol=1e-4, rtol=0)


def test_ssim_matches_scikit_image_on_structured_images():
    x = photo_batch()
    gen = torch.Generator().manual_seed(2)
    variants = {
        "noisy": (x + 0.1 * torch.randn(x.shape, generator=gen)).clamp(-1, 1),
        "blurred": F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1),
        "darker": x * 0.7 - 0.2,
        "other photo": x.flip(0),
        "grey": x.mean(1, keepdim=True).expand_as(x),
    }
    values = {}
    for name, y in variants.items():
        ours = ssim(x, y)
        assert np.allclose(ours.double().numpy(), reference_ssim(x, y), atol=1e-4, rtol=0), name
        values[name] = ours
    assert (values["other photo"] < 0.3).all() and (values["blurred"] > values["other photo"]).all()


def test_psnr_and_ssim_agree_with_the_mse_ordering_and_reject_bad_shapes():
    x = photo_batch(32)
    gen = torch.Generator().manual_seed(3)
    noise = torch.randn(x.shape, generator=gen)
    small, large = x + 0.05 * noise, x + 0.3 * noise
    assert (psnr(x, small) > psnr(x, large)).all() and (ssim(x, small) > ssim(x, large)).all()
    with pytest.raises(GenlabError, match="same shape"):
        ssim(x, x[:, :1])
    with pytest.raises(GenlabError, match="same shape"):
        psnr(x[0], x[0])
    with pytest.raises(GenlabError, match="at least 11x11"):
        ssim(x[..., :10, :], x[..., :10, :])
