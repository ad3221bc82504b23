"""Few-step leaderboard: every distillation method at 1, 2, 4, 8 NFE against its teacher at 1…64 NFE, same data,
same metric, one command.

digits (8×8, class-conditional, the shipped recipes/digits-flow.yaml teacher with CFG s = 2): FD in genlab's digits
feature space against the train split (floor: real held-out digits) and class accuracy (the feature net's argmax
equals the requested class), n samples with the classes cycled. toy2d (moons, recipes/toy2d-flow.yaml): exact W2
of n samples vs fresh data, divided by the real-vs-real W2 at the same n (1 = as good as data).

The teacher row at each NFE budget is its best sampler there (of euler, heun, dpmpp_2m, unipc; all are kept in the
JSON). NFE counts sampler calls; the digits teacher's CFG makes each call two network passes ("passes"), while every
student samples without CFG (it learned the guided prediction), one pass per NFE — except the guidance-distilled
student, whose point is exactly that (it is compared at equal sampler steps).

Students (`genlab distill` defaults unless said, budgets scaled by --scale):
- 2-RF: reflow on 4096 couplings (--pairs) from the teacher's own sampler; 2-RF+distill: Liu et al.'s 1-step
  stage on couplings of the 2-RF run (euler, 8 steps);
- progressive: a chain of one-round runs 16 → 8 → 4 → 2 → 1 DDIM steps, each student the next one's teacher;
- CD: consistency distillation (Euler teacher step); CT: consistency training from the teacher's weights (easy
  consistency tuning, no teacher calls);
- MeanFlow (teacher velocity, adaptive weight p = 1) and its p = 0 ablation (plain squared error);
- guidance distillation (digits only): the scale as an input, sampled with the teacher's sampler.
Training cost: CPU minutes (the trainer's own clock) and teacher network passes spent.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402
from digits_samplers import Scorer, budget_steps, ensure_run  # noqa: E402
from genlab.atomic import atomic_path, atomic_write_text  # noqa: E402
from genlab.data import build_dataset  # noqa: E402
from genlab.data.digits import DigitsConfig  # noqa: E402
from genlab.data.toy2d import sample_toy2d  # noqa: E402
from genlab.distill import distill, straightness  # noqa: E402
from genlab.runs import load_run, train_seconds  # noqa: E402
from toy2d_w2 import w2  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NFES = (1, 2, 4, 8)
TEACHER_NFES = (1, 2, 4, 8, 16, 32, 64)
TEACHER_SAMPLERS = ("euler", "heun", "dpmpp_2m", "unipc")


def students(dataset: str, scale: float) -> list[dict]:
    """The leaderboard's students: label, method, teacher (a label, or 'teacher'), overrides, steps to sample at."""

    def steps(k: int) -> str:
        return f"--train.steps={max(2, round(k * scale))}"

    def per_round(k: int) -> str:
        return f"--method.steps_per_round={max(1, round(k * scale))}"

    batch = "--train.batch_size=64" if dataset == "digits" else "--train.batch_size=256"
    rows = [
        {"label": "2-RF", "method": "reflow", "teacher": "teacher", "args": [steps(800), batch], "nfe": NFES},
        {
            "label": "2-RF+distill",
            "method": "reflow",
            "teacher": "2-RF",
            "args": [steps(600), batch, "--method.one_step=true"],
            "pairs_steps": 8,
            "nfe": (1,),
        },
    ]
    for k, n in enumerate((8, 4, 2, 1)):
        rows.append(
            {
                "label": f"progressive {n}",
                "method": "progressive",
                "teacher": "teacher" if k == 0 else f"progressive {2 * n}",
                "args": ["--method.rounds=1", f"--method.teacher_steps={2 * n}", per_round(300), batch],
                "nfe": (n,),
            }
        )
    rows += [
        {"label": "CD", "method": "consistency", "teacher": "teacher", "args": [steps(600), batch], "nfe": NFES},
        {
            "label": "CT (from teacher)",
            "method": "consistency",
            "teacher": "teacher",
            "args": [steps(600), batch, "--method.mode=train"],
            "nfe": NFES,
        },
        {"label": "MeanFlow", "method": "meanflow", "teacher": "teacher", "args": [steps(600), batch], "nfe": NFES},
        {
            "label": "MeanFlow p=0",
            "method": "meanflow",
            "teacher": "teacher",
            "args": [steps(600), batch, "--method.adaptive_p=0"],
            "nfe": NFES,
        },
    ]
    if dataset == "digits":
        rows.append(
            {
                "label": "guidance distill",
                "method": "guidance_distill",
                "teacher": "teacher",
                "args": [steps(600), batch],
                "nfe": (3, 7, 15),  # heun: 2, 4, 8 steps
            }
        )
    return rows


