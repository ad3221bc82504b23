"""What each change to the text-to-image recipe buys on the GenEval-style suite, at the same budget and settings.

    python benchmarks/t2i_ablation.py [--arms shipped full] [--n-per-prompt 4] [--threads 1] [--reuse]
        [--out benchmarks/results/t2i_ablation.json]

Every arm is recipes/shapes-t2i.yaml (same steps, batch, learning rate and sampler) with the overrides listed in
ARMS, trained by steps (no time limit, so a busy machine changes the wall time and nothing else) on the autoencoder of
recipes/shapes-autoencoder.yaml, then scored by `genlab.metrics.geneval` with the same seeds. The arm `shipped` is the
checkpoint in the package (the recipe as it was, basic caption grammar), scored, not retrained.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from common import write_json
from genlab.atomic import atomic_write_text
from genlab.config import load_recipe
from genlab.generate import shipped_run
from genlab.metrics.geneval import CATEGORIES, builtin_suite, geneval
from genlab.runs import load_run
from genlab.train import train

ROOT = Path(__file__).resolve().parents[1]
ARMS = {  # name: (recipe overrides, what changes)
    "shipped": (None, "the packaged checkpoint: basic caption grammar (1–2 shapes, relations one way)"),
    "basic": ([], "retrained here: basic caption grammar"),
    "full": (
        ["--data.grammar=full"],
        "full caption grammar: counting scenes, pairs stated in either order, colours sometimes unstated",
    ),
    "full-mmdit": (
        ["--data.grammar=full", "--model.text_mode=mmdit"],
        "full grammar + MM-DiT (joint attention over image and text tokens) in place of cross-attention",
    ),
}


def arm_run(name: str, base: Path, *, reuse: bool):
    overrides, _ = ARMS[name]
    if overrides is None:
        return load_run(shipped_run()), None
    run_dir = base / name
    wall = None
    if not (reuse and (run_dir / "checkpoint").is_dir()):
        ae = base / "shapes-autoencoder"
        if not (ae / "checkpoint").is_dir():
            train(load_recipe(ROOT / "recipes/shapes-autoencoder.yaml", ["--train.time_limit_minutes=0"]), ae)
        recipe = load_recipe(
            ROOT / "recipes/shapes-t2i.yaml",
            [*overrides, f"--method.autoencoder={ae}", "--train.time_limit_minutes=0"],
        )
        start = time.perf_counter()
        train(recipe, run_dir, progress=False)
        wall = round((time.perf_counter() - start) / 60, 1)
        atomic_write_text(run_dir / "bench.json", json.dumps({"minutes": wall}))
    elif (run_dir / "bench.json").is_file():
        wall = json.loads((run_dir / "bench.json").read_text())["minutes"]
    return load_run(run_dir), wall


def markdown(result: dict) -> str:
    lines = [
        "| arm | change | step | overall | " + " | ".join(CATEGORIES) + " | held-out gap | extra object |",
        "|---|---|---|---|" + "---|" * len(CATEGORIES) + "---|---|",
    ]
    for name, r in result["arms"].items():
        g = r["geneval"]
        lo, hi = g["overall_ci95"]
        cats = " | ".join(f"{100 * g['categories'][c]['accuracy']:.1f}" for c in CATEGORIES)
        lines.append(
            f"| {name} | {r['change']} | {r['step']} | {100 * g['overall']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}] | "
            f"{cats} | {100 * g['heldout_gap']:+.1f} | {100 * g['extra_rate']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arms", nargs="+", default=["shipped", "full"], choices=list(ARMS))
    ap.add_argument("--n-per-prompt", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", default="runs/bench-t2i-ablation")
    ap.add_argument("--reuse", action="store_true", help="score the runs already there instead of training")
    ap.add_argument("--out", default="benchmarks/results/t2i_ablation.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    suite = builtin_suite()
    arms = {}
    for name in args.arms:
        run, minutes = arm_run(name, Path(args.runs), reuse=args.reuse)

        def generate(texts, seed, run=run):
            return run.sample(len(texts), prompts=texts, seed=seed).x

        report = geneval(generate, suite, n_per_prompt=args.n_per_prompt, seed=0)
        arms[name] = {
            "change": ARMS[name][1],
            "step": run.step,
            "train_minutes": minutes,
            "settings": run.settings.as_dict(run.method.sample_settings),
            "geneval": report["rows"]["model"],
        }
        print(name, f"overall {100 * arms[name]['geneval']['overall']:.1f}")
    result = {"suite": report["suite"], "threads": args.threads, "arms": arms}
    write_json(args.out, result)
    md = Path(args.out).with_suffix(".md")
    atomic_write_text(md, markdown(result))
    print(f"wrote {md}")


if __name__ == "__main__":
    main()
