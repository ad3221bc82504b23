"""Text-to-image speed on CPU: batched classifier-free guidance vs two passes, and genlab's DiT vs diffusers'.

1. Sampling images/s of the shipped architecture (recipes/shapes-t2i.yaml: DiT with cross-attention on
   4x8x8 latents + the autoencoder's decoder), Euler with 16 steps at guidance scale 4, text embeddings
   precomputed (random, the encoder's shape): guidance as ONE batched call of 2n rows per step
   (genlab.samplers.guided) against two calls of n rows (cond, then uncond).
2. Class-conditional DiT, genlab's against diffusers' `DiTTransformer2DModel` (adaLN-Zero), same input
   (latents 4x8x8, patch 2, t, labels), genlab's width searched for the closest parameter count (param_ratio):
   forward (inference) and forward + backward + AdamW (training) samples/s. Same run, train step only: an
   ablation (genlab with genlab.models.dit.FUSED off = the old mul+add modulation/gating; genlab at diffusers'
   width, i.e. diffusers' head size, not parameter-matched) and a torch.profiler summary (self-CPU ms per step).
Repeats are interleaved (the order alternates), medians reported, same thread count for both.

    python benchmarks/t2i_speed.py [--quick] [--threads 2] [--out benchmarks/results/t2i_speed.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from types import SimpleNamespace

import torch

import genlab.models.dit as dit_module
from genlab.atomic import atomic_write_text
from genlab.models.autoencoder import Autoencoder, AutoencoderConfig
from genlab.models.dit import DiT, DiTConfig, dit_dims
from genlab.samplers import guided, sample

LATENT = (4, 8, 8)
TEXT_LEN, TEXT_DIM = 12, 384  # MiniLM: 384-wide tokens; shapes captions are about 12 tokens


def num_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def interleaved(fns: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds of each callable per repeat, alternating the order every repeat; one warm-up call each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(repeats):
        for k in list(fns) if r % 2 == 0 else list(reversed(fns)):
            start = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - start)
    return times


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
    ips = {k: n / statistics.median(v) for k, v in times.items()}
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
        "speedup_batched_over_two_passes": round(ips["batched"] / ips["two_passes"], 3),
        "seconds": {k: [round(s, 4) for s in v] for k, v in times.items()},
    }


def diffusers_dit(heads: int, head_dim: int, layers: int, classes: int) -> torch.nn.Module:
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


def matched_genlab(target: int, heads: int, layers: int, classes: int) -> DiT:
    """genlab DiT with diffusers' depth and heads, width (a multiple of heads) closest in parameters."""
    best = None
    for width in range(4 * heads, 1025, heads):
        cfg = DiTConfig(in_channels=4, image_size=8, num_classes=classes, width=width, depth=layers, heads=heads)
        n = num_params(DiT(cfg))
        if best is None or abs(n - target) < abs(best[1] - target):
            best = (cfg, n)
        if n > target * 1.2:
            break
    return DiT(best[0])


def fused(model: torch.nn.Module, on: bool):
    """model's forward with genlab.models.dit.FUSED (addcmul modulation and gating) set to `on` for the call."""

    def run(*args, **kwargs):
        before, dit_module.FUSED = dit_module.FUSED, on
        try:
            return model(*args, **kwargs)
        finally:
            dit_module.FUSED = before

    return run


def profile_summary(step, steps: int = 3, top: int = 8) -> dict:
    """torch.profiler (CPU) over `steps` calls of `step` after one warm-up: self-CPU ms per step of the top ops,
    and the share of matrix products (mm, addmm, bmm) in the total."""
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mm", "aten::addmm", "aten::bmm"))
    return {
        "ms_per_step": round(total / steps / 1000, 2),
        "matmul_ms_per_step": round(matmul / steps / 1000, 2),
        "matmul_share": round(matmul / total, 3),
        "top_self_ms_per_step": {e.key: round(e.self_cpu_time_total / steps / 1000, 2) for e in events[:top]},
    }


