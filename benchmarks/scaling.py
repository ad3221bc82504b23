"""Memory and speed of the scale-out levers (train.parallel, train.activation_checkpointing) for a DiT, and a paper
estimate of what fits on larger machines, from the measured numbers.

Measured (CPU, gloo, `torchrun --standalone --nproc-per-node N` for N = 1 and 2; genlab's Trainer on the digits
upscaled to 16x16, patch 2 = 64 tokens, global batch BATCH, fp32), for each DiT size and each lever:
  * state bytes per rank, exact: the bytes of the storages that hold the trained parameters, their gradients, the
    AdamW state and the EMA on that rank (a sharded tensor counts its local, padded shard);
  * transient peak per rank: the rise of the process's peak RSS (VmHWM, reset through /proc/self/clear_refs before
    the step) over its RSS just before one training step, with glibc's mmap threshold fixed at 128 KiB so freed
    tensors return to the OS: activations, gathered parameters and unsharded gradients. Rough (allocator, threads);
  * seconds per step: median of REPEATS interleaved repeats (the levers take turns), as a ratio to plain DDP of the
    same process count. The CPU is shared with other jobs: ratios are rough.
Counted on the meta device (no memory, no time): parameters and training FLOPs (forward + backward, torch's
FlopCounterMode) of the SD3-medium-sized MM-DiT. The estimate table (what fits on 1x24 GB, 8x80 GB, 64x80 GB;
time per epoch) is derived from these numbers; its assumptions are written into the JSON.

    python benchmarks/scaling.py [--repeats 3] [--out benchmarks/results/scaling.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import NamedTuple

import torch

from genlab.atomic import atomic_write_text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import measured, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"dit-w64-d2": (64, 2), "dit-w128-d4": (128, 4), "dit-w256-d6": (256, 6)}  # (width, depth), heads = width/32
LEVERS = {"ddp": ("ddp", False), "fsdp": ("fsdp", False), "fsdp+ac": ("fsdp", True)}
BATCH = 32
IMAGE = 16  # digits upscaled: 64 tokens of patch 2


class Setup(NamedTuple):
    name: str
    gpus: int
    gib: float


SETUPS = [Setup("1x24GB", 1, 24), Setup("8x80GB", 8, 80), Setup("64x80GB", 64, 80)]
GPU_BF16_TFLOPS = 989.0  # H100 SXM dense bf16 peak
MFU = 0.40
EPOCH_IMAGES = 1_281_167  # ImageNet-1k train, at 256x256
HEADROOM = 0.8  # of a GPU's memory usable for state + activations (allocator, buffers, NCCL)


def recipe(width: int, depth: int, parallel: str, ac: bool) -> dict:
    train = {
        "steps": 1000,
        "batch_size": BATCH,
        "warmup_steps": 1,
        "parallel": parallel,
        "activation_checkpointing": ac,
    }
    return {
        "name": f"scaling-w{width}-d{depth}",
        "seed": 0,
        "data": {"kind": "digits", "size": IMAGE},
        "model": {"kind": "dit", "width": width, "depth": depth, "heads": max(1, width // 32), "patch_size": 2},
        "method": {"kind": "flow"},
        "train": train,
    }


# ----------------------------------------------------------------------------- per-rank measurements (worker)


def _local(t: torch.Tensor) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    return t.to_local() if isinstance(t, DTensor) else t


def storage_bytes(tensors) -> int:
    """Bytes of the distinct storages behind `tensors` (a sharded tensor: its local shard's storage)."""
    seen: dict[int, int] = {}
    for t in tensors:
        s = _local(t).untyped_storage()
        seen[s.data_ptr()] = s.nbytes()
    return sum(seen.values())


def state_bytes(trainer) -> dict[str, int]:
    params = [p for ps in trainer.groups.values() for p in ps]
    trained = {id(p) for p in params}
    ema = [e for e, p in zip(trainer.ema.parameters(), trainer.method.parameters()) if id(p) in trained]
    opt = [v for o in trainer.optimizers.values() for st in o.state.values() for v in st.values() if v.dim() > 0]
    out = {
        "params": storage_bytes(params),
        "grads": storage_bytes([p.grad for p in params if p.grad is not None]),
        "optimizer": storage_bytes(opt),
        "ema": storage_bytes(ema),
        "numel": sum(p.numel() for p in params),
    }
    out["total"] = out["params"] + out["grads"] + out["optimizer"] + out["ema"]
    return out


def worker(out: Path, repeats: int) -> None:
    import torch.distributed as dist

    from genlab.config import recipe_from_dict
    from genlab.train import Trainer

    if not dist.is_initialized():
        dist.init_process_group("gloo")  # also with one process: the fsdp levers then shard over one rank
    rank, world = dist.get_rank(), dist.get_world_size()
    rows = []
    for size, (width, depth) in SIZES.items():
        trainers = {}
        for lever, (parallel, ac) in LEVERS.items():
            trainers[lever] = Trainer(recipe_from_dict(recipe(width, depth, parallel, ac), "scaling"), out / lever)
            trainers[lever].train_step()  # warm-up: allocates the gradients and AdamW state
        times: dict[str, list[float]] = {k: [] for k in LEVERS}
        peaks: dict[str, list[int]] = {k: [] for k in LEVERS}
        for r in range(repeats):
            order = list(LEVERS) if r % 2 == 0 else list(reversed(LEVERS))
            for lever in order:
                dist.barrier()
                seconds, peak = measured(trainers[lever].train_step)
                times[lever].append(seconds)
                peaks[lever].append(peak)
        for lever, trainer in trainers.items():
            rows.append(
                {
                    "size": size,
                    "width": width,
                    "depth": depth,
                    "lever": lever,
                    "world": world,
                    "rank": rank,
                    "state_bytes": state_bytes(trainer),
                    "sharded": trainer.sharding is not None,
                    "transient_peak_bytes": int(statistics.median(peaks[lever])),
                    "step_seconds": times[lever],
                    "median_step_seconds": statistics.median(times[lever]),
                }
            )
        del trainers
    (out / f"rank{rank}.json").write_text(json.dumps(rows))
    dist.destroy_process_group()


# ----------------------------------------------------------------------------- counts on the meta device


def dit_counts(width: int, depth: int, *, image: int, channels: int, text_tokens: int = 0, text_dim: int = 0) -> dict:
    """Parameters and training FLOPs (forward + backward, one sample) of a DiT, counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    from genlab.models.dit import DiT, DiTConfig

    cfg = DiTConfig(
        in_channels=channels,
        image_size=image,
        num_classes=0,
        width=width,
        depth=depth,
        heads=max(1, width // 64),
        text_dim=text_dim,
        text_mode="mmdit" if text_dim else "cross",
    )
    with torch.device("meta"):
        model = DiT(cfg)
        x, t = torch.randn(1, channels, image, image), torch.rand(1)
        cond = None
        if text_dim:
            cond = types.SimpleNamespace(
                tokens=torch.randn(1, text_tokens, text_dim),
                mask=torch.ones(1, text_tokens, dtype=torch.bool),
                pooled=torch.randn(1, text_dim),
            )
        with FlopCounterMode(display=False) as counter:
            model(x, t, cond).square().mean().backward()
    return {"params": sum(p.numel() for p in model.parameters()), "train_flops_per_sample": counter.get_total_flops()}


# ----------------------------------------------------------------------------- the paper estimate


def estimate(rows: list[dict], flops_sd3: dict) -> dict:
    """What fits where, from the measured bytes per parameter (state) and activation bytes per token·width·block."""
    largest = max(SIZES, key=lambda s: SIZES[s][0])
    width, depth = SIZES[largest]
    one = {r["lever"]: r for r in rows if r["world"] == 1 and r["size"] == largest and r["rank"] == 0}
    two = {r["lever"]: r for r in rows if r["world"] == 2 and r["size"] == largest}
    state_per_param = one["ddp"]["state_bytes"]["total"] / one["ddp"]["state_bytes"]["numel"]
    sharded_ratio = max(r["state_bytes"]["total"] for r in two.values() if r["lever"] == "fsdp") / max(
        r["state_bytes"]["total"] for r in two.values() if r["lever"] == "ddp"
    )
    tokens = (IMAGE // 2) ** 2
    unit = BATCH * tokens * width * depth  # per (sample, token, channel, block) on one process
    act = {k: one[k]["transient_peak_bytes"] / unit for k in ("fsdp", "fsdp+ac")}
    # the paper case: bf16 activations (half the fp32 bytes measured here), 256 tokens (256px image, 8x-downsampling
    # latent, patch 2), micro-batch 8 per GPU, width = 64 x depth (SD3's rule)
    per_gpu_batch, gpu_tokens = 8, 256
    table = []
    for s in SETUPS:
        row = {"setup": s.name}
        for lever, shard, ac in (("ddp", False, False), ("fsdp", True, False), ("fsdp+ac", True, True)):
            best = 0
            for d in range(2, 161):
                w = 64 * d
                params = 18 * w * w * d  # DiT blocks: qkv 3, proj 1, MLP 8, adaLN 6 (x width^2)
                state = state_per_param * params / (s.gpus if shard else 1)
                acts = 0.5 * act["fsdp+ac" if ac else "fsdp"] * per_gpu_batch * gpu_tokens * w * d
                # FSDP's transients: two blocks' gathered bf16 parameters (this one and the prefetched next one) and
                # one block's unsharded fp32 gradients before the reduce-scatter
                gathered = (2 * 2 + 4) * 18 * w * w if shard else 0
                if state + acts + gathered <= HEADROOM * s.gib * 2**30:
                    best = params
            row[lever] = best
        table.append(row)
    epoch = {
        f"{g} GPUs": EPOCH_IMAGES * flops_sd3["train_flops_per_sample"] / (g * GPU_BF16_TFLOPS * 1e12 * MFU) / 3600
        for g in (8, 64)
    }
    return {
        "assumptions": {
            "state_bytes_per_param": round(state_per_param, 3),
            "state_sharded_over_2_vs_ddp": round(sharded_ratio, 3),
            "activation_bytes_per_token_width_block_fp32": {k: round(v, 2) for k, v in act.items()},
            "activation_dtype_factor": "0.5 (bf16 activations on a GPU; the measurement here is fp32)",
            "family": "DiT with width = 64 x depth (SD3's rule), params = 18 x width^2 x depth",
            "fsdp_transient": "2 blocks of gathered bf16 parameters + 1 block of unsharded fp32 gradients",
            "per_gpu_micro_batch": per_gpu_batch,
            "tokens": gpu_tokens,
            "usable_memory_fraction": HEADROOM,
            "gpu_bf16_tflops": GPU_BF16_TFLOPS,
            "mfu": MFU,
            "epoch_images": EPOCH_IMAGES,
        },
        "largest_params_that_fit": table,
        "sd3_medium_sized": flops_sd3,
        "hours_per_epoch": {k: float(f"{v:.3g}") for k, v in epoch.items()},
    }


# ----------------------------------------------------------------------------- driver


def run_world(world: int, repeats: int, tmp: Path) -> list[dict]:
    out = tmp / f"world{world}"
    out.mkdir(parents=True)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MALLOC_MMAP_THRESHOLD_": str(128 * 1024),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p),
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={world}"]
    cmd += [__file__, "--worker", str(out), "--repeats", str(repeats), "--sizes", ",".join(SIZES)]
    subprocess.run(cmd, env=env, check=True)
    return [row for r in range(world) for row in json.loads((out / f"rank{r}.json").read_text())]


def summary(rows: list[dict]) -> list[dict]:
    """One row per (size, lever, world): the largest rank's bytes, rank 0's median step time, ratio to ddp."""
    out = []
    for world in (1, 2):
        for size in SIZES:
            sel = [r for r in rows if r["world"] == world and r["size"] == size]
            base = next(r for r in sel if r["lever"] == "ddp" and r["rank"] == 0)["median_step_seconds"]
            for lever in LEVERS:
                mine = [r for r in sel if r["lever"] == lever]
                r0 = next(r for r in mine if r["rank"] == 0)
                out.append(
                    {
                        "size": size,
                        "params": r0["state_bytes"]["numel"],
                        "world": world,
                        "lever": lever,
                        "state_mib_per_rank": round(max(r["state_bytes"]["total"] for r in mine) / 2**20, 3),
                        "transient_peak_mib_per_rank": round(max(r["transient_peak_bytes"] for r in mine) / 2**20, 1),
                        "median_step_s": round(r0["median_step_seconds"], 4),
                        "speed_vs_ddp": round(base / r0["median_step_seconds"], 3),
                    }
                )
    return out


def markdown(result: dict) -> str:
    lines = [
        "# Scale-out levers: memory per rank and speed (benchmarks/scaling.py)",
        "",
        f"CPU, gloo, fp32, global batch {BATCH}, 64 tokens; state = trained params + grads + AdamW + EMA (exact);",
        "transient = peak-RSS rise during one step (rough); speed = DDP's median step time / this lever's, same run.",
        "",
        "| DiT | params | processes | lever | state MiB/rank | transient MiB/rank | step s | speed vs ddp |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["summary"]:
        lines.append(
            f"| {r['size']} | {r['params']:,} | {r['world']} | {r['lever']} | {r['state_mib_per_rank']} | "
            f"{r['transient_peak_mib_per_rank']} | {r['median_step_s']} | {r['speed_vs_ddp']} |"
        )
    est = result["estimate"]
    lines += ["", "Paper estimate (largest DiT that fits; assumptions in scaling.json):", ""]
    lines += ["| setup | ddp | fsdp | fsdp+ac |", "| --- | --- | --- | --- |"]
    for r in est["largest_params_that_fit"]:
        lines.append(
            f"| {r['setup']} | {r['ddp'] / 1e9:.2f} B | {r['fsdp'] / 1e9:.2f} B | {r['fsdp+ac'] / 1e9:.2f} B |"
        )
    sd3 = est["sd3_medium_sized"]
    lines += [
        "",
        f"SD3-medium-sized MM-DiT: {sd3['params'] / 1e9:.2f} B parameters, "
        f"{sd3['train_flops_per_sample'] / 1e12:.2f} TFLOP per 256px training sample; hours per epoch of "
        f"{EPOCH_IMAGES:,} images at {MFU:.0%} MFU of {GPU_BF16_TFLOPS:g} TFLOP/s: "
        + ", ".join(f"{k}: {v}" for k, v in est["hours_per_epoch"].items()),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scaling.json"))
    parser.add_argument("--sizes", default=",".join(SIZES), help="DiT sizes to measure (comma-separated)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in set(SIZES) - set(args.sizes.split(",")):
        del SIZES[name]
    if args.worker:
        worker(Path(args.worker), args.repeats)
        return
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [row for world in (1, 2) for row in run_world(world, args.repeats, Path(tmp))]
    sd3 = dit_counts(1536, 24, image=32, channels=16, text_tokens=154, text_dim=4096)
    sd3["config"] = "MM-DiT width 1536, depth 24, 24 heads, 16-channel 32x32 latent (256px), patch 2, 154 text tokens"
    result = {
        "settings": {
            "batch": BATCH,
            "tokens": (IMAGE // 2) ** 2,
            "repeats": args.repeats,
            "sizes": SIZES,
            "levers": {k: {"parallel": p, "activation_checkpointing": a} for k, (p, a) in LEVERS.items()},
            "launcher": "torchrun --standalone --nproc-per-node N (gloo, CPU), OMP_NUM_THREADS=1",
            "note": "shared 2-core CPU: speed ratios are rough; the state bytes are exact",
        },
        "summary": summary(rows),
        "estimate": estimate(rows, sd3),
        "rows": rows,
        "seconds": round(time.perf_counter() - start, 1),
    }
    out = Path(args.out)
    write_json(out, result)
    atomic_write_text(out.with_suffix(".md"), markdown(result))


if __name__ == "__main__":
    main()
