"""Text-to-video on captioned moving shapes: the motion checker's calibration, then three arms of the text-to-video
recipe trained for the same steps and scored the same way.

    python benchmarks/video_t2v.py [--steps 1000] [--n 200] [--arms factorized,full,tae] [--scales 4]
        [--threads 1] [--reuse-runs] [--out benchmarks/results/video_t2v.json]

1. Calibration (no model): the checker (genlab.metrics.video) on true renders of the 'test' and 'heldout' splits
   against their own captions (should be 1) and against the captions shuffled across videos (3 permutations; the
   reference a model that ignores its caption would score). FD floor: the shipped video feature net's Fréchet
   distance between the first n videos of a split and another draw of n (seed + 1): sampling noise at this n.
2. Arms, each trained --steps steps (same seed, so the same data, batches and noise stream) into
   runs/bench-video-t2v-<arm>, one after the other in this process (one thread):
   factorized: recipes/videos-t2v.yaml as shipped (per-frame latents of runs/shapes-autoencoder, factorized
               spatial-then-temporal attention);
   full:       the same with model.attention=full (one attention over all 128 space-time tokens);
   tae:        recipes/videos-t2v-tae.yaml (latents of the causal video autoencoder runs/videos-tae: 4 latent
               frames instead of 8, factorized attention).
   Each arm then samples one video for each of the first n captions of 'test' (seen kind x motion pairs) and of
   'heldout' (unseen pairs), with the same sampler, seed and captions, through the method's own eval
   (`heldout_metrics`, what `genlab eval` reports): motion accuracy with a 95 % Wilson interval over videos,
   per-frame attribute accuracy ('frames'), 'identity', 'consistency' and 'fd' against the true videos of those
   captions. --scales lists the guidance scales to sample at (default: the recipe's).

The top-level "scores" and "train_seconds" are the factorized arm's (the shipped recipe), as in earlier versions.
Train seconds are wall time on a shared machine: compare them within one run only.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from common import train_or_reuse, wilson, write_json
from genlab.config import load_recipe
from genlab.data.videos import build_videos, sample_videos
from genlab.metrics.fid import frechet_distance
from genlab.metrics.video import video_scores
from genlab.metrics.video_features import load_video_net, video_features
from genlab.settings import SampleSettings

RECIPE = "recipes/videos-t2v.yaml"
ARMS = {
    "factorized": (RECIPE, []),
    "full": (RECIPE, ["model.attention=full"]),
    "tae": ("recipes/videos-t2v-tae.yaml", []),
}
SPLITS = ("test", "heldout")


def calibration(n: int, frames: int) -> dict:
    net = load_video_net()
    out = {}
    for split in SPLITS:
        x, texts, _ = sample_videos(n, split=split, seed=0, frames=frames)
        other, _, _ = sample_videos(n, split=split, seed=1, frames=frames)
        g = torch.Generator().manual_seed(0)
        shuffled = [video_scores(x, [texts[i] for i in torch.randperm(n, generator=g)]) for _ in range(3)]
        out[split] = {
            "true_captions": video_scores(x, texts),
            "shuffled_captions": {k: sum(s[k] for s in shuffled) / 3 for k in shuffled[0]},
            "fd_floor_two_real_draws": round(frechet_distance(video_features(net, x), video_features(net, other)), 3),
        }
    return out


def recipe_for(arm: str, steps: int):
    path, overrides = ARMS[arm]
    return load_recipe(path, [*overrides, f"train.steps={steps}", "train.time_limit_minutes=0"])


def score_run(run, n: int, scales: tuple[float, ...], **opts) -> dict:
    """Scores per '<split>/cfg<scale>': the eval's (motion, frames, consistency, identity, fd; i2v_* too for a run
    trained with first frames) on the first n captions of the split, plus motion counts and Wilson intervals; `opts`
    go to the method's heldout_metrics."""
    out = {}
    for split in SPLITS:
        data = build_videos(run.recipe.data, split=split)
        if n > len(data.texts):
            raise SystemExit(f"--n {n} is more than the {len(data.texts)} videos of the {split!r} split")
        for scale in scales:
            settings = SampleSettings(**{**run.recipe.sample.as_dict(), "guidance_scale": scale})
            start = time.perf_counter()
            row = run.method.heldout_metrics(data, seed=0, n=n, settings=settings, **opts)
            for prefix in (p for p in ("", "i2v_", "i2v_free_") if p + "motion" in row):  # image-to-video too
                k = round(row[prefix + "motion"] * n)
                row.update({prefix + "motion_videos": k, prefix + "motion_ci95": wilson(k, n)})
                row[prefix + "fd"] = round(row[prefix + "fd"], 3)
            row["seconds"] = round(time.perf_counter() - start, 1)
            out[f"{split}/cfg{scale:g}"] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--n", type=int, default=200, help="captions per split (at most the recipe's data.n_test)")
    ap.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of {', '.join(ARMS)}")
    ap.add_argument("--scales", default="", help="comma-separated guidance scales (default: the recipe's)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reuse-runs", action="store_true", help="score the runs already in runs/bench-video-t2v-<arm>")
    ap.add_argument("--out", default="benchmarks/results/video_t2v.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    arms = [a for a in args.arms.split(",") if a]
    if not arms or any(a not in ARMS for a in arms):
        raise SystemExit(f"--arms takes a comma-separated list of {', '.join(ARMS)}, got {args.arms!r}")
    recipes = {arm: recipe_for(arm, args.steps) for arm in arms}
    first = recipes[arms[0]]
    for arm, recipe in recipes.items():  # the comparison is only fair on the same data and sampler
        if recipe.data != first.data or recipe.sample != first.sample or recipe.train != first.train:
            raise SystemExit(f"arm {arm!r} differs from {arms[0]!r} in data, sample or train settings")
    scales = tuple(float(s) for s in args.scales.split(",") if s) or (first.sample.guidance_scale,)
    result = {
        "recipe": RECIPE,
        "steps": args.steps,
        "batch_size": first.train.batch_size,
        "n": args.n,
        "sample_settings": first.sample.as_dict(),
        "checker_calibration": calibration(args.n, first.data.frames),
        "arms": {},
    }
    for arm in arms:
        run, wall = train_or_reuse(recipes[arm], f"runs/bench-video-t2v-{arm}", reuse=args.reuse_runs)
        path, overrides = ARMS[arm]
        result["arms"][arm] = {
            "recipe": path,
            "overrides": overrides,
            "autoencoder": str(recipes[arm].method.autoencoder),
            "parameters": sum(p.numel() for p in run.method.model.parameters()),
            "train_seconds": wall,
            "scores": score_run(run, args.n, scales),
        }
        if arm == "factorized":  # the keys of earlier versions: the shipped recipe's numbers
            result["train_seconds"] = wall
            result["scores"] = result["arms"][arm]["scores"]
        write_json(args.out, result)  # each finished arm survives a later failure
        for key, row in result["arms"][arm]["scores"].items():
            lo, hi = row["motion_ci95"]
            print(
                f"{arm:10s} {key:14s} motion {row['motion']:.3f} [{lo:.3f}, {hi:.3f}]  frames {row['frames']:.3f}"
                f"  identity {row['identity']:.3f}  consistency {row['consistency']:.3f}  fd {row['fd']:.1f}"
            )


if __name__ == "__main__":
    main()
