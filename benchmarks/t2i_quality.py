"""Quality of a text-to-image run (default: the checkpoint shipped in the package) and a guidance sweep.

For each guidance scale s: attribute accuracy (genlab.metrics.t2i.evaluate_t2i: count, colour, shape,
size, relation, all) on prompts of seen and of held-out colour×shape combinations, FD against renders of
the same captions in the shapes feature space, CLIP score when a CLIP run is given, and diversity = mean
pairwise RMS pixel distance between the images of one prompt (averaged over prompts). Adherence vs
diversity is plotted against s.

    python benchmarks/t2i_quality.py [--run RUN] [--scales 1 2 4 7] [--prompts 24] [--per-prompt 4]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from common import BASE_T2I  # noqa: E402
from genlab.atomic import atomic_path, atomic_write_text  # noqa: E402
from genlab.checkpoint import run_folder  # noqa: E402
from genlab.data.shapes import ShapesConfig, build_shapes  # noqa: E402
from genlab.metrics.features import pixel_feature_net  # noqa: E402
from genlab.metrics.image import psnr  # noqa: E402
from genlab.metrics.t2i import SHAPES_ASSET, evaluate_t2i, prompt_set  # noqa: E402
from genlab.runs import Run, load_run  # noqa: E402


def diversity(images: torch.Tensor, per_prompt: int) -> float:
    """Mean over prompts of the mean pairwise RMS distance between that prompt's images (consecutive rows)."""
    groups = images.flatten(1).view(-1, per_prompt, images[0].numel())  # (P, k, D)
    d = torch.cdist(groups, groups) / images[0].numel() ** 0.5  # (P, k, k)
    k = per_prompt
    return float(d.sum((1, 2)).mean() / (k * (k - 1)))


@torch.no_grad()
def autoencoder_psnr(method, n: int = 500) -> dict:
    """PSNR (dB) of the frozen autoencoder's reconstructions (posterior mean) of the shapes 'test' split."""
    x = build_shapes(ShapesConfig(n_test=n), split="test").x
    values = torch.cat([psnr(method.from_latent(method.to_latent(b)), b) for b in x.split(100)])
    return {
        "images": n,
        "split": "test",
        "psnr_mean": round(float(values.mean()), 2),
        "psnr_median": round(float(values.median()), 2),
    }


def feature_net(spec: str | None):
    """The shapes feature net (shipped asset or a path); 8x8 pixels when asked or when none is shipped yet."""
    if spec == "pixels" or (
        spec is None and not (Path(str(run_folder(BASE_T2I).parent.parent)) / SHAPES_ASSET).is_file()
    ):
        return pixel_feature_net(3, 8)
    return spec


def make_generator(run: Run, *, scale: float, steps: int, sampler: str, store: dict):
    def generate(prompts: list[str], seed: int) -> torch.Tensor:
        x = run.sample(len(prompts), prompts=prompts, seed=seed, steps=steps, sampler=sampler, guidance_scale=scale).x
        store.setdefault("images", []).append(x)
        return x

    return generate


def plot(rows: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
    scales = [r["guidance_scale"] for r in rows]
    for key, colour in (("all", "tab:blue"), ("colour", "tab:green")):
        for split, style in (("seen", "-o"), ("heldout", "--o")):
            acc = [r[split]["attributes"][key] for r in rows]
            ax.plot(scales, acc, style, color=colour, label=f"accuracy ({key}) {split}")
    ax.set_xlabel("guidance scale s")
    ax.set_ylabel("attribute accuracy")
    ax2 = ax.twinx()
    for split, style in (("seen", "-s"), ("heldout", "--s")):
        ax2.plot(scales, [r[split]["diversity"] for r in rows], style, color="tab:red", label=f"diversity {split}")
    ax2.set_ylabel("diversity (pairwise RMS, same prompt)", color="tab:red")
    fig.legend(loc="lower center", ncol=3, fontsize=6, bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="text-to-image run folder (default: shipped:shapes-t2i, see BASE_T2I)")
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 2.0, 4.0, 7.0])
    ap.add_argument("--prompts", type=int, default=24, help="prompts per set (seen, held-out)")
    ap.add_argument("--per-prompt", type=int, default=4)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--sampler", default="heun")
    ap.add_argument("--clip-run", help="a CLIP run (recipes/shapes-clip.yaml) for CLIP scores")
    ap.add_argument("--features", help="FD feature net: a .safetensors path or 'pixels' (default: the shipped one)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/t2i_quality.json")
    ap.add_argument("--plot-only", action="store_true", help="redraw the plot from an existing --out JSON")
    args = ap.parse_args()
    out = Path(args.out)
    if args.plot_only:
        plot(json.loads(out.read_text())["sweep"], out.with_name("t2i_guidance_sweep.png"))
        return
    torch.set_num_threads(args.threads)
    run = args.run or BASE_T2I
    t2i = load_run(run)
    seen, heldout = prompt_set("test", args.prompts), prompt_set("heldout", args.prompts)
    ae = autoencoder_psnr(t2i.method)
    print(json.dumps({"autoencoder": ae}), flush=True)
    rows = []
    for s in args.scales:
        store: dict = {}
        start = time.perf_counter()
        gen = make_generator(t2i, scale=s, steps=args.steps, sampler=args.sampler, store=store)
        report = evaluate_t2i(
            gen,
            prompts_seen=seen,
            prompts_heldout=heldout,
            n_per_prompt=args.per_prompt,
            clip_run=args.clip_run,
            feature_net=feature_net(args.features),
        )
        for split, images in zip(("seen", "heldout"), store["images"]):
            report[split]["diversity"] = round(diversity(images, args.per_prompt), 4)
        rows.append(
            {
                "guidance_scale": s,
                "seconds": round(time.perf_counter() - start, 1),
                **{k: report[k] for k in ("seen", "heldout")},
                "settings": report["settings"],
            }
        )
        print(
            json.dumps(
                {
                    "s": s,
                    **{
                        k: (report[k]["attributes"]["all"], report[k]["fd"], report[k]["diversity"])
                        for k in ("seen", "heldout")
                    },
                }
            ),
            flush=True,
        )
    grid = t2i.resolve_settings(sampler=args.sampler, steps=args.steps).grid
    result = {
        "run": str(run),
        "step": t2i.step,
        "recipe": t2i.recipe.name,
        "sampler": args.sampler,
        "steps": args.steps,
        "grid": grid,
        "prompts_per_set": args.prompts,
        "images_per_prompt": args.per_prompt,
        "threads": args.threads,
        "note": "CPU machine shared with other engineers",
        "autoencoder": ae,
        "sweep": rows,
    }
    atomic_write_text(out, json.dumps(result, indent=2, default=float))
    plot(rows, out.with_name("t2i_guidance_sweep.png"))
    print(f"written {out} and {out.with_name('t2i_guidance_sweep.png')}")


if __name__ == "__main__":
    main()
