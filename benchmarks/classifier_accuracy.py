"""Held-out accuracy of the noisy classifier used for classifier guidance, at several noise levels.

Trains recipes/digits-classifier.yaml into benchmarks/out/digits-classifier (reused when it is already trained)
and evaluates it with `genlab eval`, which for a run that makes no samples reports the method's own held-out
metrics: here the accuracy of argmax p(y | x_t) on the 360 held-out digits at t = 0, 0.2, ..., 1 (one seeded
noise draw per t). Writes benchmarks/results/classifier_accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402
from genlab.config import load_recipe  # noqa: E402
from genlab.runs import load_run, train_seconds  # noqa: E402
from genlab.train import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, default=ROOT / "benchmarks" / "out" / "digits-classifier")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "classifier_accuracy.json")
    args = p.parse_args()
    recipe_file = ROOT / "recipes" / "digits-classifier.yaml"
    if not (args.run / "checkpoint").exists():
        train(load_recipe(recipe_file), args.run, progress=False)
    run = load_run(args.run)
    start = time.perf_counter()
    report = json.loads(run.evaluate(out=args.run / "eval").read_text())
    write_json(
        args.out,
        {
            "recipe": str(recipe_file.relative_to(ROOT)),
            "step": run.step,
            "train_minutes": round(train_seconds(args.run) / 60, 2),
            "eval_seconds": round(time.perf_counter() - start, 2),
            "split": report["settings"]["split"],
            "n": report["settings"]["n"],
            "accuracy": report["metrics"],
        },
    )


if __name__ == "__main__":
    main()
