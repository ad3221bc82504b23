"""How much of the GenEval-style suite survives the text-to-image model's autoencoder: the ceiling of a latent model.

    python benchmarks/t2i_autoencoder.py [--arms shipped full full-8ch] [--threads 2] [--reuse]
        [--out benchmarks/results/t2i_autoencoder.json]

A latent text-to-image model can only draw what its decoder can: every prompt of the suite is rendered by the shapes
renderer (the real-render row, 100 % by construction), passed through encode -> decode, and scored by the same
procedural checker. Two seed sets (0 = the suite's own, 1 = a second set of layouts), 4 renders per prompt each;
reconstruction PSNR on the 'test' split of the full caption grammar (500 images, counting scenes included).

Arms: `shipped` is the autoencoder inside the packaged checkpoint (recipes/shapes-autoencoder.yaml as it was); the
others retrain recipes/shapes-autoencoder.yaml here with the overrides in ARMS (by steps, no time limit).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from common import BASE_T2I, previous, train_or_reuse, write_json
from genlab.atomic import atomic_write_text
from genlab.config import load_recipe
from genlab.data.shapes import sample_pairs
from genlab.evaluate import latent_roundtrip
from genlab.metrics.geneval import CATEGORIES, builtin_suite, render_prompts, score_images
from genlab.metrics.image import psnr
from genlab.runs import load_run

ROOT = Path(__file__).resolve().parents[1]
ARMS = {  # name: (recipe overrides, what changes)
    "shipped": (None, "the autoencoder in the packaged checkpoint (basic grammar data, 4x8x8, 700 steps)"),
    "recipe": ([], "recipes/shapes-autoencoder.yaml as it is, retrained here (the autoencoder of t2i_ablation.py)"),
    "full": (["--data.grammar=full"], "trained on the full grammar (counting scenes of 3-4 small shapes)"),
    "full-8ch": (
        ["--data.grammar=full", "--model.latent_channels=8"],
        "full grammar, 8 latent channels (8x8x8)",
    ),
    "full-long": (["--data.grammar=full", "--train.steps=2100"], "full grammar, 3x the steps"),
    "full-8ch-long": (
        ["--data.grammar=full", "--model.latent_channels=8", "--train.steps=2100"],
        "full grammar, 8 latent channels, 3x the steps",
    ),
    "full-16px-long": (
        ["--data.grammar=full", "--model.channels=[16,32]", "--train.steps=2100"],
        "full grammar, one downsampling: 4x16x16 latents (widths 16-32), 3x the steps",
    ),
}


def autoencoder(name: str, base: Path, *, reuse: bool):
    """(encode -> decode, the latent shape, training seconds or None) of an arm: the shipped text-to-image run's
    autoencoder, or an autoencoder run trained here."""
    overrides, _ = ARMS[name]
    if overrides is None:
        method = load_run(BASE_T2I).method
        return latent_roundtrip(method), method.autoencoder.cfg.latent_shape(), None
    recipe = load_recipe(ROOT / "recipes/shapes-autoencoder.yaml", [*overrides, "--train.time_limit_minutes=0"])
    run, wall = train_or_reuse(recipe, base / name, reuse=reuse and (base / name / "checkpoint").is_dir())
    return latent_roundtrip(run.method), run.method.latent_shape, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arms", nargs="*", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", default="runs/bench-t2i-autoencoder")
    ap.add_argument("--reuse", action="store_true", help="score the runs already there instead of training")
    ap.add_argument("--out", default="benchmarks/results/t2i_autoencoder.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    suite = builtin_suite()
    prompts = [p for p in suite.prompts for _ in range(4)]
    test, _, _ = sample_pairs(500, split="test", grammar="full")
    arms = {}
    for name in args.arms:
        roundtrip, shape, wall = autoencoder(name, Path(args.runs), reuse=args.reuse)
        start = time.perf_counter()
        row = {"change": ARMS[name][1], "train_seconds": wall, "latent_shape": list(shape)}
        row["psnr_test"] = round(float(psnr(roundtrip(test), test).mean()), 2)
        for seed in (0, 1):
            real = render_prompts(prompts, seed=seed)
            row[f"seed{seed}"] = score_images(roundtrip(real), prompts, seed=seed)
        row["score_seconds"] = round(time.perf_counter() - start, 1)
        arms[name] = row
        print(name, row["psnr_test"], *(round(100 * row[f"seed{s}"]["overall"], 1) for s in (0, 1)), flush=True)
    merged = {**previous(args.out).get("arms", {}), **arms}
    result = {"threads": args.threads, "arms": {k: merged[k] for k in sorted(merged, key=list(ARMS).index)}}
    write_json(args.out, result)
    atomic_write_text(Path(args.out).with_suffix(".md"), markdown(result))


def markdown(result: dict) -> str:
    head = "| autoencoder | change | latent | PSNR (test) | seed | overall | " + " | ".join(CATEGORIES) + " |"
    lines = [head, "|---|---|---|---|---|---|" + "---|" * len(CATEGORIES)]
    for name, r in result["arms"].items():
        for seed in (0, 1):
            g = r[f"seed{seed}"]
            lo, hi = g["overall_ci95"]
            cats = " | ".join(f"{100 * g['categories'][c]['accuracy']:.1f}" for c in CATEGORIES)
            shape = "x".join(map(str, r["latent_shape"]))
            lines.append(
                f"| {name} | {r['change']} | {shape} | {r['psnr_test']:.2f} | {seed} | {100 * g['overall']:.1f} "
                f"[{100 * lo:.1f}, {100 * hi:.1f}] | {cats} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
