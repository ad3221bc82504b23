"""GLIGEN box placement and IP-Adapter image-prompt fidelity on the frozen shipped shapes checkpoint.

    python benchmarks/adapters.py [--gligen runs/shapes-gligen] [--ip runs/shapes-ip-adapter] [--layouts 48]
        [--references 48] [--per 2] [--threads 1] [--out benchmarks/results/adapters.json]

A run folder that does not exist is trained first from its recipe (recipes/shapes-gligen.yaml,
recipes/shapes-ip-adapter.yaml). Objects are read by the procedural detector (genlab.methods.adapters.image_objects:
the components and reading of genlab.metrics.geneval.detect_objects, with their boxes and masks).

GLIGEN: layouts of 1–2 shapes (distinct colours) placed by the shapes layout sampler, each shape's box its
bounding box; the prompt names the shapes in the training grammar ("a red circle", "two shapes: a red circle and
a blue square"). Every layout is drawn `per` times from the same seeds by the base model from the prompt's words
alone, by GLIGEN with the boxes (guidance's unconditional half grounded too, as trained) and by GLIGEN with an
ungrounded unconditional half (guidance then amplifies the boxes). An object is found when a detected object has
its colour and kind; placed when the found object's mask centroid lies inside its box, and when its detected box
has IoU >= 0.5 with the box. The layouts' own renders score the checker (the ceiling).

IP-Adapter: references are held-out 'test' shapes images; each arm draws `per` images per reference: the base model
unconditional (prompt "": the base rate), the base model from the reference's caption (text only), IP-Adapter from
the image alone (prompt "") and from image and caption together. A reference object is recovered when a distinct
generated object has its colour (colour), its kind (kind) or both (object); an image is exact when every reference
object is recovered and nothing else appears. 95 % intervals are percentile bootstraps over layouts/references.
Writes the JSON, docs/adapters.md and docs/images/adapters.png.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from common import write_json
from genlab.atomic import atomic_path, atomic_write_text
from genlab.data.images import tensor_to_uint8, uint8_to_tensor
from genlab.data.shapes import (
    COLOURS,
    HELDOUT_PAIRS,
    KINDS,
    SIZES,
    Scene,
    Shape,
    caption,
    draw,
    half_extent,
    layout,
    sample_pairs,
)
from genlab.methods.adapters import image_objects
from genlab.runs import load_run, train_seconds

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = 2000
CHUNK = 64


def ensure_run(folder: str, recipe: str):
    """The run in `folder`, trained from `recipe` first when the folder does not exist."""
    if not Path(folder).exists():
        from genlab.config import load_recipe
        from genlab.train import train

        train(load_recipe(ROOT / recipe, []), folder, progress=False)
    return load_run(folder)


def draw_many(method, prompts: list[str], seeds: list[int], settings, **per_sample) -> torch.Tensor:
    """One image per prompt, the i-th from its own seeded noise, in chunks; per_sample lists are chunked alike."""
    out = []
    for s in range(0, len(prompts), CHUNK):
        sl = slice(s, s + CHUNK)
        noise = torch.stack(
            [torch.randn(method.base.shape, generator=torch.Generator().manual_seed(k)) for k in seeds[sl]]
        )
        opts = {k: v[sl] for k, v in per_sample.items()}  # lists or tensors, one row per image
        out.append(method.sample(len(noise), cond=prompts[sl], settings=settings, noise=noise, **opts).x.cpu())
    return torch.cat(out)


def bootstrap(values: np.ndarray, groups: np.ndarray, seed: int) -> list[float]:
    """95 % percentile interval of the mean of `values`, resampling whole groups (layouts / references)."""
    ids = np.unique(groups)
    rng = np.random.default_rng(seed)
    members = [np.nonzero(groups == g)[0] for g in ids]
    sums = np.array([values[m].sum() for m in members])
    sizes = np.array([len(m) for m in members])
    pick = rng.integers(0, len(ids), size=(BOOTSTRAP, len(ids)))
    boot = sums[pick].sum(1) / np.maximum(sizes[pick].sum(1), 1)
    return [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))]


def rate(values, groups, seed: int) -> dict:
    values, groups = np.asarray(values, dtype=np.float64), np.asarray(groups)
    return {"rate": float(values.mean()), "ci": bootstrap(values, groups, seed), "n": len(values)}


# ----------------------------------------------------------------------------- GLIGEN


def layouts(n: int, seed: int) -> list[tuple[Scene, list[tuple[int, int]]]]:
    """n scenes of 1–2 shapes in distinct colours (seen colour×kind pairs), with centres from the layout sampler."""
    rng = np.random.default_rng([seed, 14])
    out = []
    pairs = [(c, k) for c in COLOURS for k in KINDS if (c, k) not in HELDOUT_PAIRS]
    while len(out) < n:
        count = 1 + len(out) % 2
        picked = [pairs[i] for i in rng.choice(len(pairs), size=count, replace=False)]
        if count == 2 and picked[0][0] == picked[1][0]:
            continue
        scene = Scene(tuple(Shape(c, k, SIZES[int(rng.integers(2))]) for c, k in picked))
        out.append((scene, layout(scene, rng)))
    return out


def boxes_of(scene: Scene, centres, side: int = 32) -> list[tuple[str, tuple[float, float, float, float]]]:
    boxes = []
    for s, (cx, cy) in zip(scene.shapes, centres):
        h = half_extent(s.size, side)
        box = tuple(float(np.clip(v / side, 0, 1)) for v in (cx - h, cy - h, cx + h, cy + h))
        boxes.append((f"a {s.colour} {s.kind}", box))
    return boxes


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def placement(image: np.ndarray, scene: Scene, boxes) -> list[tuple[bool, bool, bool]]:
    """(found, centroid inside, IoU >= 0.5) per box: the best-overlapping detected object of its colour and kind."""
    found = image_objects(image)
    side = image.shape[0]
    rows = []
    for s, (_, box) in zip(scene.shapes, boxes):
        cands = [(iou(b, box), m) for c, k, b, m in found if c == s.colour and k == s.kind]
        if not cands:
            rows.append((False, False, False))
            continue
        best, mask = max(cands, key=lambda cm: cm[0])
        ys, xs = np.nonzero(mask)
        cx, cy = (xs.mean() + 0.5) / side, (ys.mean() + 0.5) / side
        rows.append((True, bool(box[0] <= cx <= box[2] and box[1] <= cy <= box[3]), best >= 0.5))
    return rows


def gligen_experiment(run, n_layouts: int, per: int, seed: int) -> tuple[dict, dict]:
    method, settings = run.method, run.settings
    scenes = layouts(n_layouts, seed)
    prompts, seeds, boxes, groups = [], [], [], []
    for i, (scene, centres) in enumerate(scenes):
        text = caption(scene) if len(scene.shapes) == 1 else caption(Scene(scene.shapes, None))
        for j in range(per):
            prompts.append(text)
            seeds.append(seed * 100_000 + i * per + j)
            boxes.append(boxes_of(scene, centres))
            groups.append(i)
    renders = uint8_to_tensor(np.stack([draw(s, c) for s, c in scenes])).repeat_interleave(per, 0)
    arms = {"real renders (ceiling)": renders}
    t0 = time.perf_counter()
    arms["base, prompt words only"] = draw_many(method, prompts, seeds, settings)
    arms["GLIGEN, boxes"] = draw_many(method, prompts, seeds, settings, boxes=boxes)
    method.cfg.ground_unconditional = False
    arms["GLIGEN, boxes, ungrounded unconditional half"] = draw_many(method, prompts, seeds, settings, boxes=boxes)
    method.cfg.ground_unconditional = True
    seconds = time.perf_counter() - t0
    result = {}
    for name, images in arms.items():
        rows, obj_groups, all_placed = [], [], []
        for im, b, g in zip(tensor_to_uint8(images.clamp(-1, 1)), boxes, groups):
            scored = placement(im, scenes[g][0], b)
            rows += scored
            obj_groups += [g] * len(scored)
            all_placed.append(all(r[2] for r in scored))
        rows = np.array(rows, dtype=np.float64)
        result[name] = {
            "found": rate(rows[:, 0], obj_groups, seed),
            "centroid_in_box": rate(rows[:, 1], obj_groups, seed),
            "iou_at_least_0.5": rate(rows[:, 2], obj_groups, seed),
            "images_all_iou_0.5": rate(all_placed, groups, seed),
        }
    meta = {"layouts": n_layouts, "per_layout": per, "objects": int(rows.shape[0]), "sampling_seconds": seconds}
    pictures = {name: arms[name][::per][:6] for name in arms}
    return {"arms": result, **meta}, pictures


# ----------------------------------------------------------------------------- IP-Adapter


def recovered(image: np.ndarray, ref: list[tuple[str, str]]) -> tuple[list[tuple[bool, bool, bool]], bool]:
    """Per reference object (colour, kind): (colour, kind, both) recovered by distinct generated objects; exact."""
    found = [(c, k) for c, k, _, _ in image_objects(image)]
    rows = []
    for fields in ((0,), (1,), (0, 1)):
        pool = list(found)
        hits = []
        for obj in ref:
            key = tuple(obj[f] for f in fields)
            match = next((p for p in pool if tuple(p[f] for f in fields) == key), None)
            if match is not None:
                pool.remove(match)
            hits.append(match is not None)
        rows.append(hits)
    per_object = list(zip(*rows))
    exact = all(h[2] for h in per_object) and len(found) == len(ref)
    return per_object, exact


def ip_experiment(run, n_refs: int, per: int, seed: int) -> tuple[dict, dict]:
    method, settings = run.method, run.settings
    x, texts, _ = sample_pairs(n_refs, split="test", seed=seed)
    refs = [[(c, k) for c, k, _, _ in image_objects(im)] for im in tensor_to_uint8(x)]
    images = x.repeat_interleave(per, 0)
    captions = [t for t in texts for _ in range(per)]
    seeds = [seed * 100_000 + i for i in range(len(captions))]
    groups = np.repeat(np.arange(n_refs), per)
    empty = [""] * len(captions)
    t0 = time.perf_counter()
    arms = {
        "base, unconditional (base rate)": draw_many(method, empty, seeds, settings),
        "base, caption (text only)": draw_many(method, captions, seeds, settings),
        "IP-Adapter, image only": draw_many(method, empty, seeds, settings, image=images),
        "IP-Adapter, image + caption": draw_many(method, captions, seeds, settings, image=images),
    }
    seconds = time.perf_counter() - t0
    result = {}
    for name, out in arms.items():
        rows, obj_groups, exact = [], [], []
        for im, g in zip(tensor_to_uint8(out.clamp(-1, 1)), groups):
            per_object, ok = recovered(im, refs[g])
            rows += per_object
            obj_groups += [g] * len(per_object)
            exact.append(ok)
        rows = np.array(rows, dtype=np.float64)
        result[name] = {
            "colour": rate(rows[:, 0], obj_groups, seed),
            "kind": rate(rows[:, 1], obj_groups, seed),
            "object": rate(rows[:, 2], obj_groups, seed),
            "images_exact": rate(exact, groups, seed),
        }
    meta = {"references": n_refs, "per_reference": per, "objects": int(rows.shape[0]), "sampling_seconds": seconds}
    pictures = {"reference": x[:6], **{name: arms[name][::per][:6] for name in list(arms)[1:]}}
    return {"arms": result, **meta}, pictures


# ----------------------------------------------------------------------------- output


def pct(m: dict) -> str:
    lo, hi = m["ci"]
    return f"{100 * m['rate']:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}]"


def markdown(result: dict) -> str:
    g, ip = result["gligen"], result["ip_adapter"]
    lines = [
        "# Adapters on the frozen text-to-image DiT: GLIGEN boxes and IP-Adapter image prompts",
        "",
        "Generated by `python benchmarks/adapters.py` from `benchmarks/results/adapters.json`; the base is the frozen "
        f"shipped `shapes-t2i` checkpoint, sampler {result['sampler']}, {result['steps']} steps, guidance "
        f"{result['guidance_scale']}. GLIGEN trained {result['gligen_run']['step']} steps of batch 32 "
        f"({result['gligen_run']['train_seconds'] / 60:.0f} min on a shared 2-core CPU, "
        f"{result['gligen_run']['parameters']:,} parameters; its gates |tanh(k·γ)| averaged "
        f"{result['gligen_run']['last_metrics'].get('gate', float('nan')):.3f} at the end), IP-Adapter "
        f"{result['ip_run']['step']} steps ({result['ip_run']['train_seconds'] / 60:.0f} min, "
        f"{result['ip_run']['parameters']:,} parameters); the base's "
        f"{result['gligen_run']['frozen_parameters']:,} frozen parameters unchanged. [95 % bootstrap intervals.]",
        "",
        "![GLIGEN and IP-Adapter samples](images/adapters.png)",
        "",
        "Rows, top to bottom: the layouts rendered (the boxes' targets), the base from the prompt's words, GLIGEN with "
        "the boxes, GLIGEN with an ungrounded unconditional half; held-out references, the base from the reference's "
        "caption, IP-Adapter from the image alone, IP-Adapter from image and caption (first seed of each).",
        "",
        f"## GLIGEN box placement ({g['layouts']} layouts × {g['per_layout']} seeds, {g['objects']} boxed objects)",
        "",
        "An object counts when a detected object of its colour and kind has its mask centroid inside the box, or "
        "its detected box overlaps the box with IoU >= 0.5.",
        "",
        "| arm | found | centroid in box | IoU >= 0.5 | images, every box IoU >= 0.5 |",
        "|---|---|---|---|---|",
    ]
    for name, m in g["arms"].items():
        lines.append(
            f"| {name} | {pct(m['found'])} | {pct(m['centroid_in_box'])} | {pct(m['iou_at_least_0.5'])} | "
            f"{pct(m['images_all_iou_0.5'])} |"
        )
    lines += [
        "",
        f"## IP-Adapter fidelity ({ip['references']} held-out references × {ip['per_reference']} seeds, "
        f"{ip['objects']} reference objects)",
        "",
        "A reference object is recovered when a distinct generated object has its colour, its kind, or both; an image "
        "is exact when every reference object is recovered and nothing else appears.",
        "",
        "| arm | colour | kind | colour and kind | images exact |",
        "|---|---|---|---|---|",
    ]
    for name, m in ip["arms"].items():
        lines.append(
            f"| {name} | {pct(m['colour'])} | {pct(m['kind'])} | {pct(m['object'])} | {pct(m['images_exact'])} |"
        )
    return "\n".join(lines) + "\n"


def picture(gligen: dict, ip: dict, path: Path) -> None:
    """Rows: layouts / base / GLIGEN; references / text only / image only / image + caption."""
    from genlab.plots import save_samples

    rows = [*gligen.values(), *ip.values()]
    width = min(len(r) for r in rows)
    with atomic_path(path) as tmp:
        save_samples(torch.cat([r[:width] for r in rows]).clamp(-1, 1), tmp, nrow=width)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gligen", default="runs/shapes-gligen")
    ap.add_argument("--ip", default="runs/shapes-ip-adapter")
    ap.add_argument("--layouts", type=int, default=48)
    ap.add_argument("--references", type=int, default=48)
    ap.add_argument("--per", type=int, default=2, help="seeds per layout / reference")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/adapters.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    gligen = ensure_run(args.gligen, "recipes/shapes-gligen.yaml")
    ip = ensure_run(args.ip, "recipes/shapes-ip-adapter.yaml")
    g_result, g_pics = gligen_experiment(gligen, args.layouts, args.per, args.seed)
    ip_result, ip_pics = ip_experiment(ip, args.references, args.per, args.seed)
    settings = gligen.settings

    def about(run) -> dict:
        info = run.info()
        last = info["last_metrics"] or {}
        return {
            "run": str(run.path),
            "step": run.step,
            "train_seconds": round(train_seconds(run.path), 1),
            "parameters": info["parameters"],
            "frozen_parameters": info["frozen_parameters"],
            "last_metrics": last,
        }

    result = {
        "sampler": settings.sampler,
        "steps": settings.steps,
        "guidance_scale": settings.guidance_scale,
        "seed": args.seed,
        "gligen_run": about(gligen),
        "ip_run": about(ip),
        "gligen": g_result,
        "ip_adapter": ip_result,
    }
    write_json(args.out, result)
    atomic_write_text(ROOT / "docs" / "adapters.md", markdown(result))
    picture(g_pics, ip_pics, ROOT / "docs" / "images" / "adapters.png")
    print(markdown(result))


if __name__ == "__main__":
    main()
