"""Text-to-video started from the shipped text-to-image model: what that start buys, and the full recipe's scores.

    python benchmarks/video_init.py [--steps 1000] [--n-ablation 100] [--arms init,scratch] [--n 200]
        [--full runs/videos-t2v-init] [--threads 2] [--reuse-runs] [--out benchmarks/results/video_init.json]
        [--picture docs/images/video_init.png]

1. Ablation at one budget (same recipe, steps, seed, so the same data, batches and noise stream): recipes/
   videos-t2v-init.yaml trained --steps steps into runs/bench-video-init-<arm>, one arm after the other:
   init:    as written: the video DiT's spatial layers and the autoencoder from shipped:shapes-t2i, the temporal
            layers at identity;
   scratch: the same network from random weights (method.init ""), on the same latents: the shipped run's
            autoencoder, written out once as an autoencoder run folder (runs/bench-shipped-autoencoder).
   Each arm is scored as benchmarks/video_t2v.py scores its arms (the method's own eval on the first --n-ablation
   captions of 'test' and 'heldout': motion with a 95 % Wilson interval, frames, identity, consistency, fd), and,
   as the recipe also trains image-to-video (method.first_frame), with each true video's first frame given and kept
   (i2v_*, i2v_first_frame_psnr: dB between the generated and the given first frame).
2. --full RUN (default runs/videos-t2v-init, from `genlab train recipes/videos-t2v-init.yaml`; skipped when it is
   not there; '' skips it): the same scores on the first --n captions, image to video both with the first latent
   frame kept on the given one (i2v_*, the default) and with it given to the network only (i2v_free_*), its
   recorded training seconds and checkpoint size, and --picture: for the first 4 test captions, rows of the true
   video, the text-to-video sample and the image-to-video sample (the true first frame given and kept), frames left
   to right.
   The autoencoder's own reconstruction PSNR of those first frames is the ceiling of i2v_first_frame_psnr.
Train seconds are wall time on a shared machine: compare them within one run only.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from common import train_or_reuse, write_json
from genlab.config import load_recipe, recipe_from_dict
from genlab.data.videos import build_videos
from genlab.metrics.video import frame_psnr
from genlab.runs import build_method, load_run, shipped_asset, train_seconds
from video_t2v import calibration, score_run

RECIPE = "recipes/videos-t2v-init.yaml"
SHIPPED_AE = "runs/bench-shipped-autoencoder"
ARMS = {"init": [], "scratch": ["method.init=", f"method.autoencoder={SHIPPED_AE}"]}


def write_shipped_autoencoder(folder: str) -> None:
    """The autoencoder inside the shipped text-to-image run as an autoencoder run folder of its own."""
    from genlab.checkpoint import save_checkpoint

    shipped = load_run(shipped_asset("shapes-t2i"))
    recipe = recipe_from_dict(shipped.recipe.method.frozen["autoencoder"], "shipped autoencoder")
    method = build_method(recipe)
    method.ae.load_state_dict(shipped.method.autoencoder.state_dict())
    state = method.state_dict()
    save_checkpoint(Path(folder), recipe, step=recipe.train.steps, model=state, ema=state, state=None)


def first_frame_ceiling(run, n: int) -> dict:
    """PSNR (dB) of the autoencoder's reconstruction of the first frames the image-to-video scores give."""
    out = {}
    for split in ("test", "heldout"):
        x = build_videos(run.recipe.data, split=split).x[:n, :2]
        recon = run.method.from_latent(run.method.to_latent(x))
        out[split] = round(frame_psnr(recon, x)[:, 0].mean().item(), 3)
    return out


