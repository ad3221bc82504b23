"""Negative prompts on the shipped shapes checkpoint: does the named attribute's rate drop, and is the prompt kept?

    python benchmarks/negative_prompt.py [--run RUN] [--n 64] [--threads 1]
        [--out benchmarks/results/negative_prompt.json]

Every image is made twice from the same seed: plain CFG (against the null text "") and CFG against a negative
prompt, eps(neg) + s·(eps(pos) − eps(neg)), at the run's sampler, steps and guidance scale. Objects are read by the
GenEval-style detector (genlab.metrics.geneval.detect_objects). Two experiments:
  colour: prompts naming a shape only ("a shape", "a circle", ...) with negative "red" (the design of issue #14);
  size:   prompts naming colour and shape ("a red circle", ...) with negative "large" (and "small"): size is the
          attribute these prompts leave open, so it has a base rate to drop from.
Rates are over detected objects (or over images where stated); 95 % intervals are percentile bootstraps over
images (paired for differences: the same images are resampled in both arms). Writes the JSON, a Markdown table
next to it (.md) and regenerates docs/control.md (benchmarks/control_docs.py).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from common import BASE_T2I, write_json
from genlab.atomic import atomic_write_text
from genlab.data.images import tensor_to_uint8
from genlab.generate import text_run
from genlab.metrics.geneval import detect_objects

BOOTSTRAP = 2000


class Experiment(NamedTuple):
    name: str
    prompts: tuple[str, ...]
    negatives: tuple[str, ...]
    attribute: str  # "colour" or "size": the detector field the negative names


EXPERIMENTS = (
    Experiment("colour", ("a shape", "a circle", "a square", "a triangle"), ("red",), "colour"),
    Experiment(
        "size",
        ("a red circle", "a blue square", "a yellow triangle", "a green circle", "a magenta square", "a cyan triangle"),
        ("large", "small"),
        "size",
    ),
)
KINDS = ("circle", "square", "triangle")
COLOURS = ("red", "green", "blue", "yellow", "magenta", "cyan", "white", "orange")


def words(prompt: str) -> tuple[str | None, str | None]:
    """(colour, kind) a prompt names (None: not named)."""
    toks = prompt.split()
    return next((c for c in COLOURS if c in toks), None), next((k for k in KINDS if k in toks), None)


def per_image(images: torch.Tensor, prompt: str, attribute: str, value: str) -> np.ndarray:
    """(N, 5) counts per image: objects, objects with `attribute` == value, objects of the prompt's colour, of its
    kind, and 1 if exactly one object."""
    colour, kind = words(prompt)
    rows = []
    for im in tensor_to_uint8(images.clamp(-1, 1)):
        found = detect_objects(im)
        rows.append(
            (
                len(found),
                sum(getattr(d, attribute) == value for d in found),
                sum(d.colour == colour for d in found),
                sum(d.kind == kind for d in found),
                len(found) == 1,
            )
        )
    return np.array(rows, dtype=np.float64)


def ratio(counts: np.ndarray, col: int, rng: np.random.Generator, idx: np.ndarray) -> tuple[float, np.ndarray]:
    """sum(col) / sum(objects) and its bootstrap replicates over the image indices idx (B, N)."""
    num, den = counts[:, col], counts[:, 0]
    point = float(num.sum() / den.sum()) if den.sum() else float("nan")
    boot = num[idx].sum(1) / np.maximum(den[idx].sum(1), 1e-12)
    boot[den[idx].sum(1) == 0] = np.nan
    return point, boot


def image_rate(counts: np.ndarray, col: int, idx: np.ndarray) -> tuple[float, np.ndarray]:
    return float(counts[:, col].mean()), counts[:, col][idx].mean(1)


def ci(boot: np.ndarray) -> list[float]:
    return [float(np.nanquantile(boot, 0.025)), float(np.nanquantile(boot, 0.975))]


def compare(plain: np.ndarray, neg: np.ndarray, seed: int) -> dict:
    """The rates of both arms with intervals and the paired difference (negative − plain) with its interval."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(plain), size=(BOOTSTRAP, len(plain)))
    out = {}
    measures = {
        "attribute_rate": (ratio, 1),  # over detected objects
        "prompt_colour_rate": (ratio, 2),
        "prompt_kind_rate": (ratio, 3),
        "one_object_rate": (image_rate, 4),  # over images
        "any_object_rate": (image_rate, 0),
    }
    for name, (fn, col) in measures.items():
        if name == "any_object_rate":
            p, pb = float((plain[:, 0] > 0).mean()), (plain[:, 0] > 0)[idx].mean(1)
            q, qb = float((neg[:, 0] > 0).mean()), (neg[:, 0] > 0)[idx].mean(1)
        elif fn is ratio:
            (p, pb), (q, qb) = ratio(plain, col, rng, idx), ratio(neg, col, rng, idx)
        else:
            (p, pb), (q, qb) = image_rate(plain, col, idx), image_rate(neg, col, idx)
        out[name] = {
            "plain": p,
            "plain_ci": ci(pb),
            "negative": q,
            "negative_ci": ci(qb),
            "difference": q - p,
            "difference_ci": ci(qb - pb),
        }
    out["objects"] = {"plain": int(plain[:, 0].sum()), "negative": int(neg[:, 0].sum())}
    return out


