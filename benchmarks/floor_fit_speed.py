"""The Gaussian-fit baseline of every image evaluation (genlab.metrics.floor.gaussian_fit_samples) on small
training sets: the eigendecomposition of the D x D covariance vs drawing through the centred data matrix.

With n training items in D dimensions (n <= D, e.g. the suite's 64 shapes images, D = 3072), N(mu, Sigma) with
Sigma = Xc^T Xc / (n - 1) is exactly mu + Xc^T w / sqrt(n - 1), w ~ N(0, I_n): O(n D m) work instead of the
O(D^3) eigendecomposition. Both are timed on the same data in interleaved repeats (medians, ratio), and the draws'
agreement with the target is checked: the largest deviation of each method's draws' covariance from Sigma, relative
to Sigma's largest entry (both shrink as 1/sqrt(m) with the number of draws m).

  python benchmarks/floor_fit_speed.py            # shapes-sized images (64 x 3 x 32 x 32)
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial
from pathlib import Path

import torch

from common import write_json
from genlab.metrics.floor import gaussian_fit_samples

ROOT = Path(__file__).resolve().parents[1]


def cov_error(draws: torch.Tensor, target: torch.Tensor) -> float:
    flat = draws.reshape(len(draws), -1).double()
    return float((torch.cov(flat.T) - target).abs().max() / target.abs().max())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-n", type=int, default=64)
    ap.add_argument("--shape", default="3,32,32")
    ap.add_argument("--draws", type=int, default=64, help="draws per call, as the suite's evaluations make")
    ap.add_argument("--check-draws", type=int, default=4000, help="draws for the covariance check (no clipping)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "floor_fit_speed.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    shape = tuple(int(s) for s in args.shape.split(","))
    train = torch.rand(args.train_n, *shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    methods = {
        "eigh": partial(gaussian_fit_samples, route="eigh"),  # the route every evaluation took before
        "data matrix": partial(gaussian_fit_samples, route="data"),  # the route "auto" takes when N <= D
    }
    times = {k: [] for k in methods}
    for _ in range(args.repeats):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn(train, args.draws, seed=1)
            times[name].append(time.perf_counter() - start)
    flat = train.reshape(len(train), -1)  # 2-D: no clipping, so the draws' covariance targets Sigma itself
    target = torch.cov(flat.double().T)
    errors = {name: cov_error(fn(flat, args.check_draws, seed=2), target) for name, fn in methods.items()}
    medians = {k: statistics.median(v) for k, v in times.items()}
    write_json(
        args.out,
        {
            "train": list(train.shape),
            "dims": flat.shape[1],
            "draws": args.draws,
            "repeats": args.repeats,
            "median_s": {k: round(v, 4) for k, v in medians.items()},
            "speedup": round(medians["eigh"] / medians["data matrix"], 1),
            "cov_max_rel_error": {k: round(v, 4) for k, v in errors.items()},
            "check_draws": args.check_draws,
            "times_s": {k: [round(t, 4) for t in v] for k, v in times.items()},
        },
    )


if __name__ == "__main__":
    main()
