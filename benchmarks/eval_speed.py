"""Eval speed: seconds to evaluate 1,000 digit samples (features + every metric + floor + memorization + files).

The samples are real training digits plus Gaussian noise (std 0.2, clipped), labels cycled 0..9, so the timing
does not depend on a trained model. Reported: the median over `--repeats` runs of (a) `evaluate_sets` (features,
FD, KID over 100 subsets, PRDC, class metrics, the floor at m = 360 for samples / real / Gaussian fit,
memorization), (b) writing eval.json / eval.md / plots, and each part alone; the baseline measured in the same
run is torchmetrics' FID + KID (update + compute, same feature net, same images), quoted as a ratio.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402
from genlab.data.digits import DigitsConfig, build_digits  # noqa: E402
from genlab.metrics.features import digits_feature_net, extract  # noqa: E402
from genlab.metrics.fid import frechet_distance, kid  # noqa: E402
from genlab.metrics.memorization import memorization  # noqa: E402
from genlab.metrics.output import write_report  # noqa: E402
from genlab.metrics.prdc import prdc  # noqa: E402
from genlab.metrics.report import evaluate_sets  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def kid_subset_size(train: torch.Tensor, x: torch.Tensor) -> int:
    """genlab's KID subset size (1000, capped at both set sizes), used by the baseline as well."""
    return min(1000, len(train), len(x))


def torchmetrics_baseline(net, train: torch.Tensor, x: torch.Tensor) -> None:
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    size = kid_subset_size(train, x)
    for metric in (
        FrechetInceptionDistance(feature=copy.deepcopy(net.module)),
        KernelInceptionDistance(feature=copy.deepcopy(net.module), subsets=100, subset_size=size),
    ):
        metric.update(train, real=True)
        metric.update(x, real=False)
        metric.compute()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/eval_speed.json"))
    args = p.parse_args()
    warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
    train, test = build_digits(DigitsConfig(), split="train"), build_digits(DigitsConfig(), split="test")
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(0, len(train), (args.n,), generator=gen)
    x = (train.x[idx] + 0.2 * torch.randn(args.n, 1, 8, 8, generator=gen)).clamp(-1, 1)
    labels = torch.arange(args.n) % 10
    net = digits_feature_net()
    report: dict = {}
    with tempfile.TemporaryDirectory() as tmp:

        def run_all():
            report.update(evaluate_sets(x, labels, train=train, heldout=test, feature_net=net))
            write_report(report, x=x, labels=labels, train=train, out=tmp)

        total = median_seconds(run_all, args.repeats)
        files = median_seconds(lambda: write_report(report, x=x, labels=labels, train=train, out=tmp), args.repeats)
    fx, fr = extract(net, x)[0], extract(net, train.x)[0]
    parts = {
        "features_s": median_seconds(lambda: (extract(net, x), extract(net, train.x)), args.repeats),
        "fd_s": median_seconds(lambda: frechet_distance(fx, fr), args.repeats),
        "kid_100_subsets_s": median_seconds(lambda: kid(fr, fx), args.repeats),
        "prdc_s": median_seconds(lambda: prdc(fr, fx), args.repeats),
        "memorization_s": median_seconds(lambda: memorization(x, train.x, test.x), args.repeats),
        "write_files_s": files,
    }
    baseline = median_seconds(lambda: torchmetrics_baseline(net, train.x, x), args.repeats)
    result = {
        "n": args.n,
        "repeats": args.repeats,
        "reference": len(train),
        "heldout": len(test),
        "evaluate_and_write_s": round(total, 3),
        "ms_per_sample": round(1000 * total / args.n, 3),
        "parts": {k: round(v, 4) for k, v in parts.items()},
        "baseline_torchmetrics_fid_kid_s": round(baseline, 3),
        "compared": {
            "genlab": "evaluate_sets (features, FD, KID 100 subsets, PRDC, class metrics, floor, memorization) "
            "+ write_report (eval.json, eval.md, plots)",
            "baseline": "torchmetrics FrechetInceptionDistance + KernelInceptionDistance (update real + update fake "
            "+ compute) only: fewer metrics than the genlab side, same feature net, same images",
            "kid_subsets": 100,
            "kid_subset_size": kid_subset_size(train.x, x),
        },
        "ratio_full_eval_to_torchmetrics_fid_kid": round(total / baseline, 2),
        "metrics": {k: round(v, 4) for k, v in report["metrics"].items()},
    }
    write_json(args.out, result)
    print(
        f"{args.n} samples: {total:.2f} s for the full evaluation ({parts['write_files_s']:.2f} s of it files); "
        f"torchmetrics FID+KID alone {baseline:.2f} s"
    )


if __name__ == "__main__":
    main()
