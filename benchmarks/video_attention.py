"""Factorized (spatial then temporal) vs full space-time attention in the video DiT: speed, memory and quality.

    python benchmarks/video_attention.py [--steps 300] [--n 64] [--repeats 5] [--sample-n 8] [--threads 1]
        [--reuse-runs] [--skip-speed | --skip-quality] [--out benchmarks/results/video_attention.json]

--skip-speed / --skip-quality rerun one part and keep the other part's numbers from an existing --out.

Both arms are recipes/videos-t2v.yaml (micro video DiT, patch 2 on 8 per-frame latents of 4x8x8 = 8 x 16 = 128
tokens, MiniLM text, CFG training) with model.attention=factorized or full; nothing else differs. Note that at the
same depth a factorized layer holds two DiT blocks (spatial + temporal), a full layer one, so the factorized
model has about twice the parameters: the JSON gives both counts.
1. Speed and memory (one process, --threads threads, same data, warm-up step first): --repeats interleaved rounds
   (the arms take turns, order alternating) of one training step (batch 32) and of sampling --sample-n videos
   with the recipe's sample settings (Heun, 16 steps, CFG 4), and of the DiT alone (forward + backward of a
   squared-output loss on the same batch's latents, text and t: no autoencoder, text encoder or optimizer, so the
   attention's share is not diluted). Medians; ratios full / factorized (> 1: full is faster). Memory: the rise
   of the process's peak RSS (VmHWM, reset before each measured call) over the RSS just before it, with glibc's
   mmap threshold at 128 KiB (the script re-executes itself with MALLOC_MMAP_THRESHOLD_ set) so that freed
   tensors return to the OS: rough, CPU-allocator bytes, not GPU memory.
2. Quality after the same budget: each arm trained --steps steps (same seed, data and batches) into
   runs/bench-video-attention-<arm>, then n videos sampled for the first n captions of the 'test' split and scored
   by the motion checker (genlab.metrics.video: motion, frames, consistency, identity) and the Fréchet distance in
   the shipped video feature net (genlab.metrics.video_features) against the true test videos of those captions.
   The FD floor (a second draw of n true test videos against the first) says how much of an FD is sampling noise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import measured, train_or_reuse, write_json
from genlab.config import load_recipe
from genlab.data.videos import sample_videos
from genlab.metrics.fid import frechet_distance
from genlab.metrics.video import video_scores
from genlab.metrics.video_features import load_video_net, video_fd, video_features
from genlab.settings import SampleSettings

MMAP = str(128 * 1024)

RECIPE = "recipes/videos-t2v.yaml"
ARMS = ("factorized", "full")


def recipe_for(arm: str, steps: int):
    return load_recipe(RECIPE, [f"model.attention={arm}", f"train.steps={steps}", "train.time_limit_minutes=0"])


def speed(repeats: int, sample_n: int) -> dict:
    from genlab.train import Trainer

    trainers, out = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for arm in ARMS:
            trainers[arm] = Trainer(recipe_for(arm, 10), Path(tmp) / arm)
            trainers[arm].train_step()  # warm-up: allocates the gradients and the AdamW state
        recipe = trainers[ARMS[0]].recipe
        _, texts, _ = sample_videos(sample_n, split="test", seed=0, frames=recipe.data.frames)
        settings = SampleSettings(**recipe.sample.as_dict())

        def sample(arm: str):
            gen = torch.Generator().manual_seed(0)
            return lambda: trainers[arm].method.sample(sample_n, cond=texts, settings=settings, generator=gen)

        batch = trainers[ARMS[0]].data.batch(torch.arange(recipe.train.batch_size))
        method = trainers[ARMS[0]].method
        z = method.to_latent(batch["x"])  # the same latents, text and t for both DiTs
        text = method.encode_text(batch["text"], z.device)
        t = torch.rand(len(z), generator=torch.Generator().manual_seed(0))

        def dit_step(arm: str):
            def step():
                model = trainers[arm].method.model
                model.zero_grad(set_to_none=True)
                model(z, t, text).square().mean().backward()

            return step

        for arm in ARMS:
            sample(arm)()  # warm-up
            dit_step(arm)()
        keys = ("train_s", "train_peak", "sample_s", "sample_peak", "dit_s", "dit_peak")
        rows = {arm: {k: [] for k in keys} for arm in ARMS}
        for r in range(repeats):
            for arm in ARMS if r % 2 == 0 else tuple(reversed(ARMS)):
                for name, fn in (("train", trainers[arm].train_step), ("sample", sample(arm)), ("dit", dit_step(arm))):
                    s, peak = measured(fn)
                    rows[arm][f"{name}_s"].append(s)
                    rows[arm][f"{name}_peak"].append(peak)
        for arm in ARMS:
            row, model = rows[arm], trainers[arm].method.model
            out[arm] = {
                "parameters": sum(p.numel() for p in model.parameters()),
                "median_train_step_s": round(statistics.median(row["train_s"]), 4),
                "train_videos_per_s": round(recipe.train.batch_size / statistics.median(row["train_s"]), 2),
                "median_sample_s": round(statistics.median(row["sample_s"]), 3),
                "median_dit_forward_backward_s": round(statistics.median(row["dit_s"]), 4),
                "dit_peak_rss_rise_mib": round(statistics.median(row["dit_peak"]) / 2**20, 1),
                "sample_videos_per_s": round(sample_n / statistics.median(row["sample_s"]), 3),
                "train_peak_rss_rise_mib": round(statistics.median(row["train_peak"]) / 2**20, 1),
                "sample_peak_rss_rise_mib": round(statistics.median(row["sample_peak"]) / 2**20, 1),
                "train_step_s": [round(v, 4) for v in row["train_s"]],
                "sample_s": [round(v, 3) for v in row["sample_s"]],
                "dit_s": [round(v, 4) for v in row["dit_s"]],
            }
    f, g = out["full"], out["factorized"]
    out["full_over_factorized"] = {
        "train_throughput": round(f["train_videos_per_s"] / g["train_videos_per_s"], 3),
        "sample_throughput": round(f["sample_videos_per_s"] / g["sample_videos_per_s"], 3),
        "dit_forward_backward_throughput": round(
            g["median_dit_forward_backward_s"] / f["median_dit_forward_backward_s"], 3
        ),
        "dit_peak_rss_rise": round(f["dit_peak_rss_rise_mib"] / max(g["dit_peak_rss_rise_mib"], 0.1), 3),
        "train_peak_rss_rise": round(f["train_peak_rss_rise_mib"] / max(g["train_peak_rss_rise_mib"], 0.1), 3),
        "sample_peak_rss_rise": round(f["sample_peak_rss_rise_mib"] / max(g["sample_peak_rss_rise_mib"], 0.1), 3),
    }
    out["settings"] = {"repeats": repeats, "batch_size": recipe.train.batch_size, "sample_n": sample_n}
    return out


def quality(steps: int, n: int, reuse: bool) -> dict:
    net = load_video_net()
    out = {}
    for arm in ARMS:
        recipe = recipe_for(arm, steps)
        run, wall = train_or_reuse(recipe, f"runs/bench-video-attention-{arm}", reuse=reuse)
        frames = recipe.data.frames
        real, texts, _ = sample_videos(n, split="test", seed=recipe.data.seed, frames=frames)
        settings = SampleSettings(**run.recipe.sample.as_dict())
        start = time.perf_counter()
        x = run.method.sample(n, cond=texts, settings=settings, generator=torch.Generator().manual_seed(0)).x.cpu()
        row = video_scores(x, texts)
        row["fd"] = round(video_fd(real, x, net=net), 3)
        row.update(train_seconds=wall, sample_seconds=round(time.perf_counter() - start, 1))
        out[arm] = row
    real, _, _ = sample_videos(n, split="test", seed=recipe.data.seed, frames=frames)
    other, _, _ = sample_videos(n, split="test", seed=recipe.data.seed + 1, frames=frames)
    out["fd_floor_two_real_draws"] = round(frechet_distance(video_features(net, real), video_features(net, other)), 3)
    out["settings"] = {"steps": steps, "n": n, "sample_settings": recipe.sample.as_dict(), "split": "test"}
    return out


def main() -> None:
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") != MMAP:  # glibc reads it at start-up: see the docstring
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "MALLOC_MMAP_THRESHOLD_": MMAP})
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sample-n", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reuse-runs", action="store_true", help="score the runs already in runs/bench-video-attention-*")
    ap.add_argument("--skip-speed", action="store_true", help="keep the speed part of an existing --out")
    ap.add_argument("--skip-quality", action="store_true", help="keep the quality part of an existing --out")
    ap.add_argument("--out", default="benchmarks/results/video_attention.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    result = {"recipe": RECIPE, "threads": args.threads}
    if (args.skip_speed or args.skip_quality) and Path(args.out).is_file():  # keep the other part's numbers
        kept = json.loads(Path(args.out).read_text())
        result.update({k: kept[k] for k in ("speed", "quality") if k in kept})
    if not args.skip_speed:
        result["speed"] = speed(args.repeats, args.sample_n)
        print(result["speed"]["full_over_factorized"])
        write_json(args.out, result)  # the speed part survives a failed training
    if args.skip_quality:
        return
    result["quality"] = quality(args.steps, args.n, args.reuse_runs)
    write_json(args.out, result)
    for arm in ARMS:
        q = result["quality"][arm]
        print(f"{arm:10s} motion {q['motion']:.3f} frames {q['frames']:.3f} identity {q['identity']:.3f} fd {q['fd']}")


if __name__ == "__main__":
    main()
