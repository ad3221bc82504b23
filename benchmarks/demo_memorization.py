"""Why are `make demo` samples closer to the training digits than to held-out digits? (issue 10, defect 11)

Statistic. For samples S and two reference banks of EQUAL size m — A ⊂ held-out H, B ⊂ train T — the ratio
r = mean_s d(s, B) / mean_s d(s, A), d = Euclidean nearest-neighbour distance in pixel space. If the model never saw
T, the labels "train" / "held-out" of the banks are exchangeable, so r is 1 up to noise whatever S looks like.

Noise floors, each from the same banks:
  * real: queries = the other half of H (real digits nobody trained on), banks A (the first half of H) and B
    (|A| random train images), over `--splits` random splits; r_real ≈ 1 ± its spread.
  * permutation: pool the 360 held-out and 360 random train images, relabel at random into two banks of 360 and
    recompute the samples' r; the spread of that null says how far from 1 the samples' r strays by chance.
  * also: the share of samples whose nearest neighbour in A ∪ B is a training image (0.5 for an unseen-data model).

Candidate causes, each measured: (a) bank size (only equal-size banks are used here; the unequal full-train ratio
is reported to show the size effect); (b) duplicates across sklearn's train/test split (exact and sub-pixel-step
near-duplicates counted); (c) EMA vs the raw training weights of the same run; (d) guidance scale 0 (unconditional),
1 (no guidance), 2 (demo) on the same run; and training length (recipe steps 500 vs 1500, the rest of the recipe as is).

Trains what it needs into benchmarks/out/demo_memorization/ (git-ignored; reused when present) and writes
benchmarks/results/demo_memorization.json. `--quick` trains only the demo recipe.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from sklearn.datasets import load_digits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402
from genlab.atomic import atomic_path, atomic_write_text  # noqa: E402
from genlab.config import load_recipe  # noqa: E402
from genlab.data import build_dataset  # noqa: E402
from genlab.errors import GenlabError  # noqa: E402
from genlab.metrics.memorization import memorization  # noqa: E402
from genlab.runs import load_run, read_run  # noqa: E402
from genlab.train import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "digits-flow.yaml"
OUT = ROOT / "benchmarks" / "out" / "demo_memorization"
PER_CLASS = 100
GUIDANCE = (0.0, 1.0, 2.0)
STEPS = (500, 1500)


def flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(len(x), -1).double()


def nn_dist(q: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    return torch.cdist(q, bank).min(1).values


def mean_sd(values: list[float]) -> dict:
    return {
        "mean": round(statistics.mean(values), 4),
        "sd": round(statistics.stdev(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def duplicates(t: torch.Tensor, h: torch.Tensor) -> dict:
    """Exact and near duplicates (closer than one grey level, 1/8, at every pixel: distance < 1) across the split."""
    d_ht = nn_dist(h, t)
    within = torch.cdist(t, t).fill_diagonal_(float("inf")).min(1).values
    return {
        "exact_test_in_train": int((d_ht == 0).sum()),
        "near_test_train_lt_1": int((d_ht < 1).sum()),
        "exact_within_train": int((within == 0).sum()),
        "near_within_train_lt_1": int((within < 1).sum()),
        "min_test_to_train": round(float(d_ht.min()), 4),
        "median_test_to_train": round(float(d_ht.median()), 4),
        **file_order(),
    }


def file_order(window: int = 100) -> dict:
    """sklearn's 1,797 digits are stored writer by writer: an image's nearest neighbour (in all 1,797) tends to lie
    close to it in file order. Share within `window` positions vs the share if order did not matter."""
    x = torch.from_numpy(load_digits().data).double()
    d = torch.cdist(x, x).fill_diagonal_(float("inf"))
    gap = (d.argmin(1) - torch.arange(len(x))).abs()
    return {
        "nn_file_order_gap_median": int(gap.median()),
        f"nn_within_{window}_in_file_order": round(float((gap <= window).double().mean()), 4),
        f"nn_within_{window}_if_order_did_not_matter": round(2 * window / len(x), 4),
    }


def paired_splits(s: torch.Tensor, t: torch.Tensor, h: torch.Tensor, splits: int) -> dict:
    """Half-split banks (|A| = |B| = |H|/2): the samples' ratio and the real held-out ratio on the same banks."""
    half = len(h) // 2
    sample_r, real_r, share_s, share_real = [], [], [], []
    for r in range(splits):
        gen = torch.Generator().manual_seed(r)
        perm = torch.randperm(len(h), generator=gen)
        a, queries = h[perm[:half]], h[perm[half : 2 * half]]
        b = t[torch.randperm(len(t), generator=gen)[:half]]
        for q, ratios, shares in ((s, sample_r, share_s), (queries, real_r, share_real)):
            db, da = nn_dist(q, b), nn_dist(q, a)
            ratios.append(float(db.mean() / da.mean()))
            shares.append(float((db < da).double().mean()))
    below = sum(x < y for x, y in zip(sample_r, real_r)) / splits
    return {
        "bank_size": half,
        "splits": splits,
        "samples_ratio": mean_sd(sample_r),
        "real_ratio": mean_sd(real_r),
        "samples_nn_in_train_share": mean_sd(share_s),
        "real_nn_in_train_share": mean_sd(share_real),
        "fraction_of_splits_samples_below_real": below,
    }


