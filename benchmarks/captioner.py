"""The LLaVA-style shapes captioner, stage 1 (projector only) vs stage 2 (projector + LM), on seen and held-out pairs.

Usage: OMP_NUM_THREADS=1 python benchmarks/captioner.py [--stage1 runs/shapes-captioner-stage1]
           [--stage2 runs/shapes-captioner] [--n 300] [--out benchmarks/results/captioner.json]
Train first: recipes/shapes-clip.yaml, shapes-captioner-lm.yaml, shapes-captioner-stage1.yaml, shapes-captioner.yaml.
Writes captioner.json and captioner.md. For the images of the shapes 'test' split (colour×shape pairs seen in
training) and the 'heldout' split (each image holds a pair never seen), greedy captions of each stage are scored by
- the procedural checker applied to the caption (genlab.metrics.caption.caption_attributes): count, colour, shape,
  size, relation, all, and the share of captions inside the shapes grammar; the data's own caption of the image
  is scored alike as a reference row (it may omit sizes and relations, never misstate them);
- corpus BLEU-4 against every caption the grammar gives the true scene (genlab.metrics.caption.references);
- visual questions (genlab.methods.captioner.questions_of on the true scene): answer accuracy per question type.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402
from genlab.atomic import atomic_write_text  # noqa: E402
from genlab.caption import captioner_method, shipped_captioner  # noqa: E402
from genlab.data.shapes import caption, sample_pairs  # noqa: E402
from genlab.methods.captioner import questions_of  # noqa: E402
from genlab.metrics.caption import caption_attributes, corpus_bleu, references  # noqa: E402
from genlab.runs import load_run, train_seconds  # noqa: E402

CHUNK = 100
KINDS = {"how many": "count", "what colour": "colour", "what shape": "shape"}


class Stage(NamedTuple):
    name: str
    run: str


def last_metrics(run: str) -> dict:
    """The last row of a run's metrics.jsonl ({} when it has none)."""
    path = Path(run) / "metrics.jsonl"
    rows = [r for r in path.read_text().splitlines() if r.strip()] if path.is_file() else []
    return json.loads(rows[-1]) if rows else {}


def captions_of(method, x: torch.Tensor, questions: list[str] | None = None) -> list[str]:
    out = []
    for i in range(0, len(x), CHUNK):
        qs = None if questions is None else questions[i : i + CHUNK]
        out += method.caption(x[i : i + CHUNK], questions=qs, temperature=0.0)
    return out


def vqa_accuracy(method, x: torch.Tensor, scenes) -> dict:
    rows = [(i, q, a) for i, s in enumerate(scenes) for q, a in questions_of(caption(s))]
    idx = torch.tensor([i for i, _, _ in rows])
    answers = captions_of(method, x[idx], [q for _, q, _ in rows])
    out = {}
    for prefix, kind in KINDS.items():
        hits = [ans == a for (_, q, a), ans in zip(rows, answers) if q.startswith(prefix)]
        out[kind] = sum(hits) / len(hits)
    out["all"] = sum(ans == a for (_, _, a), ans in zip(rows, answers)) / len(rows)
    out["questions"] = len(rows)
    return out


def split_report(methods: dict, split: str, n: int) -> dict:
    x, texts, scenes = sample_pairs(n, split=split, seed=0)  # the 'test'/'heldout' images of ShapesConfig(seed=0)
    refs = [references(s) for s in scenes]
    report = {"images": n, "reference_caption": {**caption_attributes(x, texts), "bleu4": corpus_bleu(texts, refs)}}
    for name, method in methods.items():
        start = time.perf_counter()
        caps = captions_of(method, x)
        seconds = time.perf_counter() - start
        report[name] = {
            **caption_attributes(x, caps),
            "bleu4": corpus_bleu(caps, refs),
            "captions_per_s": n / seconds,
            "vqa": vqa_accuracy(method, x, scenes),
            "examples": [{"truth": t, "caption": c} for t, c in zip(texts[:4], caps[:4])],
        }
    return report