def teacher_passes(run, n_pairs: int, pairs_nfe: int) -> int:
    """Teacher network passes a student's training spent (from its recipe and the method's definition)."""
    m, t = run.recipe.method, run.recipe.train
    per_call = run.method.teacher_evaluations()
    examples = t.steps * t.batch_size
    if m.kind == "reflow":
        return n_pairs * pairs_nfe * per_call
    if m.kind == "progressive":
        return examples * 2 * per_call
    if m.kind == "consistency":
        return 0 if m.mode == "train" else examples * per_call * (2 if m.solver == "heun" else 1)
    if m.kind == "meanflow":
        return examples * per_call if m.velocity == "teacher" else 0
    if m.kind == "guidance_distill":
        return examples * 2  # conditional and unconditional halves
    return 0


class DigitsJudge:
    def __init__(self, n: int):
        self.n = n
        train = build_dataset(DigitsConfig(), split="train")
        held = build_dataset(DigitsConfig(), split="test")
        self.scorer = Scorer(train.x)
        self.floor = {**self.scorer(held.x, held.labels), "n": len(held.x)}

    def __call__(self, run, **opts) -> dict:
        out = run.sample(self.n, seed=0, **opts)
        return {"nfe": out.nfe, **self.scorer(out.x, out.cond)}

    headline = "fd"


class ToyJudge:
    def __init__(self, n: int, name: str = "moons"):
        self.n, self.name = n, name
        g = torch.Generator().manual_seed(1)
        self.fresh_a, fresh_b = sample_toy2d(name, n, g), sample_toy2d(name, n, g)
        self.floor = {"w2": w2(fresh_b, self.fresh_a), "n": n}

    def __call__(self, run, **opts) -> dict:
        out = run.sample(self.n, seed=123, **opts)
        value = w2(out.x, self.fresh_a)
        return {"nfe": out.nfe, "w2": value, "w2_ratio": value / self.floor["w2"]}

    headline = "w2_ratio"


def teacher_rows(run, judge, *, guidance: float, samplers=TEACHER_SAMPLERS) -> dict:
    """Per sampler, the scores at each NFE budget (the most steps within it), at CFG scale `guidance`."""
    lines = {}
    grid = run.settings.grid
    for sampler in samplers:
        rows = []
        for budget, n_steps in zip(TEACHER_NFES, _steps_within(run, grid, sampler)):
            if n_steps is None:
                continue
            start = time.perf_counter()
            scores = judge(run, sampler=sampler, steps=n_steps, guidance_scale=guidance)
            rows.append({"budget": budget, "steps": n_steps, **scores})
            rows[-1]["seconds"] = round(time.perf_counter() - start, 2)
            print(f"  teacher {sampler:9s} {rows[-1]}", flush=True)
        lines[sampler] = rows
    return lines


def _steps_within(run, grid, sampler) -> list[int | None]:
    found = budget_steps(run.method, grid, sampler, budgets=TEACHER_NFES)
    return [found[b] for b in TEACHER_NFES]


def best_teacher(lines: dict, key: str) -> list[dict]:
    """At each budget, the sampler with the lowest `key`."""
    out = []
    for budget in TEACHER_NFES:
        cands = [dict(r, sampler=s) for s, rows in lines.items() for r in rows if r["budget"] == budget]
        if cands:
            out.append(min(cands, key=lambda r: r[key]))
    return out


