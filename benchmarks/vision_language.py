"""Vision and language on CPU: a ViT classifier, and CLIP zero-shot classification and retrieval.

Usage: OMP_NUM_THREADS=1 python benchmarks/vision_language.py [--steps 500] [--clip-steps 600]
           [--shapes-clip-steps 500] [--work /tmp/genlab-vision-language] [--out FILE.json] [--docs FILE.md]
Writes the JSON, a Markdown table next to it (.md) and docs/vision_language.md. Budgets are deliberately small
(the whole script runs in well under 15 minutes on one core); the numbers are for these budgets, not converged.

(a) digits, method.kind classifier on clean images, same steps and batch: ViT (recipes/digits-vit.yaml, cls and
    mean pooling) vs the U-Net encoder (the network of recipes/digits-classifier.yaml, called at t = 0): test
    accuracy on the fixed 360-image test split, parameters, training minutes (wall time of the run: other jobs on
    a shared machine inflate it), training and inference images/s (best of 5 rounds timing the networks in turn).
(b) CLIP on captioned digits (recipes/digits-clip.yaml): zero-shot accuracy on the test split with a single prompt
    ("a handwritten seven"), the builtin prompt ensemble (genlab.clip_tasks.BUILTIN_TEMPLATES) and an ensemble of
    the digit caption templates, next to the supervised classifiers of (a).
(c) CLIP on shapes (recipes/shapes-clip.yaml): zero-shot on true single-shape renders (all 24 colour x kind pairs,
    2 sizes, 10 layouts each; the 4 held-out pairs never appear in training captions) for colour (8 labels), shape
    (3) and colour x shape (24) labels, single prompt vs builtin ensemble, plus colour / shape read off the 24-way
    joint (marginal probabilities); text->image retrieval on the 500-image test split: recall@1/5/10 of each
    caption's own image among all 500, and how often the top-1 image satisfies the caption (procedural checker).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402
from genlab.atomic import atomic_write_text  # noqa: E402
from genlab.clip_tasks import BUILTIN_TEMPLATES, class_embeddings, image_embeddings, zero_shot  # noqa: E402
from genlab.config import load_recipe, recipe_from_dict, recipe_to_dict  # noqa: E402
from genlab.data import build_dataset  # noqa: E402
from genlab.data.digits import CAPTION_TEMPLATES, NUMBER_WORDS  # noqa: E402
from genlab.data.images import tensor_to_uint8  # noqa: E402
from genlab.data.shapes import COLOURS, HELDOUT_PAIRS, KINDS, SIZES, Scene, Shape, render, sample_pairs  # noqa: E402
from genlab.metrics.t2i import check  # noqa: E402
from genlab.runs import load_run, train_seconds  # noqa: E402
from genlab.train import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class Trained(NamedTuple):
    name: str
    run: Path
    minutes: float


def train_recipe(path: Path, work: Path, name: str, overrides: dict, steps: int) -> Trained:
    """Train recipe `path` with `overrides` (dotted keys) for `steps` steps into work/name."""
    tree = recipe_to_dict(load_recipe(path))
    tree["name"] = name
    for key, value in {**overrides, "train.steps": steps, "train.checkpoint_every": steps}.items():
        node = tree
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    run = train(recipe_from_dict(tree, f"{path.name} ({name})"), work / name, progress=False)
    return Trained(name, run, train_seconds(run) / 60)


@torch.no_grad()
def inference_seconds(method, x: torch.Tensor) -> float:
    """Seconds of one pass of `predict` over x."""
    start = time.perf_counter()
    method.predict(x)
    return time.perf_counter() - start


def train_seconds_per_step(model, opt, data, batch: int, steps: int, seed: int) -> float:
    """Seconds per training step (forward, backward, AdamW step) over `steps` steps."""
    start = time.perf_counter()
    for step in range(steps):
        idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed + step))[:batch]
        loss, _ = model.loss(data.batch(idx))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def throughput(methods: dict, train_data, test_x: torch.Tensor, batch: int, rounds: int = 5) -> dict:
    """{name: (train images/s, inference images/s)}: the best of `rounds` timings, the networks measured in turn
    within each round, so that other jobs on a shared machine slow them alike."""
    copies = {name: copy.deepcopy(m).train() for name, m in methods.items()}  # trained on: the runs stay intact
    opts = {name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, m in copies.items()}
    best = {name: [math.inf, math.inf] for name in methods}
    for r in range(rounds + 1):  # round 0 warms up
        for name in methods:
            step = train_seconds_per_step(copies[name], opts[name], train_data, batch, steps=5, seed=10 * r)
            infer = inference_seconds(methods[name], test_x)
            if r:
                best[name] = [min(best[name][0], step), min(best[name][1], infer)]
    return {name: (batch / t, len(test_x) / i) for name, (t, i) in best.items()}


def classifiers(work: Path, steps: int) -> dict:
    """(a): ViT (cls, mean) and the U-Net encoder, method.kind classifier, same steps / batch / lr schedule."""
    unet = recipe_to_dict(load_recipe(ROOT / "recipes" / "digits-classifier.yaml"))["model"]
    unet = {k: v for k, v in unet.items() if k not in ("in_channels", "image_size", "num_classes")}
    vit = ROOT / "recipes" / "digits-vit.yaml"
    variants = {
        "vit_cls": {},
        "vit_mean": {"model.pool": "mean"},
        "unet_encoder": {"model": unet},
    }
    train_data = build_dataset(load_recipe(vit).data)
    test = build_dataset(load_recipe(vit).data, split="test")
    out, methods = {}, {}
    for name, overrides in variants.items():
        trained = train_recipe(vit, work, name, overrides, steps)
        run = load_run(trained.run)
        methods[name] = run.method
        out[name] = {
            "model": run.recipe.model.kind,
            "pool": getattr(run.recipe.model, "pool", None),
            "test_accuracy": run.method.heldout_metrics(test)["accuracy"],
            "parameters": sum(p.numel() for p in run.method.parameters()),
            "train_minutes": trained.minutes,
        }
    batch = load_recipe(vit).train.batch_size
    for name, (train_rate, infer_rate) in throughput(methods, train_data, test.x, batch).items():
        out[name].update(train_images_per_s=train_rate, inference_images_per_s=infer_rate)
        print(name, out[name], flush=True)
    return out


def accuracy(probs: torch.Tensor, y: torch.Tensor) -> float:
    return float((probs.argmax(1) == y).float().mean())


def digits_clip(work: Path, steps: int) -> dict:
    """(b): CLIP on captioned digits, zero-shot on the test split."""
    trained = train_recipe(ROOT / "recipes" / "digits-clip.yaml", work, "digits_clip", {}, steps)
    run = load_run(trained.run)
    test = build_dataset(run.recipe.data, split="test")
    labels = [f"a handwritten {w}" for w in NUMBER_WORDS]
    return {
        "train_minutes": trained.minutes,
        "test_images": len(test),
        "single_prompt": accuracy(zero_shot(run, test.x, labels), test.labels),
        "builtin_ensemble": accuracy(zero_shot(run, test.x, labels, templates="builtin"), test.labels),
        "caption_template_ensemble": accuracy(
            zero_shot(run, test.x, list(NUMBER_WORDS), templates=list(CAPTION_TEMPLATES)), test.labels
        ),
        "chance": 0.1,
        "single_prompt_template": "a handwritten {}",
        "caption_templates": list(CAPTION_TEMPLATES),
    }


def shape_renders() -> tuple[torch.Tensor, list[tuple[str, str]]]:
    """Single-shape renders: every colour x kind pair, both sizes, 10 layouts each (480 images)."""
    items = [(c, k, s, seed) for c in COLOURS for k in KINDS for s in SIZES for seed in range(10)]
    x = torch.stack([render(Scene((Shape(c, k, s),)), seed=seed) for c, k, s, seed in items])
    return x, [(c, k) for c, k, _, _ in items]


def shapes_zero_shot(run) -> dict:
    x, pairs = shape_renders()
    colours, kinds = list(COLOURS), list(KINDS)
    joint = [(c, k) for c in colours for k in kinds]
    y_colour = torch.tensor([colours.index(c) for c, _ in pairs])
    y_kind = torch.tensor([kinds.index(k) for _, k in pairs])
    y_joint = torch.tensor([joint.index(p) for p in pairs])
    held = torch.tensor([p in HELDOUT_PAIRS for p in pairs])
    tasks = {
        "colour": ([f"a {c} shape" for c in colours], y_colour),
        "shape": ([f"a {k}" for k in kinds], y_kind),
        "colour_x_shape": ([f"a {c} {k}" for c, k in joint], y_joint),
    }
    out = {"images": len(x), "heldout_pair_images": int(held.sum()), "prompts": {}}
    for how, templates in (("single_prompt", None), ("builtin_ensemble", "builtin")):
        row = {}
        for task, (labels, y) in tasks.items():
            p = zero_shot(run, x, labels, templates=templates)
            row[task] = accuracy(p, y)
            row[f"{task}_seen_pairs"] = accuracy(p[~held], y[~held])
            row[f"{task}_heldout_pairs"] = accuracy(p[held], y[held])
            out["prompts"][task] = labels[0]
            if task == "colour_x_shape":  # colour and shape read off the joint: marginal probabilities
                grid = p.view(len(p), len(colours), len(kinds))
                row["colour_from_joint"] = accuracy(grid.sum(2), y_colour)
                row["shape_from_joint"] = accuracy(grid.sum(1), y_kind)
        out[how] = row
    out["chance"] = {"colour": 1 / len(colours), "shape": 1 / len(kinds), "colour_x_shape": 1 / len(joint)}
    return out


@torch.no_grad()
def shapes_retrieval(run, n: int = 500) -> dict:
    x, texts, _ = sample_pairs(n, split="test", seed=0)  # the 'test' images of ShapesConfig(seed=0)
    clip = run.method.eval()
    u = image_embeddings(clip, x)  # (N, D)
    v = class_embeddings(clip, texts, ["{}"])  # (N, D): each caption's unit embedding
    ranks = (v @ u.T).argsort(1, descending=True)  # (queries, images)
    position = (ranks == torch.arange(n)[:, None]).float().argmax(1)  # rank of each caption's own image
    pixels = tensor_to_uint8(x)
    top1_true = [check(pixels[int(r)], t)["all"] for r, t in zip(ranks[:, 0], texts)]
    return {
        "images": n,
        **{f"recall@{k}": float((position < k).float().mean()) for k in (1, 5, 10)},
        "top1_satisfies_caption": sum(top1_true) / n,
        "chance_recall@1": 1 / n,
    }


def shapes_clip(work: Path, steps: int) -> dict:
    """(c): CLIP on shapes, zero-shot on true renders and text->image retrieval."""
    trained = train_recipe(ROOT / "recipes" / "shapes-clip.yaml", work, "shapes_clip", {}, steps)
    run = load_run(trained.run)
    return {"train_minutes": trained.minutes, "zero_shot": shapes_zero_shot(run), "retrieval": shapes_retrieval(run)}


def markdown(result: dict) -> str:
    """The tables of docs/vision_language.md, from the result JSON."""
    a, b, c = result["classifiers"], result["digits_clip"], result["shapes_clip"]
    steps = result["budget"]
    lines = [
        "# Vision and language: ViT, CLIP zero-shot and retrieval",
        "",
        "Generated by `benchmarks/vision_language.py` from `benchmarks/results/vision_language.json` "
        f"({result['machine']['threads']} thread, {result['machine']['date']}, load average "
        f"{result['load_average_at_start']:.1f} at the start on {result['machine']['cores']} cores). Small CPU "
        "budgets: the numbers are for these budgets, not converged models. Train minutes are wall times (other jobs "
        "inflate them); images/s are the best of 5 rounds that time the networks in turn.",
        "",
        "What is measured:",
        "",
        "- `model.kind: vit` (`genlab.models.vit`): patchify, [CLS] or mean pooling (`pool: cls|mean`), learned "
        "positions, pre-LN blocks; trained by `method.kind: classifier` (clean images, cross-entropy), which also "
        "takes the U-Net encoder (`model.kind: unet`). Recipe: `recipes/digits-vit.yaml`; on shapes use "
        "`data.labels: true` (24 colour x shape classes).",
        "- CLIP zero-shot (`genlab.clip_tasks.zero_shot`): one prompt per label, or a prompt ensemble (the unit text "
        "embeddings of several templates averaged and renormalised); retrieval (`genlab.clip_tasks.retrieve`) ranks "
        "images by cosine to the query. `recipes/digits-clip.yaml` trains a CLIP on digits with captions "
        '(`data.captions: true`, "a handwritten seven").',
        "",
        f"## Digits classifiers ({steps['classifier_steps']} steps, batch {steps['classifier_batch']}, "
        "method.kind classifier on clean images)",
        "",
        "| network | test accuracy | parameters | train minutes | train images/s | inference images/s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in a.items():
        lines.append(
            f"| {name} | {r['test_accuracy']:.3f} | {r['parameters']:,} | {r['train_minutes']:.2f} | "
            f"{r['train_images_per_s']:.0f} | {r['inference_images_per_s']:.0f} |"
        )
    lines += [
        "",
        f"## CLIP zero-shot on held-out digits ({steps['digits_clip_steps']} steps, {b['train_minutes']:.2f} min; "
        f"{b['test_images']} test images, chance {b['chance']:.2f})",
        "",
        "| labels | accuracy |",
        "|---|---|",
        f"| single prompt ('{b['single_prompt_template']}') | {b['single_prompt']:.3f} |",
        f"| builtin prompt ensemble ({len(result['builtin_templates'])} templates) | {b['builtin_ensemble']:.3f} |",
        f"| ensemble of the {len(b['caption_templates'])} digit caption templates | "
        f"{b['caption_template_ensemble']:.3f} |",
        f"| supervised ViT (cls), for reference | {a['vit_cls']['test_accuracy']:.3f} |",
        f"| supervised U-Net encoder, for reference | {a['unet_encoder']['test_accuracy']:.3f} |",
        "",
    ]
    z, r = c["zero_shot"], c["retrieval"]
    lines += [
        f"## CLIP zero-shot on shapes renders ({steps['shapes_clip_steps']} steps, {c['train_minutes']:.2f} min; "
        f"{z['images']} single-shape renders, {z['heldout_pair_images']} of held-out colour x shape pairs)",
        "",
        "| labels | chance | single prompt | builtin ensemble | seen pairs (single) | held-out pairs (single) |",
        "|---|---|---|---|---|---|",
    ]
    for task in ("colour", "shape", "colour_x_shape"):
        s, e = z["single_prompt"], z["builtin_ensemble"]
        lines.append(
            f"| {task} ('{z['prompts'][task]}', ...) | {z['chance'][task]:.3f} | {s[task]:.3f} | {e[task]:.3f} | "
            f"{s[task + '_seen_pairs']:.3f} | {s[task + '_heldout_pairs']:.3f} |"
        )
    s, e = z["single_prompt"], z["builtin_ensemble"]
    lines += [
        f"| colour read off the 24-way joint | 0.125 | {s['colour_from_joint']:.3f} | {e['colour_from_joint']:.3f} "
        "| | |",
        f"| shape read off the 24-way joint | 0.333 | {s['shape_from_joint']:.3f} | {e['shape_from_joint']:.3f} | | |",
        "",
        f"## Text -> image retrieval on the shapes test split ({r['images']} images, each caption's own image)",
        "",
        "| recall@1 | recall@5 | recall@10 | top-1 image satisfies the caption | chance recall@1 |",
        "|---|---|---|---|---|",
        f"| {r['recall@1']:.3f} | {r['recall@5']:.3f} | {r['recall@10']:.3f} | {r['top1_satisfies_caption']:.3f} | "
        f"{r['chance_recall@1']:.4f} |",
        "",
        "Reproduce: `OMP_NUM_THREADS=1 python benchmarks/vision_language.py`. Use a CLIP run from the command line:",
        '`genlab clip RUN --classify a.png b.png --labels "a red circle,a blue square" [--templates builtin]` and',
        '`genlab clip RUN --retrieve FOLDER --query "a red circle" -k 5`.',
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=500, help="training steps of each digits classifier")
    p.add_argument("--clip-steps", type=int, default=600, help="training steps of the digits CLIP")
    p.add_argument("--shapes-clip-steps", type=int, default=500, help="training steps of the shapes CLIP")
    p.add_argument("--work", default="/tmp/genlab-vision-language", help="folder for the trained runs")
    p.add_argument("--out", default="benchmarks/results/vision_language.json")
    p.add_argument("--docs", default="docs/vision_language.md")
    args = p.parse_args()
    work = Path(args.work)
    start = time.perf_counter()
    result = {
        "budget": {
            "classifier_steps": args.steps,
            "classifier_batch": load_recipe(ROOT / "recipes" / "digits-vit.yaml").train.batch_size,
            "digits_clip_steps": args.clip_steps,
            "shapes_clip_steps": args.shapes_clip_steps,
            "note": "small CPU budgets (the whole script is meant to run in under 15 minutes on one core)",
        },
        "load_average_at_start": os.getloadavg()[0],  # other jobs on a shared machine slow the wall times
        "builtin_templates": list(BUILTIN_TEMPLATES),
        "classifiers": classifiers(work, args.steps),
    }
    result["digits_clip"] = digits_clip(work, args.clip_steps)
    print("digits_clip", result["digits_clip"], flush=True)
    result["shapes_clip"] = shapes_clip(work, args.shapes_clip_steps)
    print("shapes_clip", json.dumps(result["shapes_clip"]), flush=True)
    result["total_minutes"] = (time.perf_counter() - start) / 60
    result["load_average_at_end"] = os.getloadavg()[0]
    out = write_json(args.out, result)
    body = json.loads(out.read_text())
    text = markdown(body)
    atomic_write_text(out.with_suffix(".md"), text)
    atomic_write_text(args.docs, text)
    print(f"wrote {out.with_suffix('.md')} and {args.docs}")


if __name__ == "__main__":
    main()
