"""docs/control.md from the results JSONs of benchmarks/negative_prompt.py and benchmarks/ganspace.py.

python benchmarks/control_docs.py    (both benchmark scripts call it at their end)
"""

from __future__ import annotations

import json
from pathlib import Path

from genlab.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs" / "control.md"


def write_docs() -> Path:
    parts = ["# Control: negative prompts and GANSpace directions", ""]
    neg, gs = RESULTS / "negative_prompt.json", RESULTS / "ganspace.json"
    parts += negative_section(json.loads(neg.read_text())) if neg.is_file() else ["(negative_prompt.json missing)", ""]
    parts += ganspace_section(json.loads(gs.read_text())) if gs.is_file() else ["(ganspace.json missing)", ""]
    atomic_write_text(DOCS, "\n".join(parts))
    print(f"wrote {DOCS}")
    return DOCS


def pct(v) -> str:
    return "n/a" if v is None or v != v else f"{100 * v:.1f} %"


def pts(m: dict) -> str:
    lo, hi = m["difference_ci"]
    return f"{100 * m['difference']:+.1f} pts [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def arm(m: dict, which: str) -> str:
    lo, hi = m[f"{which}_ci"]
    return f"{pct(m[which])} [{pct(lo)}, {pct(hi)}]"


MEASURES = {
    "attribute_rate": "objects with the negative's {attribute} ({neg!r})",
    "prompt_colour_rate": "objects in the prompt's colour",
    "prompt_kind_rate": "objects of the prompt's shape",
    "one_object_rate": "images with exactly one object",
    "any_object_rate": "images with any object",
}


def negative_section(r: dict) -> list[str]:
    lines = [
        "## Negative prompts",
        "",
        "`genlab generate PROMPT --negative TEXT` (Python: `generate(prompt, negative=...)`, `run.sample(n, "
        "prompts=..., negative=str | list)`) guides against the negative prompt's prediction instead of the null "
        "text: eps = eps(neg) + s·(eps(pos) − eps(neg)), in the same one batched call per step, so it works with "
        'every sampler; a negative "" is exactly plain CFG (tested bit for bit). It needs guidance_scale > 1.',
        "",
        f"Measured by `benchmarks/negative_prompt.py` on the shipped checkpoint ({r['run']}): "
        f"{r['n_per_prompt']} images per prompt and arm, the same seeds with and without the negative, sampler "
        f"{r['sampler']}, {r['steps']} steps, guidance {r['guidance_scale']}; objects read by the GenEval-style "
        "detector; [95 % bootstrap intervals over images, paired for the difference]; "
        f"{r['seconds']} s on one core.",
        "",
    ]
    for name, exp in r["experiments"].items():
        prompts = ", ".join(f'"{p}"' for p in exp["prompts"])
        lines += [f"### {name}: prompts {prompts}", ""]
        for neg, body in exp["negatives"].items():
            pooled = body["pooled"]
            lines += [
                f"Negative **{neg!r}** ({pooled['objects']['plain']} objects detected without it, "
                f"{pooled['objects']['negative']} with it):",
                "",
                "| measure | plain CFG | with negative | difference |",
                "|---|---|---|---|",
            ]
            for key, label in MEASURES.items():
                if key not in pooled:
                    continue
                m = pooled[key]
                label = label.format(attribute=exp["attribute"], neg=neg)
                lines.append(f"| {label} | {arm(m, 'plain')} | {arm(m, 'negative')} | {pts(m)} |")
            lines.append("")
            if name == "colour":
                found = []
                for p, row in body["per_prompt"].items():
                    top = list(row["colours_found"][1].items())[:2]
                    got = ", ".join(f"{c} {k}" for c, k in top) or "none"
                    found.append(f'"{p}": {row["objects"][0]} → {row["objects"][1]} objects ({got})')
                lines += [
                    "Objects found per prompt, plain → with negative (commonest colours with it): "
                    + "; ".join(found)
                    + ".",
                    "",
                ]
        lines += reading(name, exp)
    return lines


def reading(name: str, exp: dict) -> list[str]:
    """Sentences that read the pooled numbers (no number typed by hand)."""
    out = []
    for neg, body in exp["negatives"].items():
        p = body["pooled"]
        a, c, k = p["attribute_rate"], p.get("prompt_colour_rate"), p["prompt_kind_rate"]
        if name == "colour":
            out.append(
                f"- colour / {neg!r}: without the negative the detector finds objects in "
                f"{pct(p['any_object_rate']['plain'])} of images (the model draws little for a prompt without a "
                f"colour: every training caption names one); with it, in {pct(p['any_object_rate']['negative'])}. "
                f"The {neg} rate among objects goes {pct(a['plain'])} → {pct(a['negative'])}, the prompt's shape "
                f"{pct(k['plain'])} → {pct(k['negative'])}."
                + (
                    f" There is no {neg} to remove on this checkpoint: a shape-only prompt does not produce the "
                    "colour in the first place, so this design cannot show a drop; the negative instead pushes the "
                    "images away from it (the commonest colours with it are listed above). The size experiment "
                    "below is the measurement of a drop."
                    if a["plain"] == 0
                    else ""
                )
            )
        else:
            out.append(
                f"- size / {neg!r}: the {neg} rate among objects goes {pct(a['plain'])} → {pct(a['negative'])} "
                f"({pts(a)}); the prompt's colour {pct(c['plain'])} → {pct(c['negative'])} ({pts(c)}) and shape "
                f"{pct(k['plain'])} → {pct(k['negative'])} ({pts(k)})."
            )
    return [*out, ""]