def markdown(result: dict) -> str:
    cols = ("in_grammar", "count", "colour", "shape", "size", "relation", "all", "bleu4")
    lines = [
        "# Shapes captioner: stage 1 (projector only) vs stage 2 (projector + LM)",
        "",
        f"Greedy captions of {result['test']['images']} images per split, scored by the procedural checker applied "
        "to the caption; BLEU-4 against every caption the grammar gives the true scene; VQA = answer accuracy on "
        "template questions. 'reference' = the data's own caption of the image.",
        "",
        "| split | captions | " + " | ".join(cols) + " | VQA |",
        "|---|---|" + "---|" * (len(cols) + 1),
    ]
    for split in ("test", "heldout"):
        for name in ("reference_caption", *result["stages"]):
            row = result[split][name]
            cells = [f"{row[c]:.3f}" for c in cols]
            vqa = f"{row['vqa']['all']:.3f}" if "vqa" in row else "–"
            lines.append(f"| {split} | {name} | " + " | ".join(cells) + f" | {vqa} |")
    lines += ["", "| stage | run | train minutes | trained parameters | frozen parameters |", "|---|---|---|---|---|"]
    for name, info in result["stages"].items():
        lines.append(
            f"| {name} | {info['run']} | {info['train_minutes']:.1f} | {info['trained_parameters']:,} | "
            f"{info['frozen_parameters']:,} |"
        )
    minutes = ", ".join(f"{k} {v:.1f}" for k, v in result["train_minutes"].items())
    losses = ", ".join(f"{k} {v:.3f}" for k, v in result["final_train_loss"].items() if v is not None)
    lines += ["", f"Training minutes (wall, 1 thread): {minutes}.", f"Last training loss (nats/token): {losses}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--stage1", default="runs/shapes-captioner-stage1")
    p.add_argument("--stage2", default="runs/shapes-captioner")
    p.add_argument("--clip", default="runs/shapes-clip", help="the CLIP run (for its training time)")
    p.add_argument("--lm", default="runs/shapes-captioner-lm", help="the stage-0 run (for its training time)")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--out", default="benchmarks/results/captioner.json")
    args = p.parse_args()
    stages = [Stage("stage1", args.stage1), Stage("stage2", args.stage2)]
    methods, info = {}, {}
    for stage in stages:
        run = load_run(stage.run)
        methods[stage.name] = captioner_method(run)
        trained = {0: run.method.net.lm, 1: run.method.net.projector, 2: run.method.net}[run.method.cfg.stage]
        info[stage.name] = {
            "run": stage.run,
            "step": run.step,
            "train_minutes": train_seconds(stage.run) / 60,
            "trained_parameters": sum(p.numel() for p in trained.parameters()),
            "frozen_parameters": sum(p.numel() for p in run.method.parameters())
            - sum(p.numel() for p in trained.parameters()),
        }
    pipeline = {name: train_seconds(path) / 60 for name, path in (("clip", args.clip), ("stage0_lm", args.lm))}
    pipeline |= {name: i["train_minutes"] for name, i in info.items()}
    pipeline["total"] = sum(pipeline.values())
    runs = {"stage0_lm": args.lm, **{stage.name: stage.run for stage in stages}}
    last_loss = {name: last_metrics(path).get("loss") for name, path in runs.items()}
    shipped = shipped_captioner()
    asset_mb = sum(f.stat().st_size for f in shipped.iterdir()) / 2**20 if shipped.is_dir() else None
    torch.manual_seed(0)
    result = {
        "load_average_at_start": os.getloadavg()[0],
        "stages": info,
        "train_minutes": pipeline,
        "final_train_loss": last_loss,  # nats per scored token, the last logged training step of each run
        "shipped_checkpoint_mb": asset_mb,
        **{split: split_report(methods, split, args.n) for split in ("test", "heldout")},
    }
    write_json(args.out, result)
    atomic_write_text(Path(args.out).with_suffix(".md"), markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
