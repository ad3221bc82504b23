"""How much of a text-to-image run's shortfall on the GenEval-style suite is the wording: each category's accuracy
per wording of the suite (the first, second, ... wording of every spec), beside the same specs asked in the
training grammar's own first template ("a red circle", "two shapes: a circle and a square", "three red squares",
"a red circle to the left of a blue square"), the same images per prompt and seeds.

    python benchmarks/t2i_wordings.py [--runs shipped:shapes-t2i-curriculum RUN ...] [--seeds 0 1]
        [--n-per-prompt 4] [--threads 1] [--out benchmarks/results/t2i_wordings.json]

A run scoring far higher in the training wordings than in the suite's reads the scenes but not the new words;
one scoring low in both draws the scenes wrong. Position is also split by the spec's relation (each wording's
relation words: "left of", "over", "under", ...), with the share of images with both objects found whose relation
holds. Writes the JSON and a Markdown table next to it (.md).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from common import locked, previous, write_json
from genlab.atomic import atomic_write_text
from genlab.data.images import tensor_to_uint8
from genlab.data.shapes import COUNT_WORDS, RELATIONS, Scene, Shape, bare, caption
from genlab.generate import SHIPPED, text_run
from genlab.metrics.geneval import CATEGORIES, Prompt, builtin_suite, score_image

OUT = "benchmarks/results/t2i_wordings.json"


def training_wording(p: Prompt) -> Prompt:
    """The spec of `p` in the training grammar's first template (`genlab.data.shapes.caption`, template 0)."""
    shapes = tuple(Shape(o.colour, o.shape, o.size) for o in p.objects)
    if p.count is None:
        text = caption(Scene(shapes, p.relation), template=0)
    else:  # "one red square" (the one-shape template of that word), "three red squares" (a counting scene's)
        text = caption(Scene(shapes), template=3) if p.count == 1 else f"{COUNT_WORDS[p.count - 1]} {bare(shapes[0])}s"
    return replace(p, text=text)


PARTS = ("correct", "objects", "extra")


