"""GANSpace on a StyleGAN-style digits run trained here: the top PCA directions of w, each named by measurement.

    OMP_NUM_THREADS=1 python benchmarks/ganspace.py [--steps N] [--components 5] [--reuse-run]

Trains recipes/digits-stylegan.yaml (its own train.steps unless --steps) into benchmarks/out/ganspace, then runs
`genlab directions` on it (genlab.directions.write_directions: PCA of 10000 w samples, 200 base points of all
classes moved to t = ±sigma) and, as the reference the names must beat, the same measures along random
orthonormal directions of w with the same σ_k. Writes benchmarks/results/ganspace.json, the grid
docs/images/ganspace.png (row k: w + t·σ_k·v_k, t from −sigma to +sigma) and regenerates docs/control.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from common import train_or_reuse, write_json
from genlab.config import load_recipe
from genlab.directions import Directions, measure_directions, principal_directions, write_directions
from genlab.runs import train_seconds

ROOT = Path(__file__).resolve().parents[1]


def random_directions(dirs: Directions, seed: int) -> Directions:
    """Random orthonormal directions carrying the PCA's σ_k (the baseline: what any direction of that size does)."""
    q, _ = torch.linalg.qr(
        torch.randn(len(dirs.variance), len(dirs.variance), generator=torch.Generator().manual_seed(seed))
    )
    return Directions(dirs.mean, q.T.contiguous(), dirs.variance, dirs.explained)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default=str(ROOT / "recipes" / "digits-stylegan.yaml"))
    p.add_argument("--steps", type=int, help="train.steps (default: the recipe's)")
    p.add_argument("--run", default=str(ROOT / "benchmarks" / "out" / "ganspace"), help="run folder")
    p.add_argument("--reuse-run", action="store_true", help="measure the run folder already there (no training)")
    p.add_argument("--components", type=int, default=5)
    p.add_argument("--sigma", type=float, default=3.0)
    p.add_argument("--points", type=int, default=7)
    p.add_argument("--samples", type=int, default=10000)
    p.add_argument("--bases", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ganspace.json"))
    p.add_argument("--image", default=str(ROOT / "docs" / "images" / "ganspace.png"))
    args = p.parse_args()
    torch.set_num_threads(1)
    recipe = load_recipe(args.recipe, [f"--train.steps={args.steps}"] if args.steps else [])
    run, wall = train_or_reuse(recipe, args.run, reuse=args.reuse_run)
    start = time.perf_counter()
    opts = dict(components=args.components, sigma=args.sigma, points=args.points, seed=args.seed)
    png, js, report = write_directions(run, args.image, samples=args.samples, bases=args.bases, **opts)
    js.unlink()  # the measured names go into the results JSON below
    dirs = principal_directions(run, samples=args.samples, seed=args.seed)
    baseline = measure_directions(
        run,
        random_directions(dirs, args.seed + 7),
        components=args.components,
        sigma=args.sigma,
        bases=args.bases,
        seed=args.seed + 1,
    )
    write_json(
        args.out,
        {
            "recipe": Path(args.recipe).name,
            "steps": recipe.train.steps,
            "recipe_steps": load_recipe(args.recipe).train.steps,
            "batch_size": recipe.train.batch_size,
            "seed": recipe.seed,
            "train_seconds": round(train_seconds(args.run), 1),
            "train_wall_seconds": wall,
            "directions_seconds": round(time.perf_counter() - start, 1),
            "image": str(Path(args.image).relative_to(ROOT)) if Path(args.image).is_relative_to(ROOT) else args.image,
            "w_dim": int(dirs.mean.numel()),
            "variance_explained": [float(v) for v in dirs.explained],
            **{k: v for k, v in report.items() if k != "run"},
            "random_directions": baseline,
        },
    )
    print(f"grid {png}")
    from control_docs import write_docs

    write_docs()


if __name__ == "__main__":
    main()