def full_banks(s: torch.Tensor, t: torch.Tensor, h: torch.Tensor, repeats: int) -> dict:
    """Banks of |H| = 360: all of H vs random train subsets (the eval's ratio), the permutation null, and the
    unequal ratio against the FULL train set (1,437 images) that shows what bank size alone does."""
    m, d_h = len(h), nn_dist(s, h)
    observed, null = [], []
    for r in range(repeats):
        gen = torch.Generator().manual_seed(10_000 + r)
        b = t[torch.randperm(len(t), generator=gen)[:m]]
        observed.append(float(nn_dist(s, b).mean() / d_h.mean()))
        pool = torch.cat([h, b])
        perm = torch.randperm(2 * m, generator=gen)
        null.append(float(nn_dist(s, pool[perm[:m]]).mean() / nn_dist(s, pool[perm[m:]]).mean()))
    mean_obs = statistics.mean(observed)
    return {
        "bank_size": m,
        "repeats": repeats,
        "ratio": mean_sd(observed),
        "permutation_null": mean_sd(null),
        "permutation_p": sum(x <= mean_obs for x in null) / repeats,
        "unequal_ratio_full_train": round(float(nn_dist(s, t).mean() / d_h.mean()), 4),
    }


def measure(s: torch.Tensor, t: torch.Tensor, h: torch.Tensor, splits: int) -> dict:
    mem = memorization(s, t, h, seed=0)
    return {
        "paired_half_splits": paired_splits(s, t, h, splits),
        "full_banks": full_banks(s, t, h, splits),
        "genlab_eval_memorization": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in mem.items()},
    }


def real_as_samples(t: torch.Tensor, h: torch.Tensor, splits: int) -> dict:
    """Half of the held-out digits in place of samples, the other half as the held-out set: a random half (what an
    unseen-data model scores) and the first half in file order (sklearn's digits are stored writer by writer, so
    a contiguous half shares writers with the train split but not with the other half: NOT exchangeable)."""
    half, perm = len(h) // 2, torch.randperm(len(h), generator=torch.Generator().manual_seed(0))
    return {
        "random_half": measure(h[perm[:half]], t, h[perm[half:]], splits),
        "first_half_in_file_order": measure(h[:half], t, h[half:], splits),
    }


def ensure_run(steps: int) -> tuple[Path, float | None]:
    run = OUT / ("digits-flow" if steps == 1500 else f"digits-flow-{steps}")
    recipe, done = load_recipe(RECIPE, [f"--train.steps={steps}"]), 0
    try:
        done = read_run(run)[1]
    except GenlabError:
        pass
    if done >= steps:
        return run, None
    start = time.perf_counter()  # a run stopped part-way is resumed (its time is then only the remainder)
    train(recipe, run, resume=done > 0, progress=False)
    return run, round((time.perf_counter() - start) / 60, 2)