def scored(run, prompts: list[Prompt], *, n: int, seed: int) -> dict[str, np.ndarray]:
    """{'correct', 'objects', 'extra'}: (len(prompts),) the share of each prompt's n images the checker scores
    correct, with every object found, and with an object the prompt did not ask for (one sampling call, as the
    suite's own evaluation draws them)."""
    texts = [p.text for p in prompts for _ in range(n)]
    with torch.no_grad():
        images = tensor_to_uint8(run.sample(len(texts), prompts=texts, seed=seed).x)
    scores = [score_image(image, prompts[i // n]) for i, image in enumerate(images)]
    return {k: np.asarray([s[k] for s in scores], dtype=float).reshape(len(prompts), n).mean(1) for k in PARTS}


def by_relation(suite: list[Prompt], index: list[int], parts: dict[str, np.ndarray]) -> dict:
    """Position per relation of the spec and wording: accuracy, and the share of images with both objects found
    whose relation holds (objects found but misplaced say the words were not read; objects missing, not drawn)."""
    stated = {p.spec: p.relation for p in reversed(suite)}  # a spec's relation: its first wording's
    out = {}
    for rel in RELATIONS:
        rows = [i for i, p in enumerate(suite) if p.category == "position" and stated[p.spec] == rel]
        out[rel] = []
        for k in sorted({index[i] for i in rows}):
            picked = [i for i in rows if index[i] == k]
            found = float(parts["objects"][picked].mean())
            out[rel].append(
                {
                    "example": suite[picked[0]].text,
                    "accuracy": float(parts["correct"][picked].mean()),
                    "objects": found,
                    "relation_given_objects": float(parts["correct"][picked].mean()) / found if found else None,
                }
            )
    return out


def measure(run, *, n: int, seed: int) -> dict:
    suite = builtin_suite().prompts
    index, seen = [], {}
    for p in suite:  # the wording number of each prompt within its spec
        index.append(seen.get(p.spec, 0))
        seen[p.spec] = index[-1] + 1
    firsts = list({p.spec: p for p in reversed(suite)}.values())[::-1]  # each spec once, its first wording
    parts = scored(run, suite, n=n, seed=seed)
    trained = scored(run, [training_wording(p) for p in firsts], n=n, seed=seed)  # the same specs, training wording
    ours, theirs = parts["correct"], trained["correct"]
    out = {}
    for c in CATEGORIES:
        rows = [i for i, p in enumerate(suite) if p.category == c]
        wordings = []
        for k in sorted({index[i] for i in rows}):
            picked = [i for i in rows if index[i] == k]
            extra = float(parts["extra"][picked].mean())
            wordings.append({"example": suite[picked[0]].text, "accuracy": float(ours[picked].mean()), "extra": extra})
        specs = [i for i, p in enumerate(firsts) if p.category == c]
        out[c] = {
            "suite": float(ours[rows].mean()),
            "wordings": wordings,
            "training_wording": float(theirs[specs].mean()),
            "training_extra": float(trained["extra"][specs].mean()),
            "training_example": training_wording(firsts[specs[0]]).text,
        }
    out["position"]["by_relation"] = by_relation(suite, index, parts)
    out["overall"] = {k: float(np.mean([out[c][k] for c in CATEGORIES])) for k in ("suite", "training_wording")}
    return out


def markdown(result: dict) -> str:
    lines = ["# Suite wordings against the training grammar's wording (same specs, images per prompt and seeds)", ""]
    for name, by_seed in result["runs"].items():
        for seed, r in by_seed.items():
            lines += [
                f"## {name}, seed {seed}",
                "",
                "| category | suite | each suite wording (accuracy %, extra objects %) | training wording |",
            ]
            lines += ["|---|---|---|---|"]
            for c in CATEGORIES:
                each = "; ".join(f"{100 * w['accuracy']:.0f}{_extra(w)} ('{w['example']}')" for w in r[c]["wordings"])
                lines.append(
                    f"| {c} | {100 * r[c]['suite']:.1f} | {each} | {100 * r[c]['training_wording']:.1f}"
                    f"{_extra(r[c], 'training_extra')} ('{r[c]['training_example']}') |"
                )
            o = r["overall"]
            lines += [f"| overall | {100 * o['suite']:.1f} | | {100 * o['training_wording']:.1f} |", ""]
            if "by_relation" in r["position"]:
                lines += [
                    "Position by the spec's relation, per wording: accuracy % (of the images with both objects "
                    "found, the % with the relation right)",
                    "",
                    "| relation | each suite wording |",
                    "|---|---|",
                ]
                for rel, wordings in r["position"]["by_relation"].items():
                    each = "; ".join(
                        f"{100 * w['accuracy']:.0f} ({_pct(w['relation_given_objects'])}) ('{w['example']}')"
                        for w in wordings
                    )
                    lines.append(f"| {rel} | {each} |")
                lines.append("")
    return "\n".join(lines)


def _extra(row: dict, key: str = "extra") -> str:
    """ ", extra N" (% of images with an object not asked for) where the row measured it (rows since it was added)."""
    return f", extra {100 * row[key]:.0f}" if key in row else ""


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", nargs="+", default=[f"shipped:{SHIPPED}"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--n-per-prompt", type=int, default=4)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.runs:
        run = text_run(name)
        for seed in args.seeds:
            r = measure(run, n=args.n_per_prompt, seed=seed)
            o = r["overall"]
            print(
                f"{name} seed {seed}: suite {100 * o['suite']:.1f}, training wording {100 * o['training_wording']:.1f}"
            )
            with locked(args.out):  # read last, under the lock: another invocation may write meanwhile
                result = {"n_per_prompt": args.n_per_prompt, "runs": previous(args.out).get("runs", {})}
                result["runs"].setdefault(name, {})[str(seed)] = r
                path = write_json(args.out, result)
            atomic_write_text(Path(path).with_suffix(".md"), markdown(result))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