def colours_found(images: torch.Tensor) -> dict[str, int]:
    counts: dict[str, int] = {}
    for im in tensor_to_uint8(images.clamp(-1, 1)):
        for d in detect_objects(im):
            counts[d.colour] = counts.get(d.colour, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def run_experiment(run, exp: Experiment, n: int, seed: int) -> dict:
    plain_images = {p: run.generate(p, n, seed=seed + i).x for i, p in enumerate(exp.prompts)}
    result = {"prompts": list(exp.prompts), "attribute": exp.attribute, "negatives": {}}
    for neg in exp.negatives:
        per_prompt, all_plain, all_neg = {}, [], []
        for i, p in enumerate(exp.prompts):
            x_neg = run.generate(p, n, seed=seed + i, negative=neg).x  # the same noise as the plain images
            a = per_image(plain_images[p], p, exp.attribute, neg)
            b = per_image(x_neg, p, exp.attribute, neg)
            all_plain.append(a)
            all_neg.append(b)
            per_prompt[p] = {
                "attribute_rate": [
                    float(a[:, 1].sum() / max(a[:, 0].sum(), 1)),
                    float(b[:, 1].sum() / max(b[:, 0].sum(), 1)),
                ],
                "objects": [int(a[:, 0].sum()), int(b[:, 0].sum())],
                "colours_found": [colours_found(plain_images[p]), colours_found(x_neg)],
            }
        pooled = compare(np.concatenate(all_plain), np.concatenate(all_neg), seed)
        if all(words(p)[0] is None for p in exp.prompts):
            del pooled["prompt_colour_rate"]  # no prompt names a colour: the measure does not apply
        result["negatives"][neg] = {"pooled": pooled, "per_prompt": per_prompt}
    return result


def pct(v: float) -> str:
    return "n/a" if v != v else f"{100 * v:.1f} %"


def markdown(result: dict) -> str:
    lines = [
        "# Negative prompts (shipped shapes checkpoint)",
        "",
        f"{result['n_per_prompt']} images per prompt and arm, same seeds in both arms; sampler {result['sampler']}, "
        f"{result['steps']} steps, guidance {result['guidance_scale']}. Rates over detected objects unless marked "
        "(images); [95 % bootstrap interval].",
        "",
        "| experiment | negative | measure | plain CFG | with negative | difference |",
        "|---|---|---|---|---|---|",
    ]
    for exp_name, exp in result["experiments"].items():
        for neg, body in exp["negatives"].items():
            for measure, m in body["pooled"].items():
                if measure == "objects":
                    continue
                label = measure.replace("_", " ") + (" (images)" if measure.endswith("object_rate") else "")
                label = label.replace("attribute", f"{exp['attribute']} = {neg!r}")
                lines.append(
                    f"| {exp_name} | {neg} | {label} | {pct(m['plain'])} | {pct(m['negative'])} | "
                    f"{100 * m['difference']:+.1f} pts [{100 * m['difference_ci'][0]:+.1f}, "
                    f"{100 * m['difference_ci'][1]:+.1f}] |"
                )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="a text-to-image run (default: shipped:shapes-t2i, see BASE_T2I)")
    ap.add_argument("--n", type=int, default=64, help="images per prompt and arm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/negative_prompt.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    run = text_run(args.run or BASE_T2I)
    settings = run.settings
    t0 = time.perf_counter()
    experiments = {e.name: run_experiment(run, e, args.n, args.seed) for e in EXPERIMENTS}
    result = {
        "run": "shipped shapes-t2i" if args.run is None else str(args.run),
        "n_per_prompt": args.n,
        "seed": args.seed,
        "sampler": settings.sampler,
        "steps": settings.steps,
        "guidance_scale": settings.guidance_scale,
        "experiments": experiments,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    out = write_json(args.out, result)
    atomic_write_text(Path(out).with_suffix(".md"), markdown(result))
    from control_docs import write_docs

    write_docs()


if __name__ == "__main__":
    main()