def draw(run: Path, *, weights: str = "ema", guidance: float | None = None) -> torch.Tensor:
    """100 samples per class (classes cycled), seed 0, the recipe's sampler; `guidance` overrides its scale.
    Cached next to the run (keyed by its step), so a rerun only samples what changed."""
    loaded = load_run(run, weights=weights)
    cache = OUT / "samples" / f"{run.name}-step{loaded.step}-{weights}-g{guidance}.safetensors"
    if cache.is_file():
        return load_file(str(cache))["x"]
    x = flat(loaded.sample(10 * PER_CLASS, seed=0, guidance_scale=guidance).x.clamp(-1, 1))
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache) as tmp:
        save_file({"x": x.contiguous()}, str(tmp))
    return x


def _row(name: str, m: dict) -> str:
    pair, full = m["paired_half_splits"], m["full_banks"]
    sr, rr, sh = pair["samples_ratio"], pair["real_ratio"], pair["samples_nn_in_train_share"]
    null, ev = full["permutation_null"], m["genlab_eval_memorization"]
    return (
        f"| {name} | {sr['mean']:.3f} ± {sr['sd']:.3f} | {rr['mean']:.3f} ± {rr['sd']:.3f} | {sh['mean']:.3f} | "
        f"{full['ratio']['mean']:.3f} | {null['mean']:.3f} ± {null['sd']:.3f} | {full['permutation_p']:.2f} | "
        f"{full['unequal_ratio_full_train']:.3f} | {ev['near_copy_fraction']:.3f} |"
    )


def summary(result: dict) -> str:
    """A Markdown table of every measurement in the JSON (written next to it)."""
    lines = [
        "# demo_memorization (benchmarks/demo_memorization.py)",
        "",
        f"{result['samples']} samples; train {result['train_size']}, held-out {result['heldout_size']}; "
        f"duplicates: {result['duplicates']}",
        "",
        "| samples | ratio, half banks | real held-out ratio, same banks | NN-in-train share | ratio, 360 banks "
        "| permutation null | p | ratio vs FULL train (unequal) | near-copy fraction |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, m in result["real_heldout_as_samples"].items():
        lines.append(_row(f"real held-out, {key.replace('_', ' ')}", m))
    for key, m in result["demo_run_1500_steps"].items():
        lines.append(_row(f"1500 steps, {key.replace('_', ' ')}", m))
    for steps, m in result.get("training_length", {}).items():
        lines.append(_row(f"{steps} steps, ema guidance 2", {**m, "genlab_eval_memorization": m["eval"]}))
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--splits", type=int, default=100, help="random bank draws per measurement")
    p.add_argument("--quick", action="store_true", help="train only the demo recipe (no training-length ablation)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "demo_memorization.json"))
    args = p.parse_args()
    recipe = load_recipe(RECIPE)
    t = flat(build_dataset(recipe.data, split="train").x)
    h = flat(build_dataset(recipe.data, split="test").x)
    result: dict = {
        "benchmark": "demo_memorization",
        "recipe": RECIPE.name,
        "train_size": len(t),
        "heldout_size": len(h),
        "samples": 10 * PER_CLASS,
        "duplicates": duplicates(t, h),
        "real_heldout_as_samples": real_as_samples(t, h, args.splits),
    }
    run, minutes = ensure_run(1500)
    result["train_minutes"] = {"1500": minutes}
    demo = {"ema_guidance_2": measure(draw(run), t, h, args.splits)}
    demo["raw_weights_guidance_2"] = measure(draw(run, weights="model"), t, h, args.splits)
    for g in GUIDANCE:
        if g != 2.0:
            demo[f"ema_guidance_{g:g}"] = measure(draw(run, guidance=g), t, h, args.splits)
    result["demo_run_1500_steps"] = demo
    if not args.quick:
        result["training_length"] = {}
        for steps in STEPS:
            run, minutes = ensure_run(steps)
            result["train_minutes"][str(steps)] = minutes
            x = demo["ema_guidance_2"] if steps == 1500 else measure(draw(run), t, h, args.splits)
            result["training_length"][str(steps)] = {
                "paired_half_splits": x["paired_half_splits"],
                "full_banks": x["full_banks"],
                "eval": x["genlab_eval_memorization"],
            }
    write_json(args.out, result)
    atomic_write_text(Path(args.out).with_suffix(".md"), summary(result))
    print(summary(result))


if __name__ == "__main__":
    main()
