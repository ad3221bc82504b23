"""Text-to-video on captioned moving shapes: the motion checker's calibration, then a short videos-t2v run scored by it.

    python benchmarks/video_t2v.py [--steps 300] [--n 64] [--threads 1] [--reuse-run]
        [--run-dir runs/bench-video-t2v] [--out benchmarks/results/video_t2v.json]

1. Calibration (no model): the checker (genlab.metrics.video) on true renders of the 'test' and 'heldout' splits
   against their own captions (should be 1) and against the captions shuffled across videos (3 permutations; the
   reference a model that ignores its caption would score).
2. recipes/videos-t2v.yaml (per-frame latents of runs/shapes-autoencoder, factorized video DiT, MiniLM, CFG
   training) trained for --steps steps, then n videos sampled for the first n captions of 'test' (seen kind×motion
   pairs) and 'heldout' (unseen pairs) at guidance 1 (none) and the recipe's scale, scored by the checker:
   motion accuracy, per-frame attribute accuracy and consistency (see genlab.metrics.video).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from common import train_or_reuse, write_json
from genlab.config import load_recipe
from genlab.data.videos import sample_videos
from genlab.metrics.video import video_scores
from genlab.settings import SampleSettings

RECIPE = "recipes/videos-t2v.yaml"


def calibration(n: int, frames: int) -> dict:
    out = {}
    for split in ("test", "heldout"):
        x, texts, _ = sample_videos(n, split=split, seed=0, frames=frames)
        g = torch.Generator().manual_seed(0)
        shuffled = [video_scores(x, [texts[i] for i in torch.randperm(n, generator=g)]) for _ in range(3)]
        out[split] = {
            "true_captions": video_scores(x, texts),
            "shuffled_captions": {k: sum(s[k] for s in shuffled) / 3 for k in shuffled[0]},
        }
    return out


def score_run(run, n: int, scales: tuple[float, ...]) -> dict:
    frames = run.recipe.data.frames
    out = {}
    for split in ("test", "heldout"):
        _, texts, _ = sample_videos(n, split=split, seed=run.recipe.data.seed, frames=frames)
        for scale in scales:
            settings = SampleSettings(**{**run.recipe.sample.as_dict(), "guidance_scale": scale})
            start = time.perf_counter()
            gen = torch.Generator().manual_seed(0)
            x = run.method.sample(n, cond=texts, settings=settings, generator=gen).x
            row = video_scores(x.cpu(), texts)
            row["seconds"] = round(time.perf_counter() - start, 1)
            out[f"{split}/cfg{scale:g}"] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--run-dir", default="runs/bench-video-t2v")
    ap.add_argument("--reuse-run", action="store_true", help="score the run already in --run-dir")
    ap.add_argument("--out", default="benchmarks/results/video_t2v.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    recipe = load_recipe(RECIPE, [f"train.steps={args.steps}", "train.time_limit_minutes=0"])
    calib = calibration(args.n, recipe.data.frames)
    run, wall = train_or_reuse(recipe, args.run_dir, reuse=args.reuse_run)
    scores = score_run(run, args.n, (1.0, recipe.sample.guidance_scale))
    result = {
        "recipe": RECIPE,
        "steps": args.steps,
        "batch_size": recipe.train.batch_size,
        "train_seconds": wall,
        "n": args.n,
        "sample_settings": recipe.sample.as_dict(),
        "checker_calibration": calib,
        "scores": scores,
    }
    write_json(args.out, result)
    for key, row in scores.items():
        print(f"{key:14s} motion {row['motion']:.3f}  frames {row['frames']:.3f}  consistency {row['consistency']:.3f}")


if __name__ == "__main__":
    main()
