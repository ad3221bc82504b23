"""The GenEval-style shapes suite on a text-to-image run (default: the package's default checkpoint, its recipe's
sampler, steps, guidance and best of K), beside the real-render ceiling and the shuffled-caption chance row.

    python benchmarks/geneval_shapes.py [--run RUN] [--n-per-prompt 4] [--best-of K] [--threads 1]
        [--out benchmarks/results/geneval_shapes.json] [--docs docs/geneval.md] [--docs-only]

Writes the JSON, a Markdown table next to it (.md) and docs/geneval.md (every number from the JSON).
Equivalent to `genlab eval RUN --prompts builtin --n-per-prompt N [--best-of K]`, plus the machine and wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from common import write_json
from genlab.atomic import atomic_write_text
from genlab.evaluate import latent_roundtrip
from genlab.generate import SHIPPED, text_run
from genlab.metrics.geneval import CATEGORIES, builtin_suite, geneval, json_safe, markdown
from genlab.rerank import best_of, resolve_best_of

CATEGORY_TEXT = {
    "single_object": "one shape of a given kind, any colour (sizes stated in 2 of 3 specs)",
    "two_objects": "two shapes of different kinds, any colours (sizes stated in 2 of 3 specs)",
    "counting": "exactly 1–4 copies of one coloured shape, counts as digits and as words",
    "colours": "one shape in a named colour (all 24 colour×shape pairs)",
    "position": "A left of / right of / above / below B, also stated the other way round (B right of A)",
    "colour_attribution": "two shapes in two colours, not swapped; both word orders",
}


def examples() -> dict[str, list[str]]:
    """The wordings of the first spec of each category."""
    out: dict[str, list[str]] = {}
    suite = builtin_suite()
    for cat in CATEGORIES:
        first = next(p.spec for p in suite.prompts if p.category == cat)
        out[cat] = [p.text for p in suite.prompts if p.spec == first]
    return out


def reading(model: dict, auto: dict | None = None) -> list[str]:
    """Sentences that read the model row and the autoencoder's ceiling (every number from them)."""
    cat = model["categories"]
    pos = cat["position"]
    given = pos["relation"] / pos["objects"] if pos["objects"] else float("nan")
    ceiling = (
        []
        if auto is None
        else [
            f"- The autoencoder alone keeps {100 * auto['overall']:.1f} % of the real renders right (counting "
            f"{100 * auto['categories']['counting']['accuracy']:.1f} %, position "
            f"{100 * auto['categories']['position']['accuracy']:.1f} %): the most this model could score."
        ]
    )
    return [
        *ceiling,
        f"- Held-out pairs vs seen pairs: {100 * model['heldout_gap']:+.1f} points (seen minus held-out).",
        f"- position: both objects right in {100 * pos['objects']:.1f} % of images; the relation held in "
        f"{100 * given:.1f} % of those (a random placement: 25 %, one of four directions).",
        f"- two_objects: at least two objects of any shape in {100 * cat['two_objects']['colour']:.1f} % of images "
        "(the 'colour' part of a prompt that states no colour asks only for the objects).",
        f"- colour_attribution: both colours present in {100 * cat['colour_attribution']['colour']:.1f} % of "
        f"images, both shapes in {100 * cat['colour_attribution']['shape']:.1f} %, bound right in "
        f"{100 * cat['colour_attribution']['objects']:.1f} %.",
        f"- Images with an object the prompt did not ask for: {100 * model['extra_rate']:.1f} %.",
    ]


def autoencoder_lines(path: Path = Path("benchmarks/results/t2i_autoencoder.json")) -> list[str]:
    """A paragraph on the decoder's ceiling from benchmarks/t2i_autoencoder.py's JSON (nothing if it is not there)."""
    if not path.is_file():
        return []
    arms = json.loads(path.read_text())["arms"]
    if not {"recipe", "full-long"} <= set(arms):
        return []

    def pct(arm: str) -> str:
        return " / ".join(f"{100 * arms[arm][f'seed{s}']['overall']:.1f} %" for s in (0, 1))

    return [
        "",
        f"`benchmarks/t2i_autoencoder.py` measures that ceiling for several autoencoders (`{path.name}`, `.md`; "
        "two seed sets of layouts). `recipes/shapes-autoencoder.yaml` as it is (700 steps) keeps "
        f"{pct('recipe')} (PSNR {arms['recipe']['psnr_test']:.1f} dB on test images); the same 4x8x8 "
        f"autoencoder trained 2,100 steps on the full caption grammar keeps {pct('full-long')} "
        f"(PSNR {arms['full-long']['psnr_test']:.1f} dB).",
    ]