def dit_vs_diffusers(batch: int, repeats: int, *, heads: int, head_dim: int, layers: int, classes: int) -> dict:
    torch.manual_seed(0)
    theirs = diffusers_dit(heads, head_dim, layers, classes)
    ours = matched_genlab(num_params(theirs), heads, layers, classes)
    same_width = DiT(
        DiTConfig(in_channels=4, image_size=8, num_classes=classes, width=heads * head_dim, depth=layers, heads=heads)
    )
    x, t = torch.randn(batch, *LATENT), torch.rand(batch)
    label = torch.randint(0, classes, (batch,))
    target = torch.randn(batch, *LATENT)
    call = {
        "genlab": lambda: fused(ours, True)(x, t, label),
        "diffusers": lambda: theirs(x, timestep=t * 1000, class_labels=label, return_dict=False)[0],
    }
    ablation = {  # same-run variants of genlab's model, timed with the two above
        "genlab_unfused": lambda: fused(ours, False)(x, t, label),
        "genlab_diffusers_width": lambda: fused(same_width, True)(x, t, label),
    }
    models = {"genlab": ours, "diffusers": theirs, "genlab_unfused": ours, "genlab_diffusers_width": same_width}
    opts = {k: torch.optim.AdamW(m.parameters(), 1e-4) for k, m in models.items()}
    call_all = {**call, **ablation}

    def train_step(name):
        opts[name].zero_grad(set_to_none=True)
        (call_all[name]() - target).pow(2).mean().backward()
        opts[name].step()

    def forward(name):
        with torch.no_grad():
            call[name]()

    fwd = interleaved({k: (lambda k=k: forward(k)) for k in call}, repeats)
    train = interleaved({k: (lambda k=k: train_step(k)) for k in call_all}, repeats)
    sps = lambda times: {k: round(batch / statistics.median(v), 1) for k, v in times.items()}  # noqa: E731
    f, tr = sps(fwd), sps(train)
    profiles = {k: profile_summary(lambda k=k: train_step(k)) for k in ("genlab", "genlab_unfused", "diffusers")}
    return {
        "compared": "diffusers' DiTTransformer2DModel with the stated config, other arguments at its defaults; "
        "genlab's DiT with the same depth and heads, width searched (multiples of heads) for the "
        "parameter count closest to diffusers' (param_ratio); same inputs, batch and threads; forward "
        "under no_grad; train step = forward + MSE + backward + AdamW(lr 1e-4)",
        "batch": batch,
        "latent": list(LATENT),
        "patch_size": 2,
        "classes": classes,
        "diffusers_config": {"num_attention_heads": heads, "attention_head_dim": head_dim, "num_layers": layers},
        "genlab_config": dict(zip(("width", "depth", "heads"), dit_dims(ours.cfg))),
        "params": {"genlab": num_params(ours), "diffusers": num_params(theirs)},
        "param_ratio": round(num_params(ours) / num_params(theirs), 4),
        "forward_samples_per_s": f,
        "train_step_samples_per_s": tr,
        "speedup_forward": round(f["genlab"] / f["diffusers"], 3),
        "speedup_train_step": round(tr["genlab"] / tr["diffusers"], 3),
        "ablation_train_step": {
            "what": "train-step speedup over diffusers, same run: genlab as shipped (fused: addcmul modulation and "
            "gated residuals), with FUSED off (the old mul+add code), and genlab at diffusers' width "
            "(head size = diffusers', NOT parameter-matched: see its param_ratio)",
            "speedup": {
                k: round(tr[k] / tr["diffusers"], 3) for k in ("genlab", "genlab_unfused", "genlab_diffusers_width")
            },
            "genlab_diffusers_width_param_ratio": round(num_params(same_width) / num_params(theirs), 4),
        },
        "profile_train_step": profiles,
        "seconds": {"forward": fwd, "train_step": train},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and images (a smoke run)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/t2i_speed.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else 7
    result = {
        "device": "cpu",
        "threads": args.threads,
        "torch": torch.__version__,
        "repeats": repeats,
        "note": "the machine is shared by several engineers: absolute numbers are noisy, ratios are same-run",
        "cfg_sampling": cfg_sampling(8 if args.quick else 32, 16, repeats),
        "dit_vs_diffusers": [
            dit_vs_diffusers(64, repeats, heads=4, head_dim=32, layers=4, classes=10),
            dit_vs_diffusers(64, repeats, heads=6, head_dim=64, layers=6, classes=10),
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
        print(json.dumps({k: v for k, v in r.items() if k != "seconds"}))


if __name__ == "__main__":
    main()
