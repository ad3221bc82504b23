"""Held-out bits/dim of a trained digits flow run through the probability-flow ODE: estimator and solver.

One seeded subset of the test split (unconditional density, 8-bit bins by uniform dequantization). Rows:
Hutchinson (1 Rademacher probe) with RK4 at several step counts and adaptive Dormand–Prince (solver
convergence), then exact trace vs Hutchinson on the same first `--n-exact` items with the same solver
(estimator bias and noise). NFE = velocity + divergence evaluations, each one forward + backward pass.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402
from genlab.data import build_dataset  # noqa: E402
from genlab.likelihood import bits_per_dim  # noqa: E402
from genlab.runs import load_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def measure(method, x: torch.Tensor, **opts) -> tuple[dict, torch.Tensor]:
    stats: dict = {}
    start = time.perf_counter()
    bpd = bits_per_dim(method.log_likelihood(x, None, stats=stats, **opts).double(), math.prod(x.shape[1:]))
    row = {
        "n": len(x),
        "bits_per_dim": float(bpd.mean()),
        "std_err": float(bpd.std() / math.sqrt(len(x))),
        **stats,
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(row, flush=True)
    return row, bpd


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--run", default=str(ROOT / "runs" / "digits-flow"))
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--n-exact", type=int, default=16)
    p.add_argument("--exact-steps", type=int, default=8)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "likelihood_digits.json"))
    args = p.parse_args()
    if min(args.n, args.n_exact) < 2:
        p.error("--n and --n-exact must be >= 2 (standard errors need two items)")
    run = load_run(args.run)
    method, step = run.method, run.step
    test = build_dataset(run.recipe.data, split="test")
    x = test.x[torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[: args.n]]
    solvers = [measure(method, x, divergence="hutchinson", steps=s)[0] for s in (8, 16, 32)]
    solvers.append(measure(method, x, divergence="hutchinson", solver="dopri5", rtol=1e-4, atol=1e-4)[0])
    few = x[: args.n_exact]
    exact, e = measure(method, few, divergence="exact", steps=args.exact_steps)
    hutch, h = measure(method, few, divergence="hutchinson", steps=args.exact_steps)
    diff = h - e
    write_json(
        args.out,
        {
            "run": args.run,
            "step": step,
            "solvers": solvers,
            "exact": exact,
            "hutchinson": hutch,
            "hutchinson_minus_exact": {
                "mean": float(diff.mean()),
                "std": float(diff.std()),
                "std_err": float(diff.std() / math.sqrt(len(diff))),
            },
        },
    )


if __name__ == "__main__":
    main()
