"""`paths.sample_time` with t_min / t_max draws from the law restricted to the window (defect 8 of issue 10).

A clamp piles all the mass outside the window onto its ends (40% at exactly 0.6 for uniform t, t_max = 0.6).
The truncated law has no atom there, and inside the window it is the untruncated law renormalised: checked
against draws of the untruncated law that fall in the window (two-sample Kolmogorov–Smirnov), which does not
share the implementation's inverse-CDF code.
"""

from __future__ import annotations

import math

import pytest
import torch

from genlab.paths import TimeSampling, sample_time

N = 200_000
CASES = [
    ("uniform", 0.0, 1.0, 1.0, 0.0, 0.6),  # the noisy classifier's recipe
    ("uniform", 0.0, 1.0, 3.0, 0.1, 0.6),
    ("logit_normal", 0.0, 1.0, 1.0, 0.2, 0.9),
    ("logit_normal", 0.5, 0.8, 3.0, 0.05, 0.5),
]


def ks_two_sample(a: torch.Tensor, b: torch.Tensor) -> float:
    """sup_t |F_a(t) − F_b(t)| of the two empirical CDFs."""
    a, b = a.double().sort().values, b.double().sort().values
    grid = torch.cat([a, b])
    fa = torch.searchsorted(a, grid, right=True) / len(a)
    fb = torch.searchsorted(b, grid, right=True) / len(b)
    return float((fa - fb).abs().max())


@pytest.mark.parametrize(("kind", "mean", "std", "shift", "t_min", "t_max"), CASES)
def test_truncated_time_has_no_atoms_and_the_renormalised_density(kind, mean, std, shift, t_min, t_max):
    law = dict(kind=kind, mean=mean, std=std, shift=shift)
    t = sample_time(TimeSampling(**law, t_min=t_min, t_max=t_max), N, generator=torch.Generator().manual_seed(0))
    assert t.dtype == torch.float32 and t.shape == (N,)
    assert float(t.min()) >= t_min and float(t.max()) <= t_max
    at_ends = float(((t == t_min) | (t == t_max)).double().mean())
    assert at_ends < 1e-4, f"{at_ends:.1%} of the draws sit exactly at an end of the window"
    free = sample_time(TimeSampling(**law), 4 * N, generator=torch.Generator().manual_seed(1))
    inside = free[(free >= t_min) & (free <= t_max)]
    assert len(inside) > 10_000
    d = ks_two_sample(t, inside)
    critical = 1.95 * math.sqrt((len(t) + len(inside)) / (len(t) * len(inside)))  # KS at level 0.001
    assert d < critical, f"KS distance {d:.4f} >= {critical:.4f}"


def test_no_window_keeps_the_direct_draw():
    """Without t_min / t_max the draw is unchanged (same random stream, same values as before the fix)."""
    for kind in ("uniform", "logit_normal"):
        cfg = TimeSampling(kind=kind, shift=2.0)
        t = sample_time(cfg, 1000, generator=torch.Generator().manual_seed(0))
        g = torch.Generator().manual_seed(0)
        raw = torch.rand(1000, generator=g) if kind == "uniform" else torch.sigmoid(torch.randn(1000, generator=g))
        torch.testing.assert_close(t, 2 * raw / (1 + raw), rtol=0, atol=0)
