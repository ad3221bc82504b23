"""Train-step throughput of genlab's UNet against diffusers' UNet2DModel on CPU.

One train step = forward + MSE loss against a fixed target + backward + AdamW step, same batch and
same thread count for both. diffusers' model mirrors genlab's layout (levels, res blocks per level,
attention sizes) and its base width is searched so both parameter counts match (both are reported).
Repeats are interleaved (alternating which model goes first); we report medians of samples/s.

    python benchmarks/unet_throughput.py [--quick] [--repeats 9] [--out benchmarks/results/unet_throughput.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from genlab.atomic import atomic_write_text
from genlab.models.unet import UNET_PRESETS, UNet, UNetConfig

SETTINGS = {  # name: (genlab config, batch, train steps per timed repeat, steps in --quick mode)
    "digits_8x8x1": (UNetConfig(in_channels=1, image_size=8, num_classes=0), 128, 10, 4),
    "rgb_32x32x3_small": (
        dataclasses.replace(UNET_PRESETS["small"], in_channels=3, image_size=32, num_classes=0),
        32,
        3,
        2,
    ),
}


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


MATCHING = {
    "diffusers_width": "genlab as configured; diffusers' base width searched (multiples of 4) for the "
    "parameter count closest to genlab's",
    "genlab_width": "diffusers at genlab's configured base width; genlab's base width searched (multiples "
    "of 4) for the parameter count closest to diffusers'. Shows how much the result depends on which "
    "widths land on SIMD-friendly channel counts",
}
COMMON = (
    "both models share levels, res blocks per level, attention sizes, number of heads and the GroupNorm "
    "group rule (largest divisor of the width <= 32)"
)


def num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def diffusers_kwargs(cfg: UNetConfig, width: int) -> dict:
    """UNet2DModel arguments with genlab's layout (levels, blocks, attention sizes) at base `width`."""
    sizes = [cfg.image_size // 2**i for i in range(len(cfg.channel_mults))]
    attn = [s in cfg.attention_resolutions for s in sizes]
    attn_widths = [width * m for m, a in zip(cfg.channel_mults, attn) if a] or [width * cfg.channel_mults[-1]]
    return dict(
        sample_size=cfg.image_size,
        in_channels=cfg.in_channels,
        out_channels=cfg.in_channels,
        block_out_channels=tuple(width * m for m in cfg.channel_mults),
        layers_per_block=cfg.num_res_blocks,
        down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn),
        up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)),
        add_attention=attn[-1],  # mid-block attention only where genlab's mid block has it
        attention_head_dim=attn_widths[0] // cfg.heads,  # same number of heads as genlab
        norm_num_groups=next(g for g in range(32, 0, -1) if width % g == 0),  # genlab's group rule
        dropout=cfg.dropout,
    )


def diffusers_class() -> type:
    try:
        from diffusers import UNet2DModel
    except ImportError:
        raise SystemExit(
            "this benchmark needs diffusers: pip install 'genlab[bench]' (or pip install diffusers)"
        ) from None
    return UNet2DModel


def closest_width(count: Callable[[int], int], target: int, cfg: UNetConfig) -> int:
    """The base width (a multiple of 4 that the heads divide) whose parameter count is closest to target."""
    best, best_gap = cfg.channels, None
    for width in range(8, 4 * cfg.channels + 1, 4):  # the count grows with width: stop once past
        if any((width * m) % cfg.heads for m in cfg.channel_mults):
            continue
        n = count(width)
        if best_gap is None or abs(n - target) < best_gap:
            best, best_gap = width, abs(n - target)
        if n > 1.2 * target:
            break
    return best


def build_pair(cfg: UNetConfig, matching: str) -> tuple[UNetConfig, dict]:
    """(genlab config, diffusers kwargs) with matched parameter counts.

    "diffusers_width": genlab as configured, diffusers' base width searched.
    "genlab_width": diffusers at genlab's configured base width, genlab's width searched.
    """
    unet2d = diffusers_class()

    def count(build: Callable[[], torch.nn.Module]) -> int:
        with torch.device("meta"):  # count parameters without allocating them
            return num_params(build())

    if matching == "diffusers_width":
        target = count(lambda: UNet(cfg))
        width = closest_width(lambda w: count(lambda: unet2d(**diffusers_kwargs(cfg, w))), target, cfg)
        return cfg, diffusers_kwargs(cfg, width)
    kwargs = diffusers_kwargs(cfg, cfg.channels)
    target = count(lambda: unet2d(**kwargs))
    width = closest_width(lambda w: count(lambda: UNet(dataclasses.replace(cfg, channels=w))), target, cfg)
    return dataclasses.replace(cfg, channels=width), kwargs


