"""Samplers vs NFE on a trained digits model: class accuracy and FD in the shipped digits feature space.

Reuses runs/digits-flow (or trains recipes/digits-flow.yaml there once): class-conditional rectified flow
with CFG at the recipe's guidance scale. For each sampler (on the recipe's grid, or name[grid]) and NFE
budget B ∈ {4, 8, 16, 32} (the most
steps whose counted NFE ≤ B; one NFE = one batched cond+uncond network call), n samples with the classes
cycled are scored by genlab's digits feature net (genlab.metrics): class accuracy = argmax of its logits
equals the requested class, FD against the whole digits train split. Extra lines: the same net with the
null label (unconditional baseline), and that unconditional model with classifier guidance from
runs/digits-classifier (recipes/digits-classifier.yaml) at scale 2, which is what CFG at s = 2 approximates
(uncond + s·(cond − uncond) ≈ ∇log p(x_t) + s·∇log p(y | x_t)); each such NFE adds a classifier backward.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402
from genlab.atomic import atomic_path  # noqa: E402
from genlab.checkpoint import find_checkpoint  # noqa: E402
from genlab.config import load_recipe  # noqa: E402
from genlab.data import build_dataset  # noqa: E402
from genlab.errors import GenlabError  # noqa: E402
from genlab.metrics.classes import class_metrics  # noqa: E402
from genlab.metrics.features import digits_feature_net, extract  # noqa: E402
from genlab.metrics.fid import frechet_distance  # noqa: E402
from genlab.runs import Run, load_run  # noqa: E402
from genlab.samplers import sample  # noqa: E402
from genlab.train import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = (4, 8, 16, 32)
SAMPLERS = ("euler", "heun", "midpoint", "dpmpp_2m", "dpmpp_3m", "unipc", "ddim", "edm")


def ensure_run(run: Path, recipe: Path) -> dict:
    """Reuse a finished run, or train the recipe into it; returns how it was obtained."""
    try:
        find_checkpoint(run)
        return {"run": str(run), "trained_here": False}
    except GenlabError:
        start = time.perf_counter()
        train(load_recipe(recipe), run, progress=False)
        return {"run": str(run), "trained_here": True, "train_minutes": round((time.perf_counter() - start) / 60, 2)}


def budget_steps(method, grid: str, sampler: str, budgets: tuple[int, ...] = BUDGETS) -> dict[int, int | None]:
    """For each budget, the most steps whose NFE ≤ budget. NFE does not depend on the network, so it is
    counted on a zero model (NFE is nondecreasing in steps)."""
    nfe, steps = {}, 0
    while not nfe or nfe[steps] <= max(budgets):
        steps += 1
        stats: dict = {}
        sample(
            lambda x, t: torch.zeros_like(x),
            torch.zeros(1, 1),
            sampler=sampler,
            steps=steps,
            path=method.path,
            target=method.cfg.target,
            grid=grid,
            stats=stats,
        )
        nfe[steps] = stats["nfe"]
    return {b: max((s for s, n in nfe.items() if n <= b), default=None) for b in budgets}


class Scorer:
    """Class accuracy and FD (against the train split) of image sets, in the digits feature space."""

    def __init__(self, train_x: torch.Tensor):
        self.net = digits_feature_net()
        self.ref = extract(self.net, train_x)[0]

    def __call__(self, x: torch.Tensor, labels: torch.Tensor) -> dict:
        feats, logits = extract(self.net, x.clamp(-1, 1))
        return {
            "class_accuracy": class_metrics(logits, labels=labels)["class_accuracy"],
            "fd": frechet_distance(feats, self.ref),
        }


def sweep(draw, steps_of: dict, score) -> list[dict]:
    """One line: for each budget, draw(steps) -> Samples (labels in .cond), scored."""
    rows = []
    for budget, steps in steps_of.items():
        if steps is None:
            continue
        start = time.perf_counter()
        out = draw(steps)
        nfe = out.nfe
        rows.append(
            {
                "budget": budget,
                "steps": steps,
                "nfe": nfe,
                **score(out.x, out.cond),
                "seconds": round(time.perf_counter() - start, 2),
            }
        )
        print(f"    NFE {nfe:2d}: {rows[-1]}", flush=True)
    return rows


def sampler_lines(run: Run, settings: dict, n: int, score, samplers) -> dict:
    """One line per sampler name, or name[grid] for another grid than the recipe's. Settings go to `Run.sample` as
    keywords, so each one given here is used as is (classes cycled, seed 0)."""
    lines = {}
    for label in samplers:
        print(label, flush=True)
        name, _, grid = label.rstrip("]").partition("[")
        opts = {**settings, "sampler": name, "grid": grid or settings["grid"]}

        def draw(steps, opts=opts):
            return run.sample(n, seed=0, **{**opts, "steps": steps})

        lines[label] = sweep(draw, budget_steps(run.method, opts["grid"], name), score)
    return lines


def guidance_lines(run: Run, classifier: Run, settings: dict, n: int, score, *, sampler: str, scale: float) -> dict:
    """The null-label (unconditional) model without and with classifier guidance. The null-label prediction is CFG
    at s = 0 (uncond + 0·(cond − uncond)): the same batched cond+uncond network call per NFE as the CFG lines."""
    out = {}
    for label, s in ((f"uncond {sampler}", 0.0), (f"uncond {sampler} + classifier s={scale:g}", scale)):
        print(label, flush=True)
        guide = {"classifier": classifier, "classifier_scale": s} if s else {}

        def draw(steps, guide=guide):
            return run.sample(
                n, seed=0, **{**settings, "sampler": sampler, "steps": steps, "guidance_scale": 0.0}, **guide
            )

        out[label] = sweep(draw, budget_steps(run.method, settings["grid"], sampler), score)
    return out


def plot(lines: dict, floor: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for i, (label, rows) in enumerate(lines.items()):
        style = "s--" if label.startswith("uncond") else "o-"
        for ax, key in zip(axes, ("class_accuracy", "fd")):
            ax.plot([r["nfe"] for r in rows], [r[key] for r in rows], style, color=plt.cm.tab10(i % 10), label=label)
    axes[1].axhline(floor["fd"], color="k", lw=0.8, ls=":", label="real held-out digits")
    axes[0].axhline(floor["class_accuracy"], color="k", lw=0.8, ls=":", label="real held-out digits")
    for ax, name in zip(axes, ("class accuracy (digits feature net)", "FD vs train split (digits features)")):
        ax.set(xscale="log", xlabel="NFE", ylabel=name, xticks=list(BUDGETS), xticklabels=[str(b) for b in BUDGETS])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.grid(True, which="both", alpha=0.3)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle("digits-flow (rectified, CFG) — samplers vs NFE")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=str(ROOT / "runs" / "digits-flow"))
    p.add_argument("--classifier", default=str(ROOT / "runs" / "digits-classifier"), help="'' to skip that line")
    p.add_argument("--classifier-scale", type=float, default=2.0)
    p.add_argument("--classifier-sampler", default="unipc")
    p.add_argument("--samplers", nargs="+", default=list(SAMPLERS), help="names, or name[grid], e.g. unipc[asinh]")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "digits_samplers.json"))
    args = p.parse_args()
    torch.manual_seed(0)
    run = Path(args.run)
    provenance = {"flow": ensure_run(run, ROOT / "recipes" / "digits-flow.yaml")}
    flow = load_run(run)
    settings = {k: getattr(flow.settings, k) for k in ("grid", "guidance_scale", "eta")}
    data = build_dataset(flow.recipe.data, split="train")
    score = Scorer(data.x)
    held = build_dataset(flow.recipe.data, split="test")
    floor = score(held.x, held.labels)
    lines = sampler_lines(flow, settings, args.n, score, args.samplers)
    if args.classifier:
        provenance["classifier"] = ensure_run(Path(args.classifier), ROOT / "recipes" / "digits-classifier.yaml")
        lines.update(
            guidance_lines(
                flow,
                load_run(args.classifier),
                settings,
                args.n,
                score,
                sampler=args.classifier_sampler,
                scale=args.classifier_scale,
            )
        )
    uncond = (
        {
            "uncond_lines": "null-label prediction = CFG at guidance_scale 0 (same network call per NFE as the CFG "
            "lines); + classifier: the classifier run's guidance added to it"
        }
        if args.classifier
        else {}
    )
    write_json(
        args.out,
        {
            "runs": provenance,
            "step": flow.step,
            "n": args.n,
            "settings": settings,
            **uncond,
            "real_heldout_vs_train": {**floor, "n": len(held.x)},
            "lines": lines,
        },
    )
    plot(lines, floor, Path(args.out).with_suffix(".png"))


if __name__ == "__main__":
    main()