def run_dataset(
    dataset: str, work: Path, *, n: int, scale: float, pairs: int, guidance: float, only: set[str] | None
) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    recipe = ROOT / "recipes" / ("digits-flow.yaml" if dataset == "digits" else "toy2d-flow.yaml")
    teacher_info = ensure_run(work / "teacher", recipe)
    teacher = load_run(work / "teacher")
    judge = DigitsJudge(n) if dataset == "digits" else ToyJudge(n)
    print(f"{dataset}: teacher", flush=True)
    guidance = guidance if teacher.num_classes else 1.0
    lines = teacher_rows(teacher, judge, guidance=guidance)
    result = {
        "teacher": {
            **teacher_info,
            "train_minutes": round(train_seconds(work / "teacher") / 60, 2),
            "settings": teacher.settings.replace(guidance_scale=guidance).as_dict(),
            "passes_per_nfe": 2 if guidance != 1 else 1,
            "lines": lines,
            "best": best_teacher(lines, judge.headline),
            # the teacher as shipped (its recipe's CFG scale), for the guidance-distilled student
            "recipe_guidance": teacher.settings.guidance_scale,
            "recipe_guidance_lines": teacher_rows(
                teacher, judge, guidance=teacher.settings.guidance_scale, samplers=("heun",)
            )
            if teacher.num_classes
            else None,
            "straightness": straightness(
                teacher.method,
                250,
                cond=torch.arange(250) % teacher.num_classes if teacher.num_classes else None,
                guidance=guidance,
            ),
        },
        "floor": judge.floor,
        "students": {},
    }
    folders = {"teacher": work / "teacher"}
    for spec in students(dataset, scale):
        label = spec["label"]
        folder = work / label.replace(" ", "_").replace("+", "_").replace("(", "").replace(")", "")
        folders[label] = folder
        if only and label not in only and not any(o.startswith(label) for o in only):
            continue
        parent = folders[spec["teacher"]]
        first = spec["teacher"] == "teacher" and spec["method"] != "guidance_distill"
        extra = [f"--method.teacher_guidance={guidance}"] if first else []
        if not (folder / "checkpoint").exists():
            shutil.rmtree(folder, ignore_errors=True)
            print(f"{dataset}: {label} ← {spec['teacher']}", flush=True)
            distill(
                parent,
                spec["method"],
                out=folder,
                overrides=[*spec["args"], *extra],
                pairs=pairs,
                pairs_steps=spec.get("pairs_steps"),
                progress=False,
            )
        run = load_run(folder)
        rows = []
        for nfe in spec["nfe"]:
            opts = {"steps": (nfe + 1) // 2 if spec["method"] == "guidance_distill" else nfe}
            if spec["method"] == "progressive":
                opts = {}
            rows.append(judge(run, **opts))
            print(f"  {label:18s} {rows[-1]}", flush=True)
        pairs_nfe = 0
        if spec["method"] == "reflow":
            import numpy as np

            with np.load(run.recipe.method.pairs) as z:
                prov = json.loads(str(z["provenance"]))
            pairs_nfe = prov["nfe_per_sample"]
            n_pairs = prov["n"]
        else:
            n_pairs = 0
        entry = {
            "method": spec["method"],
            "teacher": spec["teacher"],
            "overrides": [*spec["args"], *extra],
            "train_minutes": round(train_seconds(folder) / 60, 2),
            "teacher_passes": teacher_passes(run, n_pairs, pairs_nfe),
            "rows": rows,
        }
        if spec["method"] in ("reflow",) and run.method.path.name == "rectified":
            cond = None if not run.num_classes else torch.arange(250) % run.num_classes
            entry["straightness"] = straightness(run.method, 250 if cond is not None else 256, cond=cond)
        result["students"][label] = entry
    return result


def plot(results: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4.8), squeeze=False)
    for ax, (dataset, res) in zip(axes[0], results.items()):
        key = "fd" if dataset == "digits" else "w2_ratio"
        best = res["teacher"]["best"]
        ax.plot([r["nfe"] for r in best], [r[key] for r in best], "k-o", label="teacher (best sampler)")
        prog = [(s["rows"][0]["nfe"], s["rows"][0][key]) for k, s in res["students"].items() if k.startswith("prog")]
        if prog:
            ax.plot(*zip(*sorted(prog)), "-s", label="progressive chain")
        for label, s in res["students"].items():
            if label.startswith(("prog", "guidance")):  # the guidance student distills the CFG teacher: table only
                continue
            ax.plot([r["nfe"] for r in s["rows"]], [r[key] for r in s["rows"]], "-o", label=label, ms=4)
        floor = res["floor"]["fd"] if dataset == "digits" else 1.0
        ax.axhline(floor, color="k", ls=":", lw=0.8, label="real data")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("NFE (sampler calls)")
        ax.set_ylabel("FD (digits features)" if dataset == "digits" else "W2 / real-vs-real W2")
        ax.set_title(dataset)
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def table(results: dict) -> str:
    """The leaderboard as markdown: per dataset, the headline metric at each NFE, cost and (digits) accuracy."""
    lines = []
    for dataset, res in results.items():
        key, name = ("fd", "FD") if dataset == "digits" else ("w2_ratio", "W2 ratio")
        cols = sorted({r["nfe"] for s in res["students"].values() for r in s["rows"]} | set(TEACHER_NFES))
        floor = res["floor"]
        lines += [
            f"### {dataset}: {name} by NFE (lower is better)",
            "",
            f"Real data: {name} {floor['fd'] if dataset == 'digits' else 1.0:.2f}"
            + (f", class accuracy {floor['class_accuracy']:.3f}" if dataset == "digits" else "")
            + f". Teacher: {res['teacher']['train_minutes']} CPU min,"
            f" {res['teacher']['passes_per_nfe']} network pass(es) per NFE.",
            "",
            "| model | "
            + " | ".join(str(c) for c in cols)
            + " | train min | teacher passes |"
            + (" acc. @ fewest NFE |" if dataset == "digits" else ""),
            "|---|" + "---:|" * (len(cols) + 2 + (dataset == "digits")),
        ]
        best = {r["nfe"]: r for r in res["teacher"]["best"]}
        cells = [f"{best[c][key]:.2f} ({best[c]['sampler']})" if c in best else "" for c in cols]
        acc = f" {res['teacher']['best'][0]['class_accuracy']:.3f} |" if dataset == "digits" else ""
        lines.append("| teacher, best sampler | " + " | ".join(cells) + " | – | – |" + acc)
        shipped = res["teacher"].get("recipe_guidance_lines")
        if shipped:
            got = {r["nfe"]: r for r in shipped["heun"]}
            cells = [f"{got[c][key]:.2f}" if c in got else "" for c in cols]
            lines.append(
                f"| teacher heun, CFG s={res['teacher']['recipe_guidance']:g} (2 passes/NFE) | "
                + " | ".join(cells)
                + f" | – | – | {shipped['heun'][0]['class_accuracy']:.3f} |"
            )
        for label, st in res["students"].items():
            got = {r["nfe"]: r for r in st["rows"]}
            cells = [f"{got[c][key]:.2f}" if c in got else "" for c in cols]
            acc = f" {st['rows'][0]['class_accuracy']:.3f} |" if dataset == "digits" else ""
            lines.append(
                f"| {label} | " + " | ".join(cells) + f" | {st['train_minutes']} | {st['teacher_passes']:,} |" + acc
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="digits,toy2d")
    p.add_argument("--workdir", default=str(ROOT / "benchmarks" / "out" / "distill"))
    p.add_argument("--n", type=int, default=1000, help="samples per score")
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every student's training steps")
    p.add_argument("--guidance", type=float, default=1.0, help="the teacher's CFG scale that students distill")
    p.add_argument("--pairs", type=int, default=4096, help="reflow couplings per reflow student")
    p.add_argument("--only", help="comma-separated student labels to (re)run (others are skipped)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "distill_leaderboard.json"))
    p.add_argument("--replot", action="store_true", help="redraw the plot and table from --out's JSON and exit")
    args = p.parse_args()
    if args.replot:
        results = json.loads(Path(args.out).read_text())["results"]
        plot(results, Path(args.out).with_suffix(".png"))
        atomic_write_text(Path(args.out).with_suffix(".md"), table(results))
        return
    torch.manual_seed(0)
    only = set(args.only.split(",")) if args.only else None
    results = {}
    for dataset in args.datasets.split(","):
        results[dataset] = run_dataset(
            dataset,
            Path(args.workdir) / dataset,
            n=args.n,
            scale=args.scale,
            pairs=args.pairs,
            guidance=args.guidance,
            only=only,
        )
        write_json(args.out, {"n": args.n, "scale": args.scale, "results": results})
    plot(results, Path(args.out).with_suffix(".png"))
    atomic_write_text(Path(args.out).with_suffix(".md"), table(results))


if __name__ == "__main__":
    main()
