"""Toy 2-D quality: exact 2-Wasserstein distance (POT) of samples vs fresh data, against the
real-vs-real value at the same n.

Trains recipes/toy2d-flow.yaml on each dataset (wall time recorded; goal ≤ 2 CPU minutes), draws
2,000 samples, and computes W2 against 2,000 fresh data points; the floor is W2 between two
independent fresh sets of 2,000. Goal: ratio ≤ 1.5.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import ot
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402
from genlab.config import load_recipe  # noqa: E402
from genlab.data.toy2d import sample_toy2d  # noqa: E402
from genlab.runs import load_run  # noqa: E402
from genlab.train import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def w2(a: torch.Tensor, b: torch.Tensor) -> float:
    """Exact W2 between two equal-size point clouds (uniform weights), by linear programming."""
    cost = ot.dist(a.double().numpy(), b.double().numpy())  # squared Euclidean
    return float(ot.emd2([], [], cost, numItermax=10_000_000)) ** 0.5


def run(name: str, n: int, overrides: list[str], workdir: Path) -> dict:
    recipe = load_recipe(ROOT / "recipes" / "toy2d-flow.yaml", [f"--data.name={name}", *overrides])
    start = time.perf_counter()
    train(recipe, workdir / name, progress=False)
    minutes = (time.perf_counter() - start) / 60
    trained = load_run(workdir / name)
    settings = trained.settings  # the recipe's sample settings, which `sample` uses
    samples = trained.sample(n, seed=123)
    g = torch.Generator().manual_seed(1)  # fresh data: a stream of its own, not the sampler's noise
    fresh_a, fresh_b = sample_toy2d(name, n, g), sample_toy2d(name, n, g)
    model_w2, floor = w2(samples.x, fresh_a), w2(fresh_b, fresh_a)
    out = {
        "train_minutes": round(minutes, 2),
        "steps": recipe.train.steps,
        "w2": model_w2,
        "w2_real_vs_real": floor,
        "ratio": model_w2 / floor,
        "sampler": settings.sampler,
        "sample_steps": settings.steps,
        "grid": settings.grid,
        "nfe": samples.nfe,
    }
    print(name, out)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--datasets", nargs="+", default=["moons", "8gaussians"])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "toy2d_w2.json"))
    p.add_argument("overrides", nargs="*", help="recipe overrides, e.g. --train.steps=500")
    args, extra = p.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {d: run(d, args.n, [*args.overrides, *extra], Path(tmp)) for d in args.datasets}
    write_json(
        args.out,
        {"benchmark": "toy2d_w2", "n": args.n, "goal": "ratio <= 1.5 within 2 CPU minutes", "results": results},
    )


if __name__ == "__main__":
    main()
