"""Full-reference image quality for images in [-1, 1] (data range L = 2): PSNR and SSIM, one value per image.

Both clamp their inputs to [-1, 1] first (the image as it would be saved).

PSNR = 10 · log10(L² / MSE) dB, MSE over all channels and pixels of one image (`psnr_db`; identical
images give 10·log10(4e12) ≈ 126.02 dB from its MSE floor of 1e-12).

SSIM (Wang, Bovik, Sheikh & Simoncelli 2004), per channel, with local statistics under a Gaussian window w
(11 × 11, σ = 1.5, normalised to sum 1, applied separably):
    μx = w * x,   σx² = w * x² − μx²,   σxy = w * (x·y) − μx·μy        (population moments)
    SSIM map = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)),   C1 = (0.01 L)², C2 = (0.03 L)²
averaged over the 'valid' positions (the window fully inside the image) and then over channels. This equals
scikit-image's `structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=2, channel_axis=...)`, which filters with padding and then drops the 5-pixel border.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.errors import GenlabError
from genlab.models.autoencoder import psnr_db

DATA_RANGE = 2.0
WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03


def _check_pair(x: Tensor, y: Tensor, what: str) -> None:
    if x.shape != y.shape or x.dim() != 4:
        raise GenlabError(f"{what} needs two image batches (B, C, H, W) of the same shape, got {x.shape} and {y.shape}")


def psnr(x: Tensor, y: Tensor) -> Tensor:
    """PSNR in dB of each image pair, (B,), for images (B, C, H, W) in [-1, 1]."""
    _check_pair(x, y, "psnr")
    mse = (x.clamp(-1, 1) - y.clamp(-1, 1)).pow(2).flatten(1).mean(1)
    return psnr_db(mse)


def gaussian_window(*, size: int = WINDOW, sigma: float = SIGMA, device=None, dtype=None) -> Tensor:
    """The 1-D Gaussian taps exp(−k² / 2σ²), k = −(size−1)/2 … (size−1)/2, normalised to sum 1; (size,)."""
    k = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(k**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(x: Tensor, taps: Tensor) -> Tensor:
    """Depthwise 'valid' separable convolution of (B, C, H, W) with taps ⊗ taps; (B, C, H−k+1, W−k+1)."""
    c, k = x.shape[1], taps.numel()
    x = F.conv2d(x, taps.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, taps.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def ssim(x: Tensor, y: Tensor) -> Tensor:
    """Mean SSIM of each image pair, (B,), for images (B, C, H, W) in [-1, 1] with H, W >= 11."""
    _check_pair(x, y, "ssim")
    if min(x.shape[-2:]) < WINDOW:
        raise GenlabError(f"ssim needs images of at least {WINDOW}x{WINDOW} pixels, got {tuple(x.shape[-2:])}")
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    x, y = x.to(dtype).clamp(-1, 1), y.to(dtype).clamp(-1, 1)
    c = x.shape[1]
    taps = gaussian_window(device=x.device, dtype=dtype)
    stats = _blur(torch.cat([x, y, x * x, y * y, x * y], dim=1), taps)  # (B, 5C, H', W')
    mx, my, mxx, myy, mxy = stats.split(c, dim=1)
    vx, vy, cov = mxx - mx * mx, myy - my * my, mxy - mx * my
    c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
    num = (2 * mx * my + c1) * (2 * cov + c2)
    den = (mx * mx + my * my + c1) * (vx + vy + c2)
    return (num / den).flatten(1).mean(1)
