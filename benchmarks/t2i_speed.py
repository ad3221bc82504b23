"""Text-to-image speed on CPU: batched classifier-free guidance vs two passes, and genlab's DiT vs diffusers'.

1. Sampling images/s of the shipped architecture (recipes/shapes-t2i.yaml: DiT with cross-attention on
   4x8x8 latents + the autoencoder's decoder), Euler with 16 steps at guidance scale 4, text embeddings
   precomputed (random, the encoder's shape): guidance as ONE batched call of 2n rows per step
   (genlab.samplers.guided) against two calls of n rows (cond, then uncond).
2. Class-conditional DiT, genlab's against diffusers' `DiTTransformer2DModel` (adaLN-Zero), same input
   (latents 4x8x8, patch 2, t, labels), at two sizes (1.4 M and 17.8 M parameters):
   - accounting: parameters and forward FLOPs of each model split into the token path (layers applied to every
     one of the B·N tokens) and the conditioning path (layers applied once per sample: timestep / class embedders,
     adaLN modulation), FLOPs per parameter, and the whole train step's FLOPs (torch.utils.flop_counter);
   - a profile of the train step (torch.profiler: self-CPU ms by op, the matrix products' share and their
     GFLOP/s from the recorded shapes, forward ms by module kind), a micro-benchmark of each model's MLP input
     layer (forward + backward GFLOP/s at its shape) and of one AdamW step (per-tensor loop vs fused kernel);
   - train-step samples/s of one interleaved set of arms: diffusers and genlab under the same optimizer and
     precision, and the ablation of each change (AdamW fused vs per-tensor loop, addcmul modulation on/off, the
     parameter-matched genlab at a SIMD-aligned shape, bf16 autocast for both), plus forward (no_grad) samples/s;
   - generation images/s at 16 Euler steps with batched CFG: genlab's sampler path (genlab.samplers.sample +
     guided, what `genlab generate` runs) against a diffusers-pipeline-style loop (DiTTransformer2DModel, latents
     doubled with torch.cat, labels + null label, chunk, guidance, the same Euler update on the same time grid);
   - peak memory (resident set, ru_maxrss) of each arm in its own subprocess: before the work and at its peak.
Repeats are interleaved (the order alternates), medians reported, the same thread count everywhere. Each call is
timed by the wall clock and by the calling thread's CPU time (time.thread_time; with 1 thread all the work runs
on it): on a shared machine the CPU time is the steadier of the two and the speedups are ratios of it.

    python benchmarks/t2i_speed.py [--quick] [--threads 1] [--out benchmarks/results/t2i_speed.json]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from types import SimpleNamespace

import torch

import genlab.models.dit as dit_module
from genlab.atomic import atomic_write_text
from genlab.models.autoencoder import Autoencoder, AutoencoderConfig
from genlab.models.dit import DiT, DiTConfig, dit_dims
from genlab.paths import get_path
from genlab.samplers import guided, sample, time_grid
from genlab.train import adamw

LATENT = (4, 8, 8)
TEXT_LEN, TEXT_DIM = 12, 384  # MiniLM: 384-wide tokens; shapes captions are about 12 tokens
CLASSES = 10
SIZES = {  # diffusers' DiTTransformer2DModel configs compared
    "1.4M": {"heads": 4, "head_dim": 32, "layers": 4},
    "17M": {"heads": 6, "head_dim": 64, "layers": 6},
}
ALIGN = 64  # widths and MLP hidden sizes that are multiples of this keep the fp32 GEMM kernels on their fast path


def num_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def interleaved(fns: dict, repeats: int) -> dict[str, dict[str, list[float]]]:
    """{'wall': seconds, 'cpu': this thread's CPU seconds} of each callable per repeat, alternating the order every
    repeat; one warm-up call each."""
    for fn in fns.values():
        fn()
    times: dict[str, dict[str, list[float]]] = {"wall": {k: [] for k in fns}, "cpu": {k: [] for k in fns}}
    for r in range(repeats):
        for k in list(fns) if r % 2 == 0 else list(reversed(fns)):
            wall, cpu = time.perf_counter(), time.thread_time()
            fns[k]()
            times["cpu"][k].append(time.thread_time() - cpu)
            times["wall"][k].append(time.perf_counter() - wall)
    return times


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {k: statistics.median(v) for k, v in times.items()}


def rounded(times: dict[str, dict[str, list[float]]]) -> dict:
    return {clock: {k: [round(s, 4) for s in v] for k, v in per.items()} for clock, per in times.items()}


def cfg_sampling(n: int, steps: int, repeats: int) -> dict:
    torch.manual_seed(0)
    dit = DiT(DiTConfig(in_channels=4, image_size=8, num_classes=0, size="tiny", text_dim=TEXT_DIM)).eval()
    ae = Autoencoder(AutoencoderConfig(in_channels=3, image_size=32, channels=(8, 32, 32))).eval()
    with torch.no_grad():  # trained weights matter for quality, not for speed: randomise the zeroed layers
        for p in dit.parameters():
            p.add_(0.02 * torch.randn_like(p))
    table = SimpleNamespace(
        tokens=torch.randn(n + 1, TEXT_LEN, TEXT_DIM),
        mask=torch.ones(n + 1, TEXT_LEN, dtype=bool),
        pooled=torch.randn(n + 1, TEXT_DIM),
    )
    take = lambda i: SimpleNamespace(tokens=table.tokens[i], mask=table.mask[i], pooled=table.pooled[i])  # noqa: E731
    idx, null = torch.arange(n), torch.full((n,), n)
    scale = 4.0

    def two_passes(x_t, t):
        c, u = dit(x_t, t, take(idx)), dit(x_t, t, take(null))
        return u + scale * (c - u)

    fns = {
        "batched": guided(lambda x_t, t, i: dit(x_t, t, take(i)), idx, scale=scale, null_cond=null),
        "two_passes": two_passes,
    }

    def run(fn):
        noise = torch.randn(n, *LATENT, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            ae.decode(sample(fn, noise, sampler="euler", steps=steps))

    times = interleaved({k: (lambda f=f: run(f)) for k, f in fns.items()}, repeats)
    ips = {k: n / v for k, v in medians(times["cpu"]).items()}
    return {
        "compared": "the same DiT, text embeddings, noise, Euler grid and decoder; guidance as one batched call of "
        "2n rows per step vs two calls of n rows (cond, then uncond)",
        "n_images": n,
        "steps": steps,
        "sampler": "euler",
        "guidance_scale": scale,
        "dit_params": num_params(dit),
        "decoder_included": True,
        "images_per_s": {k: round(v, 2) for k, v in ips.items()},
        "images_per_s_wall": {k: round(n / v, 2) for k, v in medians(times["wall"]).items()},
        "speedup_batched_over_two_passes": round(ips["batched"] / ips["two_passes"], 3),
        "seconds": rounded(times),
    }


# -- the class-conditional models compared


def diffusers_dit(heads: int, head_dim: int, layers: int, classes: int = CLASSES) -> torch.nn.Module:
    from diffusers import DiTTransformer2DModel

    return DiTTransformer2DModel(
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        in_channels=4,
        num_layers=layers,
        sample_size=8,
        patch_size=2,
        num_embeds_ada_norm=classes,
    )


def genlab_cfg(width: int, layers: int, heads: int, classes: int = CLASSES, mlp_hidden: int | None = None):
    # mlp hidden = int(width * ratio): + 0.5 keeps the float product from landing just under the integer
    ratio = 4.0 if mlp_hidden is None else (mlp_hidden + 0.5) / width
    return DiTConfig(
        in_channels=4, image_size=8, num_classes=classes, width=width, depth=layers, heads=heads, mlp_ratio=ratio
    )


def matched_genlab(target: int, heads: int, layers: int, classes: int = CLASSES) -> DiT:
    """genlab DiT with diffusers' depth and heads, width (a multiple of heads) closest in parameters."""
    best = None
    for width in range(4 * heads, 1025, heads):
        cfg = genlab_cfg(width, layers, heads, classes)
        n = num_params(DiT(cfg))
        if best is None or abs(n - target) < abs(best[1] - target):
            best = (cfg, n)
        if n > target * 1.2:
            break
    return DiT(best[0])


def aligned_genlab(target: int, heads: int, layers: int, width_cap: int, classes: int = CLASSES) -> DiT:
    """The parameter-matched genlab DiT at a SIMD-friendly shape: width the largest multiple of lcm(ALIGN, heads) not
    above `width_cap` (the matched width), the remaining parameters in the MLP, its hidden size a multiple of ALIGN
    (parameters are linear in the hidden size: two builds give the slope). As many token-path parameters, so as many
    FLOPs, as the matched model (see `accounting`): only the matrix shapes change."""
    step = math.lcm(ALIGN, heads)
    width = max(step, width_cap // step * step)
    n0 = num_params(DiT(genlab_cfg(width, layers, heads, classes, 4 * width)))
    slope = num_params(DiT(genlab_cfg(width, layers, heads, classes, 4 * width + ALIGN))) - n0
    hidden = 4 * width + ALIGN * round((target - n0) / slope)
    return DiT(genlab_cfg(width, layers, heads, classes, max(ALIGN, hidden)))


def fused(model: torch.nn.Module, on: bool):
    """model's forward with genlab.models.dit.FUSED (addcmul modulation and gating) set to `on` for the call."""

    def run(*args, **kwargs):
        before, dit_module.FUSED = dit_module.FUSED, on
        try:
            return model(*args, **kwargs)
        finally:
            dit_module.FUSED = before

    return run


def models_for(size: str) -> dict:
    """{'diffusers', 'genlab' (matched), 'genlab_aligned', 'genlab_diffusers_width'} of a size, seeded."""
    c = SIZES[size]
    torch.manual_seed(0)
    theirs = diffusers_dit(c["heads"], c["head_dim"], c["layers"])
    ours = matched_genlab(num_params(theirs), c["heads"], c["layers"])
    aligned = aligned_genlab(num_params(theirs), c["heads"], c["layers"], dit_dims(ours.cfg)[0])
    same_width = DiT(genlab_cfg(c["heads"] * c["head_dim"], c["layers"], c["heads"]))
    return {"diffusers": theirs, "genlab": ours, "genlab_aligned": aligned, "genlab_diffusers_width": same_width}


def caller(name: str, model: torch.nn.Module):
    """f(x, t in [0, 1], labels) -> prediction, for either library (diffusers takes t on its 0..1000 scale)."""
    if name.startswith("diffusers"):
        return lambda x, t, y: model(x, timestep=t * 1000, class_labels=y, return_dict=False)[0]
    return model


def inputs(batch: int, seed: int = 0) -> tuple:
    g = torch.Generator().manual_seed(seed)
    x, t = torch.randn(batch, *LATENT, generator=g), torch.rand(batch, generator=g)
    return x, t, torch.randint(0, CLASSES, (batch,), generator=g), torch.randn(batch, *LATENT, generator=g)


def describe(model: torch.nn.Module) -> dict:
    if isinstance(model, DiT):
        width, depth, heads = dit_dims(model.cfg)
        hidden = model.blocks[0].mlp[0].out_features
        return {"width": width, "depth": depth, "heads": heads, "head_dim": width // heads, "mlp_hidden": hidden}
    c = model.config
    width = c.num_attention_heads * c.attention_head_dim
    hidden = model.transformer_blocks[0].ff.net[-1].in_features
    return {"width": width, "depth": c.num_layers, "heads": c.num_attention_heads, "mlp_hidden": hidden}


# -- accounting and profile


def accounting(model: torch.nn.Module, fn, batch: int) -> dict:
    """Parameters and forward FLOPs of the linear layers (Linear, Conv2d, Embedding) split by path: a layer applied
    to more rows than the batch is on the token path, one applied once per sample on the conditioning path; the
    train step's total FLOPs (forward + backward, torch.utils.flop_counter: matrix products and attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    paths = {"token": {"params": 0, "fwd_flops": 0}, "conditioning": {"params": 0, "fwd_flops": 0}}
    seen: set[str] = set()
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Embedding)):

            def hook(mod, args, out, name=name):
                rows = out.numel() // (out.shape[-1] if isinstance(mod, torch.nn.Linear) else mod.weight.shape[0])
                path = paths["token" if rows > batch else "conditioning"]
                if not isinstance(mod, torch.nn.Embedding):
                    path["fwd_flops"] += 2 * rows * mod.weight.numel()
                if name not in seen:
                    seen.add(name)
                    path["params"] += sum(p.numel() for p in mod.parameters())

            hooks.append(mod.register_forward_hook(hook))
    x, t, y, target = inputs(batch)
    with torch.no_grad():
        fn(x, t, y)
    for h in hooks:
        h.remove()
    counter = FlopCounterMode(display=False)
    with counter:
        (fn(x, t, y) - target).pow(2).mean().backward()
    model.zero_grad(set_to_none=True)
    total = num_params(model)
    out = {"params": total}
    for k, v in paths.items():
        out[k] = {
            "params": v["params"],
            "param_share": round(v["params"] / total, 3),
            "fwd_gflop": round(v["fwd_flops"] / 1e9, 3),
            "fwd_flop_per_param_per_sample": round(v["fwd_flops"] / max(v["params"], 1) / batch, 1),
        }
    out["train_step_gflop"] = round(counter.get_total_flops() / 1e9, 3)
    return out


MATMULS = ("aten::mm", "aten::addmm", "aten::bmm")


def gemm_flops(key: str, shapes: list) -> int:
    """FLOPs of one call of a matrix-product op from its recorded input shapes."""
    a, b = (shapes[1], shapes[2]) if key == "aten::addmm" else (shapes[0], shapes[1])
    if key == "aten::bmm":
        return 2 * a[0] * a[1] * a[2] * b[2]
    return 2 * a[0] * a[1] * b[1]


def module_kinds(model: torch.nn.Module, batch: int):
    """Forward hooks that wrap each leaf module in a profiler range named module::<kind> (Linear split into the
    token and the conditioning path by the rows it sees); returns a remover."""
    from torch.autograd.profiler import record_function

    handles, open_ranges = [], []

    def pre(mod, args):
        kind = type(mod).__name__
        if isinstance(mod, torch.nn.Linear):
            rows = args[0].numel() // args[0].shape[-1]
            kind += "(token)" if rows > batch else "(conditioning)"
        r = record_function(f"module::{kind}")
        r.__enter__()
        open_ranges.append(r)

    def post(mod, args, out):
        open_ranges.pop().__exit__(None, None, None)

    for mod in model.modules():
        if not list(mod.children()):
            handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    return lambda: [h.remove() for h in handles]


def profile_summary(step, model: torch.nn.Module, batch: int, steps: int = 3, top: int = 10) -> dict:
    """torch.profiler (CPU) over `steps` calls of `step` after one warm-up: self-CPU ms per step of the top ops,
    the matrix products' share and GFLOP/s (from the recorded shapes), and forward ms per step by module kind."""
    from torch.profiler import ProfilerActivity, profile

    step()
    remove = module_kinds(model, batch)
    try:
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(steps):
                step()
    finally:
        remove()
    events = prof.key_averages()
    ops = sorted((e for e in events if not e.key.startswith("module::")), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in ops)
    matmul = sum(e.self_cpu_time_total for e in ops if e.key in MATMULS)
    flops = 0
    for e in prof.key_averages(group_by_input_shape=True):
        if e.key in MATMULS and e.input_shapes:
            flops += gemm_flops(e.key, e.input_shapes) * e.count
    modules = sorted((e for e in events if e.key.startswith("module::")), key=lambda e: -e.cpu_time_total)
    return {
        "ms_per_step": round(total / steps / 1000, 2),
        "matmul_ms_per_step": round(matmul / steps / 1000, 2),
        "matmul_share": round(matmul / total, 3),
        "matmul_gflop_per_step": round(flops / steps / 1e9, 2),
        "matmul_gflop_per_s": round(flops / (matmul / 1e6) / 1e9, 1) if matmul else None,
        "ops_per_step": sum(e.count for e in ops) // steps,
        "top_self_ms_per_step": {e.key: round(e.self_cpu_time_total / steps / 1000, 2) for e in ops[:top]},
        "forward_ms_per_step_by_module": {
            e.key.removeprefix("module::"): round(e.cpu_time_total / steps / 1000, 2) for e in modules
        },
    }


def gemm_rates(shapes: dict[str, tuple[int, int]], rows: int, repeats: int) -> dict:
    """GFLOP/s of each model's MLP input layer, Linear(width, hidden) on rows x width, forward + backward (its three
    products: y = x·Wᵀ + b, dx = dy·W, dW = dyᵀ·x), fp32 and bf16, interleaved: equal rates would mean the matrix
    shapes do not matter."""
    fns = {}
    for dtype in (torch.float32, torch.bfloat16):
        for name, (w, hidden) in shapes.items():
            layer = torch.nn.Linear(w, hidden, dtype=dtype)
            x, dy = torch.randn(rows, w, dtype=dtype, requires_grad=True), torch.randn(rows, hidden, dtype=dtype)

            def run(layer=layer, x=x, dy=dy):
                layer(x).backward(dy)
                x.grad = layer.weight.grad = layer.bias.grad = None

            fns[f"{name} {w}x{hidden}/{str(dtype).removeprefix('torch.')}"] = (run, 6 * rows * w * hidden)
    times = medians(interleaved({k: f for k, (f, _) in fns.items()}, repeats)["cpu"])
    return {k: round(fns[k][1] / times[k] / 1e9, 1) for k in fns}


def optimizer_steps(models: dict, repeats: int) -> dict:
    """CPU ms of one AdamW step over each model's parameters (random gradients), torch's per-tensor loop (what the
    trainer used) against the fused kernel (genlab.train.adamw, what it uses now), interleaved."""
    fns = {}
    for key in ("diffusers", "genlab"):
        params = [p.detach().clone().requires_grad_() for p in models[key].parameters()]
        for p in params:
            p.grad = torch.randn_like(p) * 1e-3
        for kind, opt in (
            ("loop", torch.optim.AdamW(params, lr=1e-4, foreach=False)),
            ("fused", torch.optim.AdamW(params, lr=1e-4, fused=True)),
        ):
            fns[f"{key}/{kind}"] = opt.step
    ms = {k: round(v * 1000, 2) for k, v in medians(interleaved(fns, repeats)["cpu"]).items()}
    return {
        "ms": ms,
        "speedup_fused": {k: round(ms[f"{k}/loop"] / ms[f"{k}/fused"], 2) for k in ("diffusers", "genlab")},
    }


# -- train step, forward, generation


def make_train_step(fn, model: torch.nn.Module, batch: int, *, fused_adamw: bool, bf16: bool, device="cpu"):
    """One train step (forward, MSE, backward, AdamW) of `model` through `fn` on `batch` inputs on `device` (the
    model's); bf16: under autocast."""
    device = torch.device(device)
    x, t, y, target = (v.to(device) for v in inputs(batch))
    opt = adamw(list(model.parameters()), lr=1e-4, fused=fused_adamw)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            pred = fn(x, t, y)
        (pred.float() - target).pow(2).mean().backward()
        opt.step()

    return step


TRAIN_ARMS = {  # name: (model key, addcmul modulation on, fused AdamW, bf16 autocast)
    "diffusers": ("diffusers", True, True, False),
    "genlab": ("genlab", True, True, False),
    "genlab_aligned": ("genlab_aligned", True, True, False),
    "genlab_diffusers_width": ("genlab_diffusers_width", True, True, False),
    "genlab_unfused_modulation": ("genlab", False, True, False),
    "diffusers_loop_adamw": ("diffusers", True, False, False),
    "genlab_loop_adamw": ("genlab", True, False, False),
    "diffusers_bf16": ("diffusers", True, True, True),
    "genlab_bf16": ("genlab", True, True, True),
    "genlab_aligned_bf16": ("genlab_aligned", True, True, True),
}


def train_arm(models: dict, arm: str, batch: int):
    key, modulation, fused_adamw, bf16 = TRAIN_ARMS[arm]
    fn = caller(key, models[key])
    if key.startswith("genlab"):
        fn = fused(models[key], modulation)
    return make_train_step(fn, models[key], batch, fused_adamw=fused_adamw, bf16=bf16)


def reference(arm: str) -> str:
    """The diffusers arm an arm is compared with: the same optimizer and precision."""
    return "diffusers" + ("_loop_adamw" if "loop" in arm else "_bf16" if "bf16" in arm else "")


def diffusers_style_loop(model_fn, noise: torch.Tensor, labels, null, ts, scale: float) -> torch.Tensor:
    """A diffusers-pipeline-style sampling loop: per step the latents doubled with torch.cat, labels with the null
    label, one call, chunk, guidance, an Euler step x += (t_next - t)·v on the time grid `ts` (the flow target)."""
    x = noise
    y = torch.cat([labels, null])
    for t, t_next in zip(ts[:-1], ts[1:]):
        both = model_fn(torch.cat([x, x]), t.expand(2 * x.shape[0]).to(x.dtype), y)
        c, u = both.chunk(2)
        x = x + (t_next - t).to(x.dtype) * (u + scale * (c - u))
    return x


def generation(models: dict, n: int, steps: int, repeats: int) -> dict:
    """Images/s (latents, no decoder) at `steps` Euler steps with batched CFG (scale 4): genlab's sampler path and
    the diffusers-style loop (on diffusers' model, and on genlab's as a check of the same scheduler math)."""
    scale = 4.0
    noise = torch.randn(n, *LATENT, generator=torch.Generator().manual_seed(1))
    labels, null = torch.arange(n) % CLASSES, torch.full((n,), CLASSES)
    ts = time_grid("auto", steps, path=get_path("rectified"), sampler="euler")

    def genlab_generate(model):
        return sample(guided(model, labels, scale=scale, null_cond=null), noise, sampler="euler", steps=steps)

    with torch.no_grad():
        same_math = float(
            (genlab_generate(models["genlab"]) - diffusers_style_loop(models["genlab"], noise, labels, null, ts, scale))
            .abs()
            .max()
        )
        arms = {
            "genlab": lambda: genlab_generate(models["genlab"]),
            "genlab_aligned": lambda: genlab_generate(models["genlab_aligned"]),
            "diffusers_loop": lambda: diffusers_style_loop(
                caller("diffusers", models["diffusers"]), noise, labels, null, ts, scale
            ),
        }
        times = interleaved(arms, repeats)
    ips = {k: n / v for k, v in medians(times["cpu"]).items()}
    return {
        "compared": "the same noise, labels, time grid (16-step Euler, rectified flow) and guidance scale; one batched "
        "call of 2n rows per step in both; latents only (no decoder); fp32, no_grad",
        "n_images": n,
        "steps": steps,
        "guidance_scale": scale,
        "loops_agree_on_genlab_model_max_abs": same_math,
        "images_per_s": {k: round(v, 2) for k, v in ips.items()},
        "images_per_s_wall": {k: round(n / v, 2) for k, v in medians(times["wall"]).items()},
        "speedup_over_diffusers_loop": {
            k: round(ips[k] / ips["diffusers_loop"], 3) for k in ("genlab", "genlab_aligned")
        },
        "seconds": rounded(times),
    }


# -- peak memory, one subprocess per arm


MEMORY_ARMS = (
    "train:diffusers",
    "train:genlab",
    "train:genlab_aligned",
    "train:diffusers_bf16",
    "train:genlab_bf16",
    "generate:diffusers_loop",
    "generate:genlab",
)


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))
    except (OSError, StopIteration):
        return None


def reset_peak() -> float:
    """Resident MiB now, after resetting the kernel's peak-RSS mark (Linux: 5 > /proc/self/clear_refs) so that
    peak_rss() sees this work's peak, not the imports'. Without /proc: ru_maxrss (the process's whole peak)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return _status_kib("VmRSS") / 1024


def peak_rss() -> float:
    """Peak resident MiB since reset_peak() (VmHWM), else the process's ru_maxrss."""
    kib = _status_kib("VmHWM")
    return (kib if kib is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def memory_child(size: str, arm: str, shape: dict, batch: int, n_images: int, threads: int) -> dict:
    """In this (fresh) process: the resident set after building the arm's one model (genlab's from
    `shape`, so no width search inflates the peak) and inputs, and after 3 train steps or one generation."""
    torch.set_num_threads(threads)
    kind, name = arm.split(":")
    torch.manual_seed(0)
    if name.startswith("diffusers"):
        c = SIZES[size]
        key, model = "diffusers", diffusers_dit(c["heads"], c["head_dim"], c["layers"])
    else:
        key = "genlab_aligned" if "aligned" in name else "genlab"
        model = DiT(genlab_cfg(shape["width"], shape["depth"], shape["heads"], mlp_hidden=shape["mlp_hidden"]))
    if kind == "train":
        step = train_arm({key: model}, name, batch)
        before = reset_peak()
        for _ in range(3):
            step()
    else:
        noise = torch.randn(n_images, *LATENT)
        labels, null = torch.arange(n_images) % CLASSES, torch.full((n_images,), CLASSES)
        ts = time_grid("auto", 16, path=get_path("rectified"), sampler="euler")
        before = reset_peak()
        with torch.no_grad():
            if key == "genlab":
                sample(guided(model, labels, scale=4.0, null_cond=null), noise, sampler="euler", steps=16)
            else:
                diffusers_style_loop(caller(key, model), noise, labels, null, ts, 4.0)
    after = peak_rss()
    return {"before_mib": round(before, 1), "peak_mib": round(after, 1), "increase_mib": round(after - before, 1)}


def peak_memory(size: str, models: dict, batch: int, n_images: int, threads: int) -> dict:
    """memory_child of each MEMORY_ARMS arm, each in its own Python process."""
    out = {}
    for arm in MEMORY_ARMS:
        name = arm.split(":")[1]
        shape = describe(models["genlab_aligned" if "aligned" in name else "genlab"])
        cmd = [sys.executable, __file__, "--memory-child", f"{size}/{arm}", "--shape", json.dumps(shape)]
        cmd += ["--threads", str(threads), "--batch", str(batch), "--images", str(n_images)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"memory arm {size}/{arm} failed:\n{done.stderr[-2000:]}")
        out[arm] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


# -- one size


def dit_vs_diffusers(size: str, batch: int, repeats: int, n_images: int, threads: int) -> dict:
    models = models_for(size)
    acc = {k: accounting(m, caller(k, m), batch) for k, m in models.items()}
    flop_ratio = acc["genlab"]["train_step_gflop"] / acc["diffusers"]["train_step_gflop"]

    steps = {arm: train_arm(models, arm, batch) for arm in TRAIN_ARMS}
    train = interleaved(steps, repeats)
    cpu, wall = medians(train["cpu"]), medians(train["wall"])
    sps = {k: round(batch / v, 1) for k, v in cpu.items()}
    speedup = {k: round(cpu[reference(k)] / cpu[k], 3) for k in TRAIN_ARMS if not k.startswith("diffusers")}
    speedup_wall = {k: round(wall[reference(k)] / wall[k], 3) for k in TRAIN_ARMS if not k.startswith("diffusers")}

    x, t, y, _ = inputs(batch)
    fwd_arms = {}
    for key in ("diffusers", "genlab", "genlab_aligned"):
        fn = caller(key, models[key])
        for bf16 in (False, True):

            def forward(fn=fn, bf16=bf16):
                with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    fn(x, t, y)

            fwd_arms[key + ("_bf16" if bf16 else "")] = forward
    fwd = interleaved(fwd_arms, repeats)
    fwd_cpu = medians(fwd["cpu"])

    profiles: dict = {}
    for r in range(3):  # interleaved rounds; each arm keeps its least disturbed (fastest) profiled round
        for k in ("diffusers", "genlab", "genlab_aligned") if r % 2 == 0 else ("genlab_aligned", "genlab", "diffusers"):
            got = profile_summary(steps[k], models[TRAIN_ARMS[k][0]], batch, steps=2)
            if k not in profiles or got["ms_per_step"] < profiles[k]["ms_per_step"]:
                profiles[k] = got
    gemm_models = ("diffusers", "genlab", "genlab_aligned")
    prof_d = profiles["diffusers"]
    # if genlab's step were nothing but its matrix products, run at diffusers' GEMM rate: the most it could gain
    bound = prof_d["ms_per_step"] / (prof_d["matmul_ms_per_step"] * flop_ratio)
    return {
        "compared": "diffusers' DiTTransformer2DModel with the stated config, other arguments at its defaults; "
        "genlab's DiT with the same depth and heads, width searched (multiples of heads) for the "
        "parameter count closest to diffusers' (genlab); the same parameter count at an aligned shape "
        "(genlab_aligned: width and MLP hidden multiples of 64); genlab at diffusers' width (not "
        "parameter-matched); same inputs, batch and threads; train step = forward + MSE + backward + AdamW "
        "(lr 1e-4; fused unless the arm says loop), fp32 unless the arm says bf16 (torch.autocast on CPU, "
        "fp32 weights and optimizer); forward under no_grad",
        "size": size,
        "batch": batch,
        "latent": list(LATENT),
        "patch_size": 2,
        "classes": CLASSES,
        "configs": {k: describe(m) for k, m in models.items()},
        "params": {k: num_params(m) for k, m in models.items()},
        "param_ratio": {k: round(num_params(m) / num_params(models["diffusers"]), 4) for k, m in models.items()},
        "accounting": acc,
        "train_step_flop_ratio_genlab_over_diffusers": round(flop_ratio, 4),
        "train_step_samples_per_s": sps,
        "train_step_samples_per_s_wall": {k: round(batch / v, 1) for k, v in wall.items()},
        "speedup_train_step": speedup,
        "speedup_train_step_wall": speedup_wall,
        "what_each_change_bought": {  # genlab over genlab, same run (CPU-time ratios)
            "fused_adamw (genlab / genlab_loop_adamw)": round(cpu["genlab_loop_adamw"] / cpu["genlab"], 3),
            "fused_adamw on diffusers (diffusers / diffusers_loop_adamw)": round(
                cpu["diffusers_loop_adamw"] / cpu["diffusers"], 3
            ),
            "addcmul modulation (genlab / genlab_unfused_modulation)": round(
                cpu["genlab_unfused_modulation"] / cpu["genlab"], 3
            ),
            "aligned shape (genlab_aligned / genlab)": round(cpu["genlab"] / cpu["genlab_aligned"], 3),
            "bf16 autocast (genlab_bf16 / genlab)": round(cpu["genlab"] / cpu["genlab_bf16"], 3),
            "bf16 autocast on diffusers (diffusers_bf16 / diffusers)": round(
                cpu["diffusers"] / cpu["diffusers_bf16"], 3
            ),
        },
        "optimizer_step": optimizer_steps(models, 3 * repeats),
        "forward_samples_per_s": {k: round(batch / v, 1) for k, v in fwd_cpu.items()},
        "speedup_forward": {
            k: round(fwd_cpu["diffusers" + ("_bf16" if "bf16" in k else "")] / v, 3)
            for k, v in fwd_cpu.items()
            if not k.startswith("diffusers")
        },
        "profile_train_step": profiles,
        "gemm_gflop_per_s": gemm_rates(
            {k: (describe(models[k])["width"], describe(models[k])["mlp_hidden"]) for k in gemm_models},
            batch * (LATENT[1] // 2) ** 2,
            3 * repeats,
        ),
        "upper_bound_fp32_speedup": {
            "what": "diffusers' profiled step time over genlab's matrix-product time if genlab multiplied its "
            "(train_step_flop_ratio x more) FLOPs at diffusers' measured GEMM rate and spent nothing else: no "
            "fp32 genlab at matched parameters can beat this without doing fewer FLOPs",
            "value": round(bound, 3),
        },
        "generation": generation(models, n_images, 16, repeats),
        "peak_memory_mib": peak_memory(size, models, batch, n_images, torch.get_num_threads()),
        "seconds": {"train_step": rounded(train), "forward": rounded(fwd)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and images, the small size only (a smoke run)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/t2i_speed.json")
    ap.add_argument("--batch", type=int, default=64, help="train-step and forward batch")
    ap.add_argument("--images", type=int, default=None, help="images per generation run (default 16, quick 4)")
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)  # SIZE/KIND:ARM, internal
    ap.add_argument("--shape", default="{}", help=argparse.SUPPRESS)  # genlab shape (JSON) for --memory-child
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n_images = args.images or (4 if args.quick else 16)
    if args.memory_child:
        size, arm = args.memory_child.split("/", 1)
        shape = json.loads(args.shape)
        print(json.dumps(memory_child(size, arm, shape, args.batch, n_images, args.threads)))
        return
    repeats = 2 if args.quick else 7
    result = {
        "device": "cpu",
        "threads": args.threads,
        "torch": torch.__version__,
        "repeats": repeats,
        "note": "the machine is shared by several engineers: absolute numbers are noisy; ratios are same-run, of "
        "CPU-time medians (time.thread_time; wall-clock ratios alongside)",
        "cfg_sampling": cfg_sampling(8 if args.quick else 32, 16, repeats),
        "dit_vs_diffusers": [
            dit_vs_diffusers(size, args.batch, repeats, n_images, args.threads)
            for size in (["1.4M"] if args.quick else SIZES)
        ],
    }
    try:
        import diffusers

        result["diffusers"] = diffusers.__version__
    except ImportError:
        pass
    atomic_write_text(args.out, json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result["cfg_sampling"].items() if k != "seconds"}, indent=1))
    for r in result["dit_vs_diffusers"]:
        keep = ("size", "params", "train_step_flop_ratio_genlab_over_diffusers", "speedup_train_step")
        keep += ("what_each_change_bought", "speedup_forward", "upper_bound_fp32_speedup", "peak_memory_mib")
        print(json.dumps({k: r[k] for k in keep}, indent=1))
        print(json.dumps({k: v for k, v in r["generation"].items() if k != "seconds"}))


if __name__ == "__main__":
    main()
