"""Memorization ratio: equal-size banks whatever the split sizes, and the matched real-data baseline."""

from __future__ import annotations

import torch

from genlab.metrics.memorization import memorization


def _gauss(n: int, seed: int, dim: int = 8) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_ratio_is_unbiased_when_train_is_smaller_than_heldout():
    # samples, train and held-out are independent draws of one law: nothing is memorized, the ratio must be ≈ 1.
    # With |T| = 100 < |H| = 1000 the old code compared 100 train points with 1,000 held-out points (ratio ≈ 1.3).
    samples, train, heldout = _gauss(500, 0), _gauss(100, 1), _gauss(1000, 2)
    out = memorization(samples, train, heldout, seed=0)
    assert out["train_subset_size"] == out["heldout_size"] == 100
    assert abs(out["nn_ratio"] - 1.0) < 0.08
    assert not out["memorized"]


def test_real_baseline_is_near_one_and_copies_fall_far_below_it():
    train, heldout = _gauss(600, 1), _gauss(300, 2)
    fresh = memorization(_gauss(400, 0), train, heldout, seed=0)
    copies = memorization(train[:400], train, heldout, seed=0)
    assert abs(fresh["nn_ratio_real"] - 1.0) < 0.05 and 0 < fresh["nn_ratio_real_sd"] < 0.1
    assert fresh["baseline_bank_size"] == 150
    # the baseline depends on the real data only, never on the samples
    assert copies["nn_ratio_real"] == fresh["nn_ratio_real"]
    assert abs(fresh["nn_ratio"] - fresh["nn_ratio_real"]) < 3 * fresh["nn_ratio_real_sd"] + 0.05
    assert copies["nn_ratio"] < fresh["nn_ratio_real"] - 5 * fresh["nn_ratio_real_sd"]
