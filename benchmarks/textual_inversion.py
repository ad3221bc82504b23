"""Textual inversion on the shipped shapes checkpoint: is the learned word's concept drawn, alone and inside prompts?

    python benchmarks/textual_inversion.py [--run RUN] [--steps 300] [--tries 3] [--n 48] [--threads 1]
        [--out benchmarks/results/textual_inversion.json]

The concept is a small orange triangle: the model draws it from the three words "a small orange triangle", but
no single word names it (size, colour and kind are separate words of the caption grammar), so a learned token
has to fold three attributes into one input embedding. Four renders of it (genlab.data.shapes, random places)
are the only training images; `genlab.textual_inversion.learn` fits one MiniLM input embedding for "<c>" (init
"shape") with the run frozen, --tries times (each try its own four renders and seed: textual inversion varies from
one learning to the next). Then, at the run's sampler, steps and guidance, n images per prompt (seed fixed):
  concept rate: images holding a small orange triangle (genlab.metrics.geneval.detect_objects), for "<c>" and
      "a <c>", for the plain words, for "a shape" (the init word), and over images of eight ordinary prompts
      (the base rate);
  the rest of the prompt: "<c> to the left of a red square" and other contexts against the same contexts with the
      plain words: the concept present, the other object present, both, and the relation held.
Rates carry 95 % Wilson intervals over images (learned-token rates: each try's, and their mean). The flow loss
of the init word, the learned token and the plain words on the concept images is measured on the same fixed draws.
Writes the JSON, docs/images/textual_inversion.png and docs/textual_inversion.md (from the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from common import BASE_T2I, wilson, write_json
from genlab.atomic import atomic_path, atomic_write_text
from genlab.data.images import save_grid, tensor_to_uint8
from genlab.data.shapes import Scene, Shape, render
from genlab.generate import generate, text_run
from genlab.methods.latent import DEFAULT_PROMPTS
from genlab.metrics.geneval import ObjectSpec, Prompt, detect_objects, score_image
from genlab.textual_inversion import Concept, concept_loss, learn, word_concept

ROOT = Path(__file__).resolve().parents[1]
CONCEPT = ObjectSpec("triangle", "orange", "small")
WORDS = "a small orange triangle"
TOKEN = "<c>"
N_IMAGES = 4
CONTEXTS = (  # (rest of the prompt after the concept, the other object, the relation of the concept to it)
    ("to the left of a red square", ObjectSpec("square", "red"), "left of"),
    ("above a blue circle", ObjectSpec("circle", "blue"), "above"),
    ("and a white square", ObjectSpec("square", "white"), None),
)


def render_seeds(seed: int) -> list[int]:
    return [1000 + 10 * seed + i for i in range(N_IMAGES)]


def concept_images(seed: int) -> torch.Tensor:
    """N_IMAGES renders (N, 3, 32, 32) in [-1, 1] of the concept at random places (a set per seed)."""
    scene = Scene((Shape(CONCEPT.colour, CONCEPT.shape, CONCEPT.size),))
    return torch.stack([render(scene, seed=s) for s in render_seeds(seed)])


def rate(flags: list[bool]) -> dict:
    k = int(sum(flags))
    return {"rate": round(k / len(flags), 4), "ci": wilson(k, len(flags)), "n": len(flags)}


def has(spec: ObjectSpec, found) -> bool:
    return any(
        d.kind == spec.shape and (spec.colour is None or d.colour == spec.colour) and (spec.size in (None, d.size))
        for d in found
    )


def images_for(run, prompt: str, n: int, seed: int, concept: Concept | None) -> torch.Tensor:
    concepts = None if concept is None else [concept]
    return generate(prompt, n=n, seed=seed, run=run, embeddings=concepts, best_of=1).x  # one draw, as measured


def concept_row(images: torch.Tensor) -> dict:
    found = [detect_objects(im) for im in tensor_to_uint8(images)]
    return {
        "concept": rate([has(CONCEPT, f) for f in found]),
        "orange_triangle_any_size": rate([has(ObjectSpec("triangle", "orange"), f) for f in found]),
        "objects_per_image": round(sum(map(len, found)) / len(found), 3),
    }


def context_row(images: torch.Tensor, prompt: str, other: ObjectSpec, relation: str | None) -> dict:
    arrays = tensor_to_uint8(images)
    found = [detect_objects(im) for im in arrays]
    spec = Prompt(prompt, "position" if relation else "two_objects", (CONCEPT, other), relation=relation)
    scores = [score_image(im, spec) for im in arrays]
    row = {
        "concept": rate([has(CONCEPT, f) for f in found]),
        "other_object": rate([has(other, f) for f in found]),
        "both": rate([s["objects"] for s in scores]),
    }
    if relation:
        row["relation"] = rate([bool(s["relation"]) for s in scores])
    return row


def pct(m: dict) -> str:
    lo, hi = m["ci"]
    return f"{100 * m['rate']:.0f} % [{100 * lo:.0f}, {100 * hi:.0f}]"


def per_seed(rows: list[dict], key: str) -> str:
    rates = [r[key]["rate"] for r in rows]
    return f"**{100 * sum(rates) / len(rates):.0f} %** ({' / '.join(f'{100 * v:.0f}' for v in rates)})"


def mean_rate(rows: list[dict], key: str) -> float:
    return round(sum(r[key]["rate"] for r in rows) / len(rows), 4)


def write_docs(r: dict, picture: str) -> Path:
    runs, ref = r["learned"], r["reference"]
    first = runs[0]["learn"]
    losses = {k: [x["loss"][k] for x in runs] for k in ("init", "learned", "words")}
    lines = [
        "# Textual inversion: a new prompt word learned from four images",
        "",
        f"Generated by `benchmarks/textual_inversion.py` from `benchmarks/results/textual_inversion.json` "
        f"({r['machine']['threads']} thread(s), {r['machine']['date']}, {r['seconds']:.0f} s in all).",
        "",
        "```bash",
        "genlab textual-inversion c1.png c2.png c3.png c4.png --token '<c>' --steps 300 -o concept.safetensors",
        "genlab generate '<c> to the left of a red square' --embedding concept.safetensors -o out.png",
        "```",
        "",
        "Python: `genlab.textual_inversion.learn(run, images, token='<c>')`, `save` / `load`, and "
        "`genlab.generate.generate('<c> ...', embeddings='concept.safetensors')`. Only the placeholder's input "
        "embedding (one 384-d row standing in for a row of MiniLM's word-embedding table) is trained, by Adam on "
        "the run's own flow loss on the concept images' latents, with caption templates ('<c>', 'a <c>', 'an image "
        "of a <c>', ...); the text encoder, the DiT and the autoencoder stay frozen and the gradient reaches the row "
        "through the frozen MiniLM.",
        "",
        f"**The concept**: {r['concept']['words']!r}. The model draws it from those words, but no single "
        "word names it: size, colour and kind are three words of the caption grammar, so the token has to fold "
        "three attributes into one embedding, and the three words give a direct reference for every prompt.",
        f"**Learning**: {len(runs)} independent tries (seeds {', '.join(str(x['seed']) for x in runs)}), each from "
        f"its own {r['concept']['images']} renders at random places: {first['steps']} steps, batch "
        f"{first['batch_size']}, lr {first['lr']}, init {first['init']!r}, "
        f"{sum(x['learn']['seconds'] for x in runs) / len(runs):.0f} s each. The learned vectors' norms: "
        f"{', '.join(format(x['learn']['norm'], '.2f') for x in runs)} (MiniLM's word rows: "
        f"{first['mean_word_norm']:.2f} on average).",
        "",
        f"Flow loss on each try's concept images ({runs[0]['loss']['draws']} fixed draws, per seed): the init word "
        f"{' / '.join(f'{v:.4f}' for v in losses['init'])}, the learned token "
        f"{' / '.join(f'{v:.4f}' for v in losses['learned'])}, the three words "
        f"{' / '.join(f'{v:.4f}' for v in losses['words'])}.",
        "",
        f"![rows: the training images of seed 0; samples of each prompt (seed 0's token)]({picture})",
        "",
        f"Sampling: {r['sampler']}, {r['steps']} steps, guidance {r['guidance_scale']}, {r['n_per_prompt']} images per "
        "prompt and try, seed fixed. Learned-token rows: the mean over the tries in bold, then each try's rate; "
        "reference rows: the rate with a 95 % Wilson interval over images. The concept is found by the GenEval-style "
        "detector (`genlab.metrics.geneval.detect_objects`): a small orange triangle.",
        "",
        "## Is the concept drawn?",
        "",
        "| prompt | concept (small orange triangle) | orange triangle, any size |",
        "|---|---|---|",
    ]
    for name in runs[0]["alone"]:
        rows = [x["alone"][name] for x in runs]
        lines.append(f"| {name} | {per_seed(rows, 'concept')} | {per_seed(rows, 'orange_triangle_any_size')} |")
    for name, row in ref["alone"].items():
        lines.append(f"| {name} | {pct(row['concept'])} | {pct(row['orange_triangle_any_size'])} |")
    lines += [
        "",
        f"The base rate is over {ref['alone']['base rate']['concept']['n']} images of eight ordinary prompts "
        f"({', '.join(repr(p) for p in ref['alone']['base rate']['prompts'])}).",
        "",
        "## Does the rest of the prompt still count?",
        "",
        "Each context with the learned token and with the three words in its place: the concept present, the other "
        "object present, both, and (position prompts) both with the relation held.",
        "",
        "| prompt | concept | other object | both | relation held |",
        "|---|---|---|---|---|",
    ]
    for rest, _, relation in CONTEXTS:
        rows = [x["contexts"][f"'{TOKEN} {rest}'"] for x in runs]
        rel = per_seed(rows, "relation") if relation else "–"
        cells = " | ".join(per_seed(rows, k) for k in ("concept", "other_object", "both"))
        lines.append(f"| '{TOKEN} {rest}' | {cells} | {rel} |")
        row = ref["contexts"][f"'{WORDS} {rest}'"]
        rel = pct(row["relation"]) if relation else "–"
        lines.append(
            f"| '{WORDS} {rest}' | {pct(row['concept'])} | {pct(row['other_object'])} | {pct(row['both'])} | {rel} |"
        )
    lines += ["", "## Reading", ""] + [f"- {f}" for f in findings(r)] + [""]
    out = ROOT / "docs" / "textual_inversion.md"
    atomic_write_text(out, "\n".join(lines))
    print(f"wrote {out}")
    return out


def findings(r: dict) -> list[str]:
    runs, ref = r["learned"], r["reference"]
    alone = [x["alone"][f"'{TOKEN}'"] for x in runs]
    words, base = ref["alone"][f"'{WORDS}'"]["concept"], ref["alone"]["base rate"]["concept"]
    out = [
        f"Alone, the learned token draws the concept in {100 * mean_rate(alone, 'concept'):.0f} % of images (mean of "
        f"{len(runs)} tries), against {pct(words)} for the three words and a base rate of {pct(base)}.",
    ]
    for rest, _, _ in CONTEXTS:
        tok = [x["contexts"][f"'{TOKEN} {rest}'"] for x in runs]
        w = ref["contexts"][f"'{WORDS} {rest}'"]
        out.append(
            f"'… {rest}': the concept in {100 * mean_rate(tok, 'concept'):.0f} % with the token vs "
            f"{100 * w['concept']['rate']:.0f} % with the words; the rest of the prompt (the other object) in "
            f"{100 * mean_rate(tok, 'other_object'):.0f} % vs {100 * w['other_object']['rate']:.0f} %; both in "
            f"{100 * mean_rate(tok, 'both'):.0f} % vs {100 * w['both']['rate']:.0f} %."
        )
    both = [mean_rate([x["contexts"][f"'{TOKEN} {rest}'"] for x in runs], "both") for rest, _, _ in CONTEXTS]
    words_both = [ref["contexts"][f"'{WORDS} {rest}'"]["both"]["rate"] for rest, _, _ in CONTEXTS]
    out.append(
        f"Over the {len(CONTEXTS)} contexts, both parts of the prompt are drawn in {100 * sum(both) / len(both):.0f} % "
        f"of images with the token against {100 * sum(words_both) / len(words_both):.0f} % with the three words: the "
        f"token {'matches' if abs(mean_rate(alone, 'concept') - words['rate']) <= 0.1 else 'differs from'} the words "
        f"alone but composes {'worse' if sum(both) < sum(words_both) else 'no worse'} than they do."
    )

    def deltas(rest: str) -> str:
        gain = {k: 100 * _gain(runs, ref, rest, k) for k in ("concept", "other_object")}
        return f"'… {rest}' (concept {gain['concept']:+.0f}, other object {gain['other_object']:+.0f} points)"

    crowd = [rest for rest, _, _ in CONTEXTS if _gain(runs, ref, rest, "concept") > 0]
    lost = [rest for rest, _, _ in CONTEXTS if rest not in crowd]
    if crowd:
        out.append(
            "Token minus words: the token crowds out the rest of the prompt (the users' report) in "
            + ", ".join(map(deltas, crowd))
            + "."
        )
    if lost:
        out.append("Elsewhere the concept itself is what gets lost: " + ", ".join(map(deltas, lost)) + ".")
    return out


def _gain(runs: list[dict], ref: dict, rest: str, key: str) -> float:
    """Mean rate with the token minus the rate with the words, in the context `rest`."""
    return (
        mean_rate([x["contexts"][f"'{TOKEN} {rest}'"] for x in runs], key)
        - ref["contexts"][f"'{WORDS} {rest}'"][key]["rate"]
    )


def learn_one(run, seed: int, args) -> tuple[dict, Concept, torch.Tensor]:
    x = concept_images(seed)
    start = time.perf_counter()
    concept = learn(run, x, token=TOKEN, steps=args.steps, lr=args.lr, batch_size=args.batch_size, seed=seed)
    seconds = time.perf_counter() - start
    init = word_concept(run, "shape", TOKEN)
    draws = 256
    entry = {
        "seed": seed,
        "render_seeds": render_seeds(seed),
        "learn": {
            "steps": args.steps,
            "lr": args.lr,
            "batch_size": args.batch_size,
            "init": "shape",
            "seconds": round(seconds, 1),
            "losses": [round(v, 5) for v in concept.losses],
            "norm": round(concept.vector.norm().item(), 4),
            "mean_word_norm": round(run.method.text_encoder.input_embeddings().weight.norm(dim=1).mean().item(), 4),
        },
        "loss": {
            "draws": draws,
            "init": round(concept_loss(run, x, init, draws=draws), 5),
            "learned": round(concept_loss(run, x, concept, draws=draws), 5),
            "words": round(concept_loss(run, x, init, draws=draws, templates=[WORDS]), 5),
        },
    }
    return entry, concept, x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="a text-to-image run (default: shipped:shapes-t2i, see BASE_T2I)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--tries", type=int, default=3, help="independent learnings (image set and seed each)")
    ap.add_argument("--n", type=int, default=48, help="images per prompt")
    ap.add_argument("--seed", type=int, default=0, help="the sampling seed")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/textual_inversion.json")
    ap.add_argument("--docs-only", action="store_true", help="rewrite docs/textual_inversion.md from --out's JSON")
    args = ap.parse_args()
    if args.docs_only:
        write_docs(json.loads(Path(args.out).read_text()), "images/textual_inversion.png")
        return
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    t0 = time.perf_counter()
    run = text_run(args.run or BASE_T2I)
    n, grid = args.n, {}

    learned = []
    for seed in range(args.tries):
        entry, concept, x = learn_one(run, seed, args)
        entry["alone"], entry["contexts"] = {}, {}
        for prompt in (TOKEN, f"a {TOKEN}"):
            images = images_for(run, prompt, n, args.seed, concept)
            entry["alone"][f"'{prompt}'"] = concept_row(images)
            if seed == 0:
                grid[f"'{prompt}'"] = images[:8]
        for rest, other, relation in CONTEXTS:
            prompt = f"{TOKEN} {rest}"
            images = images_for(run, prompt, n, args.seed, concept)
            entry["contexts"][f"'{prompt}'"] = context_row(images, prompt, other, relation)
            if seed == 0 and rest == CONTEXTS[0][0]:
                grid[f"'{prompt}'"] = images[:8]
        if seed == 0:
            training = torch.cat([x, torch.full((8 - N_IMAGES, *x.shape[1:]), -1.0)])
        learned.append(entry)
        print(f"try {seed}: {entry['alone']} {time.perf_counter() - t0:.0f} s", flush=True)

    reference = {"alone": {}, "contexts": {}}
    for name, prompt in ((f"'{WORDS}'", WORDS), ("'a shape' (the init word)", "a shape")):
        images = images_for(run, prompt, n, args.seed, None)
        reference["alone"][name] = concept_row(images)
        if prompt == WORDS:
            grid[name] = images[:8]
    per = max(1, n // len(DEFAULT_PROMPTS))
    base = torch.cat([images_for(run, p, per, args.seed, None) for p in DEFAULT_PROMPTS])
    reference["alone"]["base rate"] = {**concept_row(base), "prompts": list(DEFAULT_PROMPTS)}
    for rest, other, relation in CONTEXTS:
        prompt = f"{WORDS} {rest}"
        images = images_for(run, prompt, n, args.seed, None)
        reference["contexts"][f"'{prompt}'"] = context_row(images, prompt, other, relation)
        if rest == CONTEXTS[0][0]:
            grid[f"'{prompt}'"] = images[:8]

    settings = run.settings
    result = {
        "run": "shipped shapes-t2i" if args.run is None else str(args.run),
        "concept": {"words": WORDS, "token": TOKEN, "images": N_IMAGES},
        "n_per_prompt": n,
        "seed": args.seed,
        "sampler": settings.sampler,
        "steps": settings.steps,
        "guidance_scale": settings.guidance_scale,
        "learned": learned,
        "reference": reference,
    }
    result["summary"] = {
        "token_alone": mean_rate([x["alone"][f"'{TOKEN}'"] for x in learned], "concept"),
        "words_alone": reference["alone"][f"'{WORDS}'"]["concept"]["rate"],
        "base_rate": reference["alone"]["base rate"]["concept"]["rate"],
        "contexts": {
            rest: {
                "token": {
                    k: mean_rate([x["contexts"][f"'{TOKEN} {rest}'"] for x in learned], k)
                    for k in ("concept", "other_object", "both")
                },
                "words": {
                    k: reference["contexts"][f"'{WORDS} {rest}'"][k]["rate"]
                    for k in ("concept", "other_object", "both")
                },
            }
            for rest, _, _ in CONTEXTS
        },
    }
    result["seconds"] = round(time.perf_counter() - t0, 1)
    out = write_json(args.out, result)
    picture = ROOT / "docs" / "images" / "textual_inversion.png"
    order = [f"'{TOKEN}'", f"'a {TOKEN}'", f"'{WORDS}'", f"'{TOKEN} {CONTEXTS[0][0]}'", f"'{WORDS} {CONTEXTS[0][0]}'"]
    rows = {"training images (seed 0)": training, **{k: grid[k] for k in order}}
    with atomic_path(picture) as tmp:
        save_grid(torch.cat(list(rows.values())), tmp, 8, row_labels=list(rows))
    write_docs(json.loads(Path(out).read_text()), "images/textual_inversion.png")


if __name__ == "__main__":
    main()
