"""The probability of an 8-bit pixel bin under a Gaussian: an honest likelihood for continuous models of images.

Pixel u ∈ {0..255} sits at x = u/127.5 − 1; its bin is [x − 1/255, x + 1/255], the outer bins reaching to ±∞, so
the 256 bin masses of any N(μ, σ²) sum to exactly 1 (Kingma et al. 2016, IAF; Salimans et al. 2017 used logistics):
    log P(u) = log(Φ((x + 1/255 − μ)/σ) − Φ((x − 1/255 − μ)/σ)).
Differences of Φ are taken on the side of the mean where they do not cancel, through log Φ (torch.special.log_ndtr).
Used as the VAE decoder's likelihood and as the GMM's exact likelihood of image data.
"""

from __future__ import annotations

import torch
from torch import Tensor

HALF_BIN = 1.0 / 255.0


def bin_centres(x: Tensor) -> Tensor:
    """x snapped to the 8-bit grid u/127.5 − 1 (the bin each value falls in)."""
    return torch.round((x.clamp(-1, 1) + 1) * 127.5) / 127.5 - 1


def _log_diff_ndtr(a: Tensor, b: Tensor) -> Tensor:
    """log(Φ(b) − Φ(a)) for a < b, computed where the difference does not cancel."""
    flip = (a + b) > 0  # both in the upper tail: use Φ(−a) − Φ(−b)
    lo, hi = torch.where(flip, -b, a), torch.where(flip, -a, b)
    log_hi, log_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    return log_hi + torch.log(-torch.expm1((log_lo - log_hi).clamp(max=-1e-12)))


def discretized_gaussian_log_prob(x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """Elementwise log P(8-bit bin of x) under N(mean, exp(log_scale)²) (broadcast shape; sum over dims yourself)."""
    x = bin_centres(x)
    inv = torch.exp(-log_scale)
    lower_edge, upper_edge = x < -1 + HALF_BIN, x > 1 - HALF_BIN
    a = (x - HALF_BIN - mean) * inv  # standardised lower bin edge
    b = (x + HALF_BIN - mean) * inv  # standardised upper bin edge
    interior = _log_diff_ndtr(a, b)
    out = torch.where(
        lower_edge, torch.special.log_ndtr(b), torch.where(upper_edge, torch.special.log_ndtr(-a), interior)
    )
    return out