def image_link(image: str) -> str:
    """The picture's path as docs/control.md links it."""
    return str(Path(image).relative_to("docs")) if image.startswith("docs/") else image


def ganspace_section(r: dict) -> list[str]:
    trained = (
        f"{r['steps']} steps (the recipe's own {r['recipe_steps']})"
        if r["steps"] == r["recipe_steps"]
        else f"{r['steps']} steps (fewer than the recipe's {r['recipe_steps']}, to fit the time budget)"
    )
    lines = [
        "## GANSpace: `genlab directions RUN`",
        "",
        "PCA of the StyleGAN-style generator's w-space (Härkönen et al. 2020): w = M(z, y) for many z (labels "
        "cycled), eigenvectors v_k of their covariance, edits w + t·σ_k·v_k rendered by the synthesis network. "
        "`genlab directions RUN [--components K] [--sigma S] [--points P] -o grid.png` writes the grid (row k = "
        "direction k, t from −S to +S) and grid.json naming each direction by what it changes as measured over "
        "many base points: ink mass (stroke-width proxy), slant (shear of the ink), and the class the digits "
        "classifier predicts. Python: `genlab.directions.write_directions` / `principal_directions`. Runs need a "
        "mapping network (model.kind stylegan); a DCGAN or any other method is refused with a one-line error.",
        "",
        f"Measured by `benchmarks/ganspace.py`: recipes/{r['recipe']} trained for {trained} in "
        f"{r['train_seconds']} s on one core; PCA of {r['samples']} w samples (w_dim {r['w_dim']}), "
        f"{r['bases']} base points moved to t = ±{r['sigma_range'][1]}. Effects: change from −t to +t in units of "
        "the measure's spread over the base points. Naming rule: " + r["naming"] + ".",
        "",
        f"![GANSpace directions]({image_link(r['image'])})",
        "",
        "| direction | variance explained | named | ink effect | slant effect | class changes | base-class p drop |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in r["directions"]:
        lines.append(
            f"| PC{d['component']} | {pct(d['variance_explained'])} | {d['name']} | {d['ink_effect']:+.2f} | "
            f"{d['slant_effect']:+.2f} | {pct(d['class_change_rate'])} | {pct(d['base_class_prob_drop'])} |"
        )
    for d in r["random_directions"]:
        lines.append(
            f"| random {d['component']} (σ of PC{d['component']}) | – | {d['name']} | {d['ink_effect']:+.2f} | "
            f"{d['slant_effect']:+.2f} | {pct(d['class_change_rate'])} | {pct(d['base_class_prob_drop'])} |"
        )
    return [*lines, "", *ganspace_reading(r), ""]


def ganspace_reading(r: dict) -> list[str]:
    """Sentences that compare the PCA directions with random ones of the same size (numbers from the JSON)."""
    pcs, rnd = r["directions"], r["random_directions"]

    def classy(ds):
        return sum(d["class_change_rate"] is not None and d["class_change_rate"] >= 0.5 for d in ds)

    top_slant = max(pcs, key=lambda d: abs(d["slant_effect"]))
    top_ink = max(pcs, key=lambda d: abs(d["ink_effect"]))
    rnd_slant, rnd_ink = max(abs(d["slant_effect"]) for d in rnd), max(abs(d["ink_effect"]) for d in rnd)
    return [
        f"- The run is class-conditional and w = M(z, y) carries the class, so the top directions of w move between "
        f"classes: {classy(pcs)} of the top {len(pcs)} change the predicted class of at least half the base points, "
        f"against {classy(rnd)} of {len(rnd)} random directions of the same σ_k (class changes "
        f"{pct(min(d['class_change_rate'] for d in rnd))}–{pct(max(d['class_change_rate'] for d in rnd))} along "
        "random ones).",
        f"- Slant: PC{top_slant['component']} shifts it by {top_slant['slant_effect']:+.2f} spreads from −t to +t, "
        f"against at most {rnd_slant:.2f} along random directions"
        + (" (a direction of slant the PCA finds)." if abs(top_slant["slant_effect"]) > 2 * rnd_slant else "."),
        f"- Ink mass (stroke width): largest PC effect {top_ink['ink_effect']:+.2f} (PC{top_ink['component']}), "
        f"random directions up to {rnd_ink:.2f}"
        + (
            ": random directions move it as much, so ink is not special to the principal directions on this run."
            if rnd_ink >= 0.8 * abs(top_ink["ink_effect"])
            else "."
        ),
    ]


def main() -> None:
    write_docs()


if __name__ == "__main__":
    main()