def interval(settings: dict) -> str:
    """' for t in [lo, hi]' when guidance was limited to an interval of times, else ''."""
    lo, hi = settings.get("guidance_interval", (0.0, 1.0))
    return "" if (lo, hi) == (0.0, 1.0) else f" for t in [{lo:g}, {hi:g}] (t = 1 is noise)"


def searched(settings: dict) -> str:
    """', each image the best of K draws ...' when the images were searched (genlab.rerank), else ''."""
    k = settings.get("best_of", 1)
    return "" if k == 1 else f", each image the best of {k} draws as the model judges them (`genlab.rerank`)"


def docs(result: dict, json_path: str) -> str:
    report = result["report"]
    s, suite = result["settings"], report["suite"]
    model = report["rows"]["model"]
    lines = [
        "# GenEval-style prompt suite for shapes",
        "",
        f"Generated by `benchmarks/geneval_shapes.py` from `{json_path}` ({result['threads']} thread(s), "
        f"{result['machine']['date']}, load average {result['load_average']} at the start, "
        f"{result['seconds']:.0f} s in all).",
        "",
        "`genlab eval RUN --prompts builtin [--n-per-prompt 4]` (or `--prompts FILE`) samples every prompt of the "
        "suite N times with the run's sample settings (`--sampler`, `--steps`, `--guidance-scale`, `--best-of` "
        "override them), scores the images with the procedural shapes checker and writes `geneval.json` and "
        "`geneval.md` into `RUN/eval` (`--out DIR`; `./eval` when no RUN is given and the default shipped checkpoint "
        "is used). "
        "Python: `genlab.evaluate.evaluate_geneval(run, prompts='builtin', n_per_prompt=4)`; the pieces are in "
        "`genlab.metrics.geneval` (`builtin_suite`, `load_suite`, `score_image`, `geneval`).",
        "",
        "## The suite",
        "",
        f"{suite['prompts']} prompts = {suite['specs']} specs, each asked in 3–4 wordings that are not the training "
        "captions' templates (no builtin prompt parses with `genlab.data.shapes.parse_caption`): paraphrases, "
        "both word orders, 'left of' / 'on the left side of' / 'to the left of', 'over' / 'on top of' / 'under' / "
        "'beneath', articles dropped, counts as digits and as words. Specs holding a held-out colour×shape pair "
        "(green triangle, yellow circle, magenta square, cyan triangle: never in the training split) are scored "
        "apart as 'held-out pairs'; 'seen pairs' are the other specs whose colours are all stated.",
        "",
        "| category | prompts | what | wordings of the first spec |",
        "|---|---|---|---|",
    ]
    for cat, words in result["examples"].items():
        n = suite["prompts_per_category"][cat]
        lines.append(f"| {cat} | {n} | {CATEGORY_TEXT[cat]} | {' / '.join(repr(w) for w in words)} |")
    lines += [
        "",
        "## Scoring",
        "",
        "Objects are found as in `genlab.metrics.t2i`: each pixel takes the nearest of black and the 8 named "
        "colours; 8-connected components of one colour are objects; the kind follows the fill ratio of the "
        "bounding box, the size its longer side, the position its centre. An image is correct when every spec "
        "object matches its own detected object (colour when stated, shape, size when stated), a counting spec "
        "finds exactly `count` matching objects, and a position spec's relation holds on the dominant axis of "
        "the displacement between the two objects' centres (the rule the shapes layout uses). Objects the spec "
        "does not ask for do not fail an image (as in GenEval); they count in the 'extra object' rate. "
        "Accuracy per category is the mean over its images, with a 95 % percentile bootstrap interval that "
        "resamples specs (1000 draws; the wordings and images of one spec are not independent). Overall = the "
        "mean of the category accuracies, as GenEval reports it. Rows: the model; the specs rendered by the "
        "shapes renderer and scored by the same checker (the ceiling: 100 % by construction, a test asserts "
        "it); for a latent model, the same renders through its autoencoder (encode, decode) and scored again: "
        "the most a model drawing in that latent space can reach; the same renders scored against a shuffled "
        "prompt of another spec (chance).",
        *autoencoder_lines(),
        "",
        "## The default checkpoint",
        "",
        f"Run `{s['run']}` (recipe {s['recipe']}, step {s['step']}), sampler {s['sampler']}, {s['steps']} steps, "
        f"guidance scale {s['guidance_scale']}{interval(s)}{searched(s)} (the recipe's defaults), "
        f"{suite['n_per_prompt']} images per prompt, seed {suite['seed']}; generating took "
        f"{model['generate_seconds']:.0f} s.",
        "",
        *markdown(report, title="").splitlines()[2:],
        "",
        *reading(model, report["rows"].get("autoencoder")),
        "",
        "## Your own prompts",
        "",
        "`--prompts FILE`: JSON lines, one prompt per line:",
        "",
        "```",
        '{"prompt": "2 red squares", "category": "counting", "objects": [{"colour": "red", "shape": "square"}], '
        '"count": 2}',
        '{"prompt": "blue circle left of a green square", "category": "position", "objects": [{"colour": "blue", '
        '"shape": "circle"}, {"colour": "green", "shape": "square"}], "relation": "left of"}',
        '{"prompt": "a large triangle", "category": "single_object", "objects": [{"shape": "triangle", '
        '"size": "large"}], "spec": "big triangle"}',
        "```",
        "",
        "- `prompt`: the text given to the model; `category`: any name (the builtin ones: "
        + ", ".join(CATEGORIES)
        + ").",
        "- `objects`: 1–4 objects `{shape, colour?, size?}`: shape circle/square/triangle, colour one of the 8 "
        "named colours (omitted: any), size small/large (omitted: any).",
        "- `count` (optional, 1–4): exactly that many copies of the one object; `relation` (optional): "
        "`left of`, `right of`, `above` or `below`, of objects[0] to objects[1] (exactly two objects).",
        "- `spec` (optional): prompts with the same spec are wordings of one scene (they are resampled together "
        "for the interval); default: each line is its own spec.",
        "",
        "A bad file stops before the model loads with one line naming the line and the fix (exit status 2).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="text-to-image run folder (default: the package's default, genlab.generate.SHIPPED)")
    ap.add_argument("--n-per-prompt", type=int, default=4)
    ap.add_argument("--best-of", type=int, help="each image the best of K draws (default: the run's sample.best_of)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/geneval_shapes.json")
    ap.add_argument("--docs", default="docs/geneval.md")
    ap.add_argument("--docs-only", action="store_true", help="rewrite the .md files from an existing --out JSON")
    args = ap.parse_args()
    out = Path(args.out)
    if not args.docs_only:
        torch.set_num_threads(args.threads)
        load = round(os.getloadavg()[0], 2)
        start = time.perf_counter()
        run = text_run(args.run)  # None: the default shipped checkpoint
        settings = run.resolve_settings()
        k = resolve_best_of(run, args.best_of)

        def generate(texts: list[str], seed: int) -> torch.Tensor:
            return best_of(run, texts, k=k, seed=seed, settings=settings).x  # k = 1: one draw (run.sample)

        report = geneval(
            generate,
            builtin_suite(),
            n_per_prompt=args.n_per_prompt,
            seed=args.seed,
            reconstruct=latent_roundtrip(run.method),
        )
        shown = str(run.path.relative_to(Path.cwd())) if run.path.is_relative_to(Path.cwd()) else str(run.path)
        result = {
            "settings": {
                "run": shown if args.run else f"shipped:{SHIPPED} (the default)",
                "recipe": run.recipe.name,
                "step": run.step,
                **settings.as_dict(run.method.sample_settings),
                "best_of": k,
            },
            "threads": args.threads,
            "load_average": load,
            "seconds": round(time.perf_counter() - start, 1),
            "note": "CPU machine shared with other engineers",
            "examples": examples(),
            "report": report,
        }
        write_json(out, json_safe(result))
    result = json.loads(out.read_text())
    atomic_write_text(out.with_suffix(".md"), markdown(result["report"]))
    atomic_write_text(args.docs, docs(result, str(out)))
    print(f"wrote {out.with_suffix('.md')} and {args.docs}")


if __name__ == "__main__":
    main()
