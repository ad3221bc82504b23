"""Image-to-image on held-out photographs and faces, Palette's protocol in spirit: trained conditional flows (SR3 /
Palette) and pix2pix against their baselines, every row of a table scored alike on the same inputs.

Tables (PLAN; each recipe's own budget; run with OMP_NUM_THREADS=1):
  superres        8→32: recipes/photos-superres.yaml (paired_flow), photos-superres-regression.yaml; bicubic
  superres64      16→64: photos-superres64.yaml, photos-superres64-regression.yaml; bicubic
  colorize        photos-colorize.yaml (paired_flow), photos-colorize-regression.yaml, photos-pix2pix.yaml; grey
  inpaint         photos-inpaint.yaml (paired_flow), and an unconditional flow of the same U-Net, path, steps and
                  batch (that recipe with method.kind flow) that inpaints training-free by replacement (hard and
                  feathered mask) and by RePaint's resampling (genlab.edit)
  outpaint        photos-outpaint.yaml (paired_flow) and the same unconditional flow, training-free
  inpaint-faces   faces-inpaint.yaml (paired_flow) and its unconditional flow (lfw_subset faces, held out by image)
then scores each row with genlab.metrics.image2image on the same n held-out inputs (photographs or faces no model
saw) and on seen ones, the same degradations and masks (one seed), k outputs per input, each run's recipe sample
settings: PSNR, SSIM, FD (+ the truth-vs-truth floor), diversity, NFE, and the seam (inpaint, outpaint) or
colourfulness and photo accuracy (colorize). More trained runs join their task's table with --extra RUN ... .
Writes benchmarks/results/image2image.json, docs/images/image2image-TABLE[-seen].png (rows: input | outputs | truth)
and docs/image2image.md (generated from the JSON: --doc-only rewrites it from an existing JSON).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402
from genlab.atomic import atomic_path, atomic_write_text  # noqa: E402
from genlab.config import load_recipe, read_yaml, recipe_from_dict  # noqa: E402
from genlab.data import build_dataset  # noqa: E402
from genlab.data.photos import TRAIN_PHOTOS, photo_origins  # noqa: E402
from genlab.edit import edit  # noqa: E402
from genlab.edit.degrade import upsample  # noqa: E402
from genlab.methods.base import as_picture  # noqa: E402
from genlab.metrics.image2image import (  # noqa: E402
    RENDERINGS,
    photo_feature_net,
    score_translations,
    translate_heldout,
)
from genlab.plots import save_samples  # noqa: E402
from genlab.runs import Run, load_run, train_seconds  # noqa: E402
from genlab.settings import Samples  # noqa: E402
from genlab.train import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
TASK_FIELDS = ("task", "factor", "box", "window", "predict")  # paired_flow's keys that a plain flow does not have


class Table(NamedTuple):
    """One table: the image task it scores, the trained run whose degradation (and data) every row shares, the
    rows (label, recipe stem or a baseline name) and, for training-free rows, the unconditional flow's run name
    (trained from `paired`'s recipe as a plain flow)."""

    task: str
    paired: str
    rows: tuple[tuple[str, str], ...]
    flow: str | None = None
    picture: str = ""


#: the tables, by name
PLAN = {
    "superres": Table(
        "superres",
        "photos-superres",
        (("bicubic", "bicubic"), ("regression", "photos-superres-regression"), ("paired_flow", "photos-superres")),
        picture="Rows: the 8×8 input (nearest-upsampled) | bicubic | regression | paired_flow (two draws) | truth.",
    ),
    "superres64": Table(
        "superres",
        "photos-superres64",
        (
            ("bicubic", "bicubic"),
            ("regression", "photos-superres64-regression"),
            ("paired_flow", "photos-superres64"),
        ),
        picture="Rows: the 16×16 input (nearest-upsampled) | bicubic | regression | paired_flow (two draws) | truth.",
    ),
    "colorize": Table(
        "colorize",
        "photos-colorize",
        (
            ("grey (no colour)", "grey"),
            ("regression", "photos-colorize-regression"),
            ("pix2pix (L1 + cGAN)", "photos-pix2pix"),
            ("paired_flow", "photos-colorize"),
        ),
        picture="Rows: the grey input | grey (no colour) | regression | pix2pix | paired_flow (two draws) | truth.",
    ),
    "inpaint": Table(
        "inpaint",
        "photos-inpaint",
        (
            ("replacement (training-free)", "replacement"),
            ("replacement + mask blur 1 px", "replacement-blur"),
            ("RePaint (training-free)", "repaint"),
            ("paired_flow (Palette)", "photos-inpaint"),
        ),
        flow="photos-flow",
        picture="Rows: the input (made pixels black) | replacement | replacement, mask blurred | RePaint | "
        "paired_flow (two draws each) | truth.",
    ),
    "outpaint": Table(
        "outpaint",
        "photos-outpaint",
        (
            ("replacement (training-free)", "replacement"),
            ("RePaint (training-free)", "repaint"),
            ("paired_flow (Palette)", "photos-outpaint"),
        ),
        flow="photos-flow",
        picture="Rows: the input (made pixels black) | replacement | RePaint | paired_flow (two draws each) | truth.",
    ),
    "inpaint-faces": Table(
        "inpaint",
        "faces-inpaint",
        (
            ("replacement (training-free)", "replacement"),
            ("RePaint (training-free)", "repaint"),
            ("paired_flow (Palette)", "faces-inpaint"),
        ),
        flow="faces-flow",
        picture="Rows: the input (made pixels black) | replacement | RePaint | paired_flow (two draws each) | truth.",
    ),
}
#: the recipe each unconditional flow is made from (as a plain flow: `unconditional_recipe`)
FLOW_FROM = {"photos-flow": "photos-inpaint", "faces-flow": "faces-inpaint"}
MASK_BLUR = 1.0  # the blurred replacement row's feather (std, pixels)
PICTURE_ROWS = 6


class Bicubic:
    """The bicubic baseline of super-resolution as a translator: the trained run's degradation, no model."""

    image_task, device = "superres", torch.device("cpu")

    def __init__(self, like):
        self.like = like

    def degrade(self, x, *, generator=None):
        return self.like.degrade(x, generator=generator)

    def translate(self, source, *, mask=None, settings=None, generator=None) -> Samples:
        return Samples(upsample(source, self.like.task.size), 0, "bicubic")


class Grey:
    """The no-colour reference of colorization: the grey input on every channel."""

    image_task, device = "colorize", torch.device("cpu")

    def __init__(self, like):
        self.like = like

    def degrade(self, x, *, generator=None):
        return self.like.degrade(x, generator=generator)

    def translate(self, source, *, mask=None, settings=None, generator=None) -> Samples:
        return Samples(source.expand(-1, 3, -1, -1), 0, "grey")


class TrainingFree:
    """Inpainting or outpainting by an unconditional flow run through genlab.edit (replacement; RePaint when
    resample > 1; a feathered mask when mask_blur > 0), with the trained run's masks."""

    def __init__(self, flow, like, *, resample: int = 1, jump: int = 5, mask_blur: float = 0.0):
        self.flow, self.like, self.resample, self.jump, self.mask_blur = flow, like, resample, jump, mask_blur
        self.device, self.image_task = flow.device, like.image_task

    def degrade(self, x, *, generator=None):
        return self.like.degrade(x, generator=generator)

    def translate(self, source, *, mask=None, settings=None, generator=None) -> Samples:
        return edit(
            self.flow,
            source,
            task="inpaint",  # the trained run's mask says what to make, a box or a border
            mask=mask,
            settings=settings,
            generator=generator,
            resample=self.resample,
            jump=self.jump,
            mask_blur=self.mask_blur,
        )


BASELINES = {"bicubic": Bicubic, "grey": Grey}
TRAINING_FREE = {"replacement": {}, "replacement-blur": {"mask_blur": MASK_BLUR}, "repaint": {"resample": None}}


def unconditional_recipe(path: Path, name: str):
    """The paired_flow recipe at `path` as an unconditional flow of the same U-Net, path, target, steps and batch."""
    tree = read_yaml(path)
    tree["name"] = name
    tree["method"] = {k: v for k, v in tree["method"].items() if k not in TASK_FIELDS} | {"kind": "flow"}
    return recipe_from_dict(tree, f"{path} (as an unconditional flow)")


def trained(recipe, folder: Path, *, reuse: bool) -> tuple[Run, dict]:
    """The run of `recipe` in `folder` (trained now unless `reuse` finds one there), and how it was trained (its
    training wall time as the trainer recorded it, so a reused run reports it too)."""
    if not (reuse and (folder / "checkpoint").exists()):
        if folder.exists():
            raise SystemExit(f"{folder} exists: pass --reuse to score it, or remove it")
        train(recipe, folder, progress=False)
    run = load_run(folder)
    minutes = round(train_seconds(folder) / 60, 2)
    print(f"{recipe.name}: {run.step} steps, {minutes} training minutes")
    return run, {
        "recipe": run.recipe.name,
        "kind": run.recipe.method.kind,
        "steps": run.step,
        "batch_size": run.recipe.train.batch_size,
        "parameters": sum(p.numel() for p in run.method.parameters()),
        "train_minutes": minutes,
    }


def score(label: str, translator, data, *, settings, n: int, k: int, seed: int, info: dict) -> tuple[dict, dict]:
    """(table row, translate_heldout result) of one translator on the held-out data."""
    start = time.perf_counter()
    res = translate_heldout(translator, data, n=n, k=k, seed=seed, settings=settings)
    ms = (time.perf_counter() - start) * 1000 / (n * k)
    metrics = score_translations(res, data, task=translator.image_task, seed=seed)
    print(label, {key: v for key, v in metrics.items() if not isinstance(v, str)})
    return {"method": label, **info, **metrics, "ms_per_output": round(ms, 2)}, res


def picture(results: list[tuple[str, dict]], path: Path, *, rows: int = PICTURE_ROWS) -> None:
    """Rows of input | each method's outputs (two of a stochastic one) | truth, for the first `rows` inputs."""
    first = results[0][1]
    truth = first["truth"][:rows]
    source = as_picture(first["source"][:rows], truth)
    if first["mask"] is not None:
        source = source - first["mask"][:rows]  # made pixels shown black
    columns = [source]
    for _, res in results:
        outs = res["outputs"][:, :rows]
        stochastic = len(outs) > 1 and not torch.equal(outs[0], outs[1])
        columns += [outs[0], outs[1]] if stochastic else [outs[0]]
    columns.append(truth)
    grid = torch.stack(columns, 1).flatten(0, 1)  # (rows·cols, C, H, W)
    with atomic_path(path) as tmp:
        save_samples(grid, tmp, nrow=len(columns))


SETS = {
    "photos": {
        "heldout": "held-out photographs (chelsea, rocket, flower: no model saw them)",
        "seen": "training photographs, new patch positions (in distribution; patches may overlap training ones)",
    },
    "faces": {
        "heldout": "held-out faces (lfw_subset test split: no model saw them)",
        "seen": "the training faces (seen in training: what memorising them scores)",
    },
}


def seen_photos(recipe):
    """The data config of the 'seen' set: as many patches as the test split, new positions (seed + 1) of the
    training photographs."""
    return dataclasses.replace(recipe.data, n=recipe.data.n_test, seed=recipe.data.seed + 1)


def eval_sets(recipe) -> dict[str, object]:
    """photos: {'heldout': the test split (photographs no model saw), 'seen': new patch positions of the training
    photographs (another seed: in distribution, but patches may overlap training patches)}; faces: {'heldout': the
    test faces, 'seen': the training faces themselves}."""
    if recipe.data.kind == "photos":
        return {
            "heldout": build_dataset(recipe.data, split="test"),
            "seen": build_dataset(seen_photos(recipe), split="train"),
        }
    return {"heldout": build_dataset(recipe.data, split="test"), "seen": build_dataset(recipe.data, split="train")}


def photo_labels(recipe, split: str) -> torch.Tensor | None:
    """(N,) the index in TRAIN_PHOTOS of each patch's source photograph for `eval_sets`' 'seen' set (what the photo
    feature network names), None for other sets."""
    if split != "seen" or recipe.data.kind != "photos":
        return None
    return torch.tensor([TRAIN_PHOTOS.index(o.photo) for o in photo_origins(seen_photos(recipe), "train")])


@torch.no_grad()
def photo_accuracy(images: torch.Tensor, photos: torch.Tensor) -> float:
    """Share of images (n, 3, 32, 32) whose source photograph the photo feature network names (its 21 classes are
    photograph × rendering; the rendering is ignored): Palette's classifier-accuracy-of-result for colorization."""
    net = photo_feature_net()
    logits = net.module.logits(images.float())
    return float((logits.argmax(1) // len(RENDERINGS) == photos).double().mean())


def translators(name: str, args, runs_dir: Path) -> tuple[list[tuple[str, object, object, dict]], dict]:
    """Train what table `name` needs; ([(label, translator, settings, info)] in PLAN order, {run: how trained})."""
    plan = PLAN[name]
    runs, infos = {}, {}
    for _, stem in plan.rows:
        if stem not in BASELINES and stem not in TRAINING_FREE:
            runs[stem], infos[stem] = trained(load_recipe(RECIPES / f"{stem}.yaml"), runs_dir / stem, reuse=args.reuse)
    if plan.flow:
        recipe = unconditional_recipe(RECIPES / f"{FLOW_FROM[plan.flow]}.yaml", plan.flow)
        runs[plan.flow], infos[plan.flow] = trained(recipe, runs_dir / plan.flow, reuse=args.reuse)
    paired = runs[plan.paired]
    rows = []
    for label, stem in plan.rows:
        if stem in BASELINES:
            rows.append((label, BASELINES[stem](paired.method), None, {"run": None}))
        elif stem in TRAINING_FREE:
            opts = {k: (args.repaint_resample if v is None else v) for k, v in TRAINING_FREE[stem].items()}
            flow = runs[plan.flow]
            info = {"run": plan.flow, **infos[plan.flow], **opts}
            rows.append((label, TrainingFree(flow.method, paired.method, **opts), flow.settings, info))
        else:
            rows.append((label, runs[stem].method, runs[stem].settings, {"run": stem, **infos[stem]}))
    return rows, infos


def run_task(name: str, args, runs_dir: Path, extra: list[Run]) -> tuple[dict[str, list[dict]], dict, float]:
    """Score every row of table `name` on each evaluation set and draw its pictures; ({set: rows}, runs trained,
    minutes the scoring took)."""
    plan = PLAN[name]
    rows, infos = translators(name, args, runs_dir)
    recipe = load_recipe(RECIPES / f"{plan.paired}.yaml")
    for run in (r for r in extra if r.method.image_task == plan.task and r.recipe.data == recipe.data):
        info = {"run": str(run.path), "recipe": run.recipe.name, "kind": run.recipe.method.kind, "steps": run.step}
        rows.append((f"{run.recipe.method.kind} ({run.path.name})", run.method, run.settings, info))
    tables, start = {}, time.perf_counter()
    for where, data in eval_sets(recipe).items():
        scored = [score(label, t, data, settings=st, n=args.n, k=args.k, seed=args.seed, info=info)
                  for label, t, st, info in rows]  # fmt: skip
        photos = photo_labels(recipe, where)
        if plan.task == "colorize" and photos is not None:
            for row, res in scored:
                row["photo_accuracy"] = photo_accuracy(res["outputs"][0], photos[res["index"]])
                row["photo_accuracy_truth"] = photo_accuracy(res["truth"], photos[res["index"]])
        tables[where] = [row for row, _ in scored]
        suffix = "" if where == "heldout" else f"-{where}"
        picture(
            [(row["method"], res) for row, res in scored], ROOT / "docs" / "images" / f"image2image-{name}{suffix}.png"
        )
    return tables, infos, round((time.perf_counter() - start) / 60, 2)


# -- the document, from the JSON


def _fmt(v, digits: int = 2) -> str:
    if v is None:
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def table(rows: list[dict]) -> str:
    """A markdown table of rows (any list of runs of one task)."""
    extra = [key for key in ("seam", "interior", "colorfulness", "photo_accuracy") if any(key in r for r in rows)]
    head = ["method", "train min", "PSNR dB ↑", "SSIM ↑", "FD ↓", "diversity", "NFE", "ms/output", *extra]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [
            r["method"],
            _fmt(r.get("train_minutes")),
            _fmt(r["psnr_db"]),
            _fmt(r["ssim"], 3),
            _fmt(r["fd"]),
            _fmt(r["diversity"], 3),
            str(r["nfe"]),
            _fmt(r["ms_per_output"]),
            *[_fmt(r.get(key), 3 if key == "photo_accuracy" else 2) for key in extra],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pattern(rows: list[dict]) -> str:
    """Which row wins each column (the pattern Palette reports, checked rather than assumed)."""
    best = {
        "PSNR": max(rows, key=lambda r: r["psnr_db"])["method"],
        "SSIM": max(rows, key=lambda r: r["ssim"])["method"],
        "FD": min(rows, key=lambda r: r["fd"])["method"],
        "diversity": max(rows, key=lambda r: r["diversity"])["method"],
    }
    if all("seam" in r and r["seam"] is not None for r in rows):
        best["seam closest to 1"] = min(rows, key=lambda r: abs(r["seam"] - 1))["method"]
    if all("photo_accuracy" in r for r in rows):
        best["photo accuracy"] = max(rows, key=lambda r: r["photo_accuracy"])["method"]
    return "Best per column: " + "; ".join(f"{k}: **{v}**" for k, v in best.items()) + "."


def _row(result: dict, name: str, where: str, label: str) -> dict | None:
    rows = result["tables"].get(name, {}).get("sets", {}).get(where, [])
    return next((r for r in rows if r["method"] == label), None)


def reading(result: dict) -> list[str]:
    """A few sentences that read the tables, every number taken from them."""
    lines = ["## Reading the tables", ""]
    held, seen = _row(result, "superres", "heldout", "bicubic"), _row(result, "superres", "seen", "bicubic")
    if held and seen:
        lines.append(
            f"- The held-out photographs are far smoother than the training ones: bicubic 4× upsampling scores "
            f"{held['psnr_db']:.1f} dB on them against {seen['psnr_db']:.1f} dB on new patches of the training "
            "photographs. Models trained for a few CPU minutes on the training photographs (star fields, retina and "
            "tissue scans, a motorcycle, a temple roof) bring that texture to smooth fur, sky and petals: on "
            "held-out photographs a generative model is judged out of its distribution, which the `seen` tables "
            "separate from the method itself. The faces table has a held-out set from the training distribution."
        )
    lines += [
        "- PSNR rewards the mean of the plausible outputs (regression, bicubic); FD rewards outputs whose "
        "statistics match real patches; a sample of a generative model pays in PSNR for every detail it invents, "
        "which is Palette's pattern. 'Best per column' under each table states what was measured, not what was "
        "expected.",
        "- FD below the floor (the truths against other real images at the same n) is within the noise of this "
        "n: rows there do not differ measurably in FD.",
        "- One seed and one training run per row ("
        + ", ".join(sorted({f"{r['steps']} steps of batch {r['batch_size']}" for r in result["runs"].values()}))
        + ", one CPU core): differences of a few tenths of a dB or a few FD units may be run-to-run noise, which "
        "was not measured.",
        "",
    ]
    return lines


def render_doc(result: dict) -> str:
    s, net = result["settings"], result["feature_net"]
    tables = {name: result["tables"][name] for name in PLAN if name in result["tables"]}  # PLAN's order
    floors = "; ".join(
        name + " " + ", ".join(f"{where} {_fmt(rows[0]['fd_floor'])}" for where, rows in t["sets"].items())
        for name, t in tables.items()
    )
    colour = tables.get("colorize", {}).get("sets", {})
    parts = [
        "# Image-to-image on real photos and faces: trained conditional flows against their baselines",
        "",
        "Generated by `benchmarks/image2image.py` from `benchmarks/results/image2image.json` (do not edit by hand).",
        "",
        f"Every row of a table is scored on the same inputs (up to {s['n']}), with the same degradations and masks "
        f"(seed {s['seed']}) and {s['k']} outputs per input, by `genlab.metrics.image2image`: PSNR and SSIM of the "
        "first output against the truth; FD of the first outputs against the truths, for photos in genlab's photo "
        f"feature network ({net['name']}: a SmallCNN trained to name the training photograph and the rendering, as "
        f"is / blurred / noisy, of a 32×32 patch; held-out accuracy {_fmt(net['heldout_accuracy'], 3)}; a 64×64 "
        "patch is scored as its four 32×32 tiles, at the same pixel scale), for faces in 8×8 pixels; diversity, "
        "the mean pairwise RMS distance between the outputs of one input (0 = deterministic); NFE per output; wall "
        "time per output on one CPU core. Seam (inpaint, outpaint): gradient energy across the mask boundary over "
        "the truth's at the same pixel pairs (1 = as smooth as the real image, > 1 a visible seam, < 1 smoother "
        "than real), beside interior, the same ratio for pairs inside the made region (grain raises both, a seam "
        "only the seam). Colourfulness (colorize): Hasler & Süsstrunk's M of the outputs (the truths': "
        + ", ".join(f"{where} {_fmt(rows[0].get('colorfulness_truth'))}" for where, rows in colour.items())
        + "). Photo accuracy (colorize, seen photographs only: the classifier knows no held-out photograph): the "
        "share of outputs whose source photograph the photo network names, Palette's classifier accuracy of the "
        "result (the truths score "
        + ", ".join(
            _fmt(rows[0].get("photo_accuracy_truth"), 3) for rows in colour.values() if "photo_accuracy" in rows[0]
        )
        + "). FD floor, the truths against as many other images of the same set (what a perfect model scores at "
        f"this n): {floors}. Every trained row of a table uses the same network size, trained with "
        "`OMP_NUM_THREADS=1` for the minutes shown; sample settings are each recipe's.",
        "",
    ]
    parts += reading(result)
    for name, t in tables.items():
        parts += [f"## {name} ({t['data']})", ""]
        for where, rows in t["sets"].items():
            suffix = "" if where == "heldout" else f"-{where}"
            head = f"### {name}: {t['set_descriptions'][where]}"
            parts += [head, "", f"{rows[0]['n']} inputs.", "", table(rows), "", pattern(rows), ""]
            parts += [f"![{name}, {where}](images/image2image-{name}{suffix}.png)", "", f"*{t['picture']}*", ""]
    return "\n".join(parts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=256, help="held-out inputs per row")
    p.add_argument("--k", type=int, default=4, help="outputs per input")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tasks", nargs="+", default=list(PLAN), choices=list(PLAN))
    p.add_argument("--repaint-resample", type=int, default=3, help="RePaint passes per block of 5 steps")
    p.add_argument("--runs", default=str(ROOT / "benchmarks" / "out" / "image2image"), help="run folders")
    p.add_argument("--reuse", action="store_true", help="score the runs already in --runs instead of training")
    p.add_argument("--extra", nargs="*", default=[], help="more trained runs (e.g. pix2pix): rows of their task")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "image2image.json"))
    p.add_argument("--doc", default=str(ROOT / "docs" / "image2image.md"))
    p.add_argument("--doc-only", action="store_true", help="rewrite --doc from the JSON at --out")
    args = p.parse_args()
    if args.doc_only:
        atomic_write_text(args.doc, render_doc(json.loads(Path(args.out).read_text())))
        return
    start = time.perf_counter()
    extra = [load_run(r) for r in args.extra]
    previous = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
    tables, runs = dict(previous.get("tables", {})), dict(previous.get("runs", {}))  # other tables are kept
    minutes = dict(previous.get("score_minutes", {}))
    for name in args.tasks:
        sets, trained_runs, minutes[name] = run_task(name, args, Path(args.runs), extra)
        recipe = load_recipe(RECIPES / f"{PLAN[name].paired}.yaml")
        tables[name] = {
            "task": PLAN[name].task,
            "data": f"{recipe.data.kind}, {recipe.data.size}×{recipe.data.size}",
            "set_descriptions": SETS[recipe.data.kind],
            "picture": PLAN[name].picture,
            "sets": sets,
        }
        runs.update(trained_runs)
    net = photo_feature_net()
    result = {
        "benchmark": "image2image",
        "settings": {"n": args.n, "k": args.k, "seed": args.seed},
        "feature_net": {"name": net.name, "heldout_accuracy": net.heldout_accuracy},
        "runs": runs,
        "tables": tables,
        "score_minutes": minutes,
        "train_minutes_total": round(sum(r["train_minutes"] for r in runs.values()), 2),
        "score_minutes_total": round(sum(minutes.values()), 2),
        "minutes_this_invocation": round((time.perf_counter() - start) / 60, 2),
    }
    write_json(args.out, result)
    atomic_write_text(args.doc, render_doc(json.loads(Path(args.out).read_text())))


if __name__ == "__main__":
    main()