def picture(run, path: str, n: int = 4) -> None:
    """Rows per caption: the true video, text to video, image to video from its first frame (seed 0, the run's
    sample settings), each row a video's frames left to right, labelled."""
    from genlab.data.images import save_grid

    data = build_videos(run.recipe.data, split="test")
    captions = list(data.texts[:n])
    gen = torch.Generator().manual_seed(0)
    t2v = run.method.sample(n, cond=captions, settings=run.recipe.sample, generator=gen).x.cpu()
    gen = torch.Generator().manual_seed(0)
    i2v = run.method.sample(n, cond=captions, settings=run.recipe.sample, generator=gen, first_frame=data.x[:n, 0])
    rows = torch.stack([data.x[:n], t2v, i2v.x.cpu()], dim=1).flatten(0, 1)  # (3n, T, C, H, W)
    labels = [f"{kind}: {c}" if kind == "true" else kind for c in captions for kind in ("true", "t2v", "i2v")]
    save_grid(rows.flatten(0, 1), path, nrow=rows.shape[1], scale=3, row_labels=labels)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--n", type=int, default=200, help="captions per split for --full (at most data.n_test)")
    ap.add_argument("--n-ablation", type=int, default=100, help="captions per split for the ablation arms")
    ap.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of {', '.join(ARMS)} ('' for none)")
    ap.add_argument("--full", default="runs/videos-t2v-init", help="the full recipe's run folder to score")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--reuse-runs",
        action="store_true",
        help="score the runs already in runs/bench-video-init-<arm> (train the rest)",
    )
    ap.add_argument("--out", default="benchmarks/results/video_init.json")
    ap.add_argument("--picture", default="docs/images/video_init.png", help="the full run's samples ('' for none)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    arms = [a for a in args.arms.split(",") if a]
    if any(a not in ARMS for a in arms):
        raise SystemExit(f"--arms takes a comma-separated list of {', '.join(ARMS)}, got {args.arms!r}")
    recipe = load_recipe(RECIPE)
    scales = (recipe.sample.guidance_scale,)
    result = {
        "recipe": RECIPE,
        "n": args.n,
        "n_ablation": args.n_ablation,
        "sample_settings": recipe.sample.as_dict(),
        "checker_calibration": calibration(args.n, recipe.data.frames),
        "ablation": {"steps": args.steps, "batch_size": recipe.train.batch_size, "arms": {}},
    }
    if "scratch" in arms and not Path(SHIPPED_AE, "checkpoint").is_dir():
        write_shipped_autoencoder(SHIPPED_AE)
    for arm in arms:
        overrides = [*ARMS[arm], f"train.steps={args.steps}", "train.time_limit_minutes=0"]
        folder = f"runs/bench-video-init-{arm}"
        reuse = args.reuse_runs and Path(folder, "checkpoint").is_dir()  # an arm not trained yet is trained
        run, wall = train_or_reuse(load_recipe(RECIPE, overrides), folder, reuse=reuse)
        result["ablation"]["arms"][arm] = {
            "overrides": ARMS[arm],
            "parameters": sum(p.numel() for p in run.method.model.parameters()),
            "train_seconds": wall if wall is not None else round(train_seconds(folder), 1),  # reused: as recorded
            "scores": score_run(run, args.n_ablation, scales),
        }
        write_json(args.out, result)  # each finished arm survives a later failure
    if args.full and Path(args.full).is_dir():
        run = load_run(args.full)
        weights = Path(args.full, "checkpoint", "ema.safetensors")
        result["full"] = {
            "run": args.full,
            "steps": run.step,
            "train_seconds": round(train_seconds(args.full), 1),
            "parameters": sum(p.numel() for p in run.method.model.parameters()),
            "ema_bytes": weights.stat().st_size,
            "first_frame_reconstruction_psnr": first_frame_ceiling(run, args.n),
            "scores": score_run(run, args.n, scales, free_first_frame=True),
        }
        write_json(args.out, result)
        if args.picture:
            picture(run, args.picture)
    for name, arm in [*result["ablation"]["arms"].items(), *([("full", result["full"])] if "full" in result else [])]:
        for key, row in arm["scores"].items():
            lo, hi = row["motion_ci95"]
            print(
                f"{name:8s} {key:14s} motion {row['motion']:.3f} [{lo:.3f}, {hi:.3f}]  frames {row['frames']:.3f}"
                f"  identity {row['identity']:.3f}  fd {row['fd']:.1f}  i2v motion {row.get('i2v_motion', 0):.3f}"
                f"  first-frame psnr {row.get('i2v_first_frame_psnr', 0):.2f}"
            )


if __name__ == "__main__":
    main()
