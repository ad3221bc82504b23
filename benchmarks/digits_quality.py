"""Digits quality: does class-conditional flow produce the requested digit, without copying?

Trains recipes/digits-flow.yaml (wall time recorded; goal ≤ 5 CPU minutes), samples 100 images per
class, and labels them with an RBF-SVM trained on the real training split (its held-out accuracy is
reported). Goal: ≥ 90% of samples labelled as the requested class. Copying check: the mean
nearest-neighbour distance of samples to random 360-image subsets of the training set (averaged over
5 subsets) must not be smaller than to the 360 held-out images (equal-size sets, so the comparison
is fair); real training images outside the subset give the ratio that uncopied data scores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from sklearn.svm import SVC

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402
from genlab.config import load_recipe  # noqa: E402
from genlab.data import build_dataset  # noqa: E402
from genlab.runs import load_run, read_run  # noqa: E402
from genlab.train import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def flat(x: torch.Tensor):
    return x.reshape(len(x), -1).double().numpy()


def nn_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.cdist(a.reshape(len(a), -1), b.reshape(len(b), -1)).min(1).values.mean())


def copy_check(x: torch.Tensor, train: torch.Tensor, test: torch.Tensor, repeats: int = 5) -> tuple:
    """Mean NN distance of samples to equal-size train subsets vs to the held-out set (averaged over
    `repeats` random subsets), and the same ratio for real training images outside the subset (the
    value that data which was never copied scores)."""
    d_train, d_test, floor = [], nn_distance(x, test), []
    for r in range(repeats):
        perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(r))
        subset, probes = train[perm[: len(test)]], train[perm[len(test) : 3 * len(test)]]
        d_train.append(nn_distance(x, subset))
        floor.append(nn_distance(probes, subset) / nn_distance(probes, test))
    return sum(d_train) / repeats, d_test, sum(floor) / repeats


def evaluate(path: Path, per_class: int, **overrides) -> dict:
    """Sample `per_class` images of each class from the run in `path` (its recipe's settings, with non-None
    `overrides`), then score class accuracy and copying."""
    run = load_run(path)
    train_set, test_set = build_dataset(run.recipe.data, split="train"), build_dataset(run.recipe.data, split="test")
    clf = SVC(gamma="scale", C=10).fit(flat(train_set.x), train_set.labels.numpy())
    clf_acc = float((clf.predict(flat(test_set.x)) == test_set.labels.numpy()).mean())
    settings = run.resolve_settings(**overrides)
    start = time.perf_counter()
    # the overrides go as keywords: a `settings=` field equal to SampleSettings' default would fall back to the recipe
    samples = run.sample(run.num_classes * per_class, seed=0, **overrides)  # classes cycled: per_class of each
    ms_per_sample = (time.perf_counter() - start) * 1000 / len(samples.x)
    x, labels = samples.x.clamp(-1, 1), samples.cond
    acc = float((clf.predict(flat(x)) == labels.numpy()).mean())
    d_train, d_test, floor = copy_check(x, train_set.x, test_set.x)
    return {
        "class_accuracy": acc,
        "classifier_test_accuracy": clf_acc,
        "nn_dist_train_subset": d_train,
        "nn_dist_heldout": d_test,
        "nn_ratio": d_train / d_test,
        "nn_ratio_real_train_probes": floor,
        "no_copying": d_train >= d_test,
        "ms_per_sample": round(ms_per_sample, 3),
        **run.describe(settings, samples),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--recipe", default=str(ROOT / "recipes" / "digits-flow.yaml"))
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--run", help="evaluate this existing run instead of training one")
    p.add_argument("--guidance-scale", type=float, help="override the recipe's sample.guidance_scale")
    p.add_argument("--steps", type=int, help="override the recipe's sample.steps")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "digits_quality.json"))
    args, overrides = p.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        run, minutes = Path(args.run or Path(tmp) / "run"), None
        if args.run:
            recipe = read_run(run)[0]
        else:
            recipe = load_recipe(args.recipe, overrides)
            start = time.perf_counter()
            train(recipe, run, progress=False)
            minutes = round((time.perf_counter() - start) / 60, 2)
        result = evaluate(run, args.per_class, guidance_scale=args.guidance_scale, steps=args.steps)
    source = {"run": args.run, "recipe": recipe.name} if args.run else {"recipe": Path(args.recipe).name}
    result = {
        "benchmark": "digits_quality",
        **source,
        "train_minutes": minutes,
        "train_steps": recipe.train.steps,
        "goal": "class_accuracy >= 0.9 within 5 CPU minutes; no copying",
        **result,
    }
    print(result)
    write_json(args.out, result)


if __name__ == "__main__":
    main()