def make_step(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, target: torch.Tensor, *, is_diffusers: bool):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step() -> None:
        out = model(x, t * 1000.0).sample if is_diffusers else model(x, t)  # diffusers counts t in [0, 1000]
        loss = F.mse_loss(out, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def run_setting(name: str, cfg: UNetConfig, batch: int, steps: int, repeats: int, matching: str) -> dict:
    cfg, theirs_kwargs = build_pair(cfg, matching)
    torch.manual_seed(0)
    ours = UNet(cfg)
    theirs = diffusers_class()(**theirs_kwargs)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, cfg.in_channels, cfg.image_size, cfg.image_size, generator=g)
    t = torch.rand(batch, generator=g)
    target = torch.randn(x.shape, generator=g)
    steps_fn = {
        "genlab": make_step(ours, x, t, target, is_diffusers=False),
        "diffusers": make_step(theirs, x, t, target, is_diffusers=True),
    }
    for fn in steps_fn.values():  # warm-up (allocator, oneDNN primitive caches)
        fn()
        fn()
    rates: dict[str, list[float]] = {"genlab": [], "diffusers": []}
    for r in range(repeats):
        order = ["genlab", "diffusers"] if r % 2 == 0 else ["diffusers", "genlab"]
        for key in order:
            start = time.perf_counter()
            for _ in range(steps):
                steps_fn[key]()
            rates[key].append(batch * steps / (time.perf_counter() - start))
    med = {k: statistics.median(v) for k, v in rates.items()}
    n_ours, n_theirs = num_params(ours), num_params(theirs)
    return {
        "name": name,
        "matching": matching,
        "input_shape": list(x.shape),
        "batch": batch,
        "steps_per_repeat": steps,
        "genlab": {
            "config": dataclasses.asdict(cfg),
            "params": n_ours,
            "samples_per_s": med["genlab"],
            "samples_per_s_all": rates["genlab"],
        },
        "diffusers": {
            "config": theirs_kwargs,
            "params": n_theirs,
            "samples_per_s": med["diffusers"],
            "samples_per_s_all": rates["diffusers"],
        },
        "param_matching": MATCHING[matching],
        "param_ratio_diffusers_over_genlab": n_theirs / n_ours,
        "speedup": med["genlab"] / med["diffusers"],
        "speedup_median_of_paired_repeats": statistics.median(
            a / b for a, b in zip(rates["genlab"], rates["diffusers"])
        ),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/unet_throughput.json")
    parser.add_argument("--repeats", type=int, default=9, help="timed repeats per model (interleaved)")
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats (smoke test)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for both models")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    repeats = min(args.repeats, 3) if args.quick else args.repeats
    results = []
    for name, (cfg, batch, steps, quick_steps) in SETTINGS.items():
        for matching in MATCHING:
            res = run_setting(name, cfg, batch, quick_steps if args.quick else steps, repeats, matching)
            results.append(res)
            print(
                f"{name:18s} {matching:15s} params genlab {res['genlab']['params']:>9,}"
                f" (width {res['genlab']['config']['channels']}) / diffusers {res['diffusers']['params']:>9,}"
                f" (width {res['diffusers']['config']['block_out_channels'][0]})"
                f" | samples/s genlab {res['genlab']['samples_per_s']:7.1f}"
                f" / diffusers {res['diffusers']['samples_per_s']:7.1f} | speedup x{res['speedup']:.2f}"
            )
    import diffusers

    report = {
        "benchmark": "unet_throughput",
        "settings": {
            "threads": args.threads,
            "repeats": repeats,
            "quick": args.quick,
            "statistic": "median samples/s over interleaved repeats; speedup = genlab / diffusers",
            "param_matching": COMMON,
            "input": "random N(0, 1) tensors of the stated shape; t ~ U(0, 1), passed as 1000 t to diffusers",
            "train_step": "forward + mse_loss vs fixed random target + backward + AdamW(lr=1e-4) step",
            "dtype": "float32",
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "cpu": cpu_name(),
        },
        "results": results,
        "min_speedup": min(r["speedup"] for r in results),
    }
    out = atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
