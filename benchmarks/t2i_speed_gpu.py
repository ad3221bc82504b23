"""genlab's DiT against diffusers' `DiTTransformer2DModel` on a CUDA GPU: train-step samples/s, generation images/s
and peak memory (the GPU side of benchmarks/t2i_speed.py, which measures the same models on CPU).

The models are t2i_speed.py's: diffusers' class-conditional DiT (adaLN-Zero) at two sizes (1.4 M and 17.8 M
parameters), genlab's DiT with the same depth and heads at the closest parameter count (`genlab`), and the same
parameter count at a shape whose widths are multiples of 64 (`genlab_aligned`). Same inputs (latents 4x8x8,
patch 2, t, labels), batch, optimizer (AdamW, fused where torch has it) and precision in every pair:
- train step = forward + MSE + backward + AdamW, fp32 (PyTorch's defaults: TF32 matrix products off) and
  bf16 autocast (fp32 weights and optimizer), at two batches;
- generation = 16 Euler steps with batched CFG (one call of 2n rows per step), latents only: genlab's sampler
  path (genlab.samplers.sample + guided, what `genlab generate` runs) against a diffusers-pipeline-style loop;
- peak memory = torch.cuda.max_memory_allocated over one train step (weights, gradients, optimizer state and
  activations), from a reset after the models are built.
Each arm is timed over a block of steps between torch.cuda.synchronize() calls; blocks are interleaved (the order
alternates every repeat) and the median block reported; speedups are ratios of those medians in the same run.

    python benchmarks/t2i_speed_gpu.py [--quick] [--out benchmarks/results/t2i_speed_gpu.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import t2i_speed as cpu_bench  # noqa: E402  (the same models, inputs and loops as the CPU benchmark)
from genlab.atomic import atomic_write_text  # noqa: E402
from genlab.paths import get_path  # noqa: E402
from genlab.samplers import guided, sample, time_grid  # noqa: E402

MODELS = ("diffusers", "genlab", "genlab_aligned")


def timed_blocks(fns: dict, *, block: int, repeats: int, sync) -> dict[str, float]:
    """Median seconds per call of each callable: `repeats` blocks of `block` calls, the order alternating every
    repeat, after two warm-up blocks each (allocator, kernel selection)."""
    for _ in range(2):
        for fn in fns.values():
            for _ in range(block):
                fn()
    sync()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(repeats):
        for k in list(fns) if r % 2 == 0 else list(reversed(fns)):
            sync()
            start = time.perf_counter()
            for _ in range(block):
                fns[k]()
            sync()
            times[k].append((time.perf_counter() - start) / block)
    return {k: statistics.median(v) for k, v in times.items()}


def peak_mib(step, device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


def generation(models: dict, device: torch.device, n: int, steps: int, repeats: int, sync) -> dict:
    scale = 4.0
    noise = torch.randn(n, *cpu_bench.LATENT, generator=torch.Generator().manual_seed(1)).to(device)
    labels = (torch.arange(n) % cpu_bench.CLASSES).to(device)
    null = torch.full((n,), cpu_bench.CLASSES, device=device)
    ts = time_grid("auto", steps, path=get_path("rectified"), sampler="euler").to(device)

    def ours(model):
        return lambda: sample(guided(model, labels, scale=scale, null_cond=null), noise, sampler="euler", steps=steps)

    def theirs(model):
        fn = cpu_bench.caller("diffusers", model)
        return lambda: cpu_bench.diffusers_style_loop(fn, noise, labels, null, ts, scale)

    with torch.no_grad():
        same_math = float(
            (
                ours(models["genlab"])()
                - cpu_bench.diffusers_style_loop(models["genlab"], noise, labels, null, ts, scale)
            )
            .abs()
            .max()
        )
        arms = {
            "genlab": ours(models["genlab"]),
            "genlab_aligned": ours(models["genlab_aligned"]),
            "diffusers_loop": theirs(models["diffusers"]),
        }
        sec = timed_blocks(arms, block=1, repeats=repeats, sync=sync)
    ips = {k: n / v for k, v in sec.items()}
    return {
        "n_images": n,
        "steps": steps,
        "guidance_scale": scale,
        "loops_agree_on_genlab_model_max_abs": same_math,
        "images_per_s": {k: round(v, 1) for k, v in ips.items()},
        "speedup_over_diffusers_loop": {k: round(ips[k] / ips["diffusers_loop"], 3) for k in MODELS[1:]},
    }


def size_report(
    size: str, device: torch.device, batches: list[int], repeats: int, block: int, n_images: int, sync
) -> dict:
    models = {k: m.to(device) for k, m in cpu_bench.models_for(size).items() if k in MODELS}
    out: dict = {
        "params": {k: cpu_bench.num_params(m) for k, m in models.items()},
        "configs": {k: cpu_bench.describe(m) for k, m in models.items()},
        "train": {},
    }
    for batch in batches:
        steps = {}
        for key in MODELS:
            for bf16 in (False, True):
                fn = cpu_bench.caller(key, models[key])
                steps[key + ("_bf16" if bf16 else "")] = cpu_bench.make_train_step(
                    fn, models[key], batch, fused_adamw=True, bf16=bf16, device=device
                )
        sec = timed_blocks(steps, block=block, repeats=repeats, sync=sync)
        sps = {k: batch / v for k, v in sec.items()}
        ref = lambda k: "diffusers_bf16" if k.endswith("_bf16") else "diffusers"  # noqa: E731
        out["train"][str(batch)] = {
            "samples_per_s": {k: round(v, 1) for k, v in sps.items()},
            "speedup_over_diffusers": {k: round(v / sps[ref(k)], 3) for k, v in sps.items() if k.startswith("genlab")},
            "peak_memory_mib": {k: peak_mib(s, device) for k, s in steps.items()},
        }
    out["generation"] = generation(models, device, n_images, 16, repeats, sync)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the small size, one batch, few repeats (a smoke run)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default="benchmarks/results/t2i_speed_gpu.json")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("t2i_speed_gpu.py: no CUDA device here; run it on a GPU machine (or --device cpu for a smoke run)")
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    sizes = ["1.4M"] if args.quick else list(cpu_bench.SIZES)
    batches = [16] if args.quick else [64, 256]
    repeats, block, n_images = (3, 2, 8) if args.quick else (7, 20, 256)
    report = {
        "machine": {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__,
            "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d"),
        },
        "compared": "diffusers' DiTTransformer2DModel against genlab's DiT at matched parameters (t2i_speed.py's "
        "models), same inputs, batch, optimizer and precision; medians of interleaved blocks of "
        f"{block} steps, {repeats} repeats; speedups are ratios in the same run",
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "sizes": {s: size_report(s, device, batches, repeats, block, n_images, sync) for s in sizes},
    }
    atomic_write_text(Path(args.out), json.dumps(report, indent=1) + "\n")
    print(
        json.dumps(
            {s: {b: r["train"][b]["speedup_over_diffusers"] for b in r["train"]} for s, r in report["sizes"].items()}
        )
    )


if __name__ == "__main__":
    main()
