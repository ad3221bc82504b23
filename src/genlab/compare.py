"""`genlab compare`: every recipe trained for the same CPU budget, measured by the same evaluator, in one table.

Budget: a short calibration (a few trainer steps on a throw-away Trainer) measures seconds per step s; the run then
gets train.steps = ⌊0.9·B / s⌋ (warm-up scaled by the same factor), so its learning-rate schedule completes within
the budget B, and train.time_limit_minutes = B as a hard stop. Every run is evaluated by `genlab.evaluate.evaluate`
at the same n and seed; the table reads each eval.json. A token-prior recipe whose `method.tokenizer` names another
recipe of the same call (runs/<name>) is pointed at OUT/<name>, and that tokenizer is trained before it; it makes no
samples, so it gets no row and its training minutes are added to the prior's.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

import torch

from genlab.atomic import atomic_path, atomic_write_text
from genlab.config import Recipe, read_yaml, recipe_from_dict
from genlab.errors import GenlabError
from genlab.runs import read_run, train_seconds

SAFETY = 0.9  # fraction of the budget the planned steps may use (checkpoints, logging and jitter take the rest)
CALIBRATION_SECONDS, CALIBRATION_STEPS = 5.0, 20
COLUMNS = ("fd", "precision", "recall", "class_accuracy")
TEXT_COLUMNS = ("distinct_2", "repetition_4")  # language-model runs (genlab.metrics.text), shown when one is compared
UNITS = {"bits_per_dim": "bits/dim", "nats_per_dim": "nats/dim", "bits_per_byte": "bits/byte"}


def plan(paths: list[str], out: Path) -> list[tuple[str, dict]]:
    """(name, recipe tree) per recipe, tokenizer paths rewritten to OUT/<name>, tokenizers first (else as given)."""
    trees = [(str(p), read_yaml(p)) for p in paths]
    names = [tree.get("name") for _, tree in trees]
    for (path, _), name in zip(trees, names):
        if not isinstance(name, str) or not name or "/" in name:
            raise GenlabError(f"{path}: compare needs a plain 'name' in every recipe (it names OUT/<name>)")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise GenlabError(f"two recipes are named {dup!r}: compare writes OUT/<name>, so names must differ")
    deps = {}
    for (_, tree), name in zip(trees, names):
        method = tree.get("method")
        tok = method.get("tokenizer") if isinstance(method, dict) else None
        if isinstance(tok, str) and Path(tok).name in names and Path(tok).name != name:
            method["tokenizer"] = str(out / Path(tok).name)
            deps[name] = Path(tok).name
    order: list[str] = []
    for name in names:  # dependencies before dependents, otherwise the given order
        for item in (deps[name], name) if name in deps else (name,):
            if item not in order:
                order.append(item)
    by_name = dict(zip(names, (t for _, t in trees)))
    return [(name, by_name[name]) for name in order]


def tokenizer_of(tree: dict) -> str | None:
    """The name of the run a token prior's recipe takes its tokenizer from (None for other recipes)."""
    method = tree.get("method")
    tok = method.get("tokenizer") if isinstance(method, dict) else None
    return Path(tok).name if isinstance(tok, str) else None


def seconds_per_step(recipe: Recipe, *, max_seconds: float = CALIBRATION_SECONDS) -> float:
    """Wall time of 2 to CALIBRATION_STEPS trainer steps (after one warm-up step; max_seconds allowing) / steps."""
    from genlab.train import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(recipe, Path(tmp))
        trainer.train_step()
        start, steps = time.perf_counter(), 0
        while steps < CALIBRATION_STEPS and (steps < 2 or time.perf_counter() - start < max_seconds):
            trainer.train_step()
            steps += 1
        return (time.perf_counter() - start) / steps


def budgeted(recipe: Recipe, *, minutes: float, per_step: float) -> Recipe:
    """The recipe with steps (and warm-up, proportionally) fitted to the budget, a hard time stop, no mid-run grids."""
    cfg = recipe.train
    steps = max(1, math.floor(SAFETY * minutes * 60 / per_step))
    cfg.warmup_steps = min(steps - 1, round(cfg.warmup_steps * steps / cfg.steps)) if cfg.warmup_steps else 0
    cfg.steps, cfg.time_limit_minutes, cfg.sample_every = steps, minutes, 0
    cfg.checkpoint_every = min(cfg.checkpoint_every, steps)
    return recipe


def _finished(run: Path) -> bool:
    recipe, step = read_run(run)
    limit = recipe.train.time_limit_minutes
    return step >= recipe.train.steps or (limit > 0 and train_seconds(run) >= 60 * limit)


def train_one(name: str, tree: dict, run: Path, *, minutes: float, progress: bool) -> dict:
    """Train (or resume, or skip when finished) one run; its training record."""
    from genlab.train import train

    calibration = None
    if (run / "checkpoint").exists() or (run / "checkpoint.old").exists():
        if not _finished(run):
            train(read_run(run)[0], run, resume=True, progress=progress)
    else:
        recipe = recipe_from_dict(tree, name)
        calibration = seconds_per_step(recipe, max_seconds=min(CALIBRATION_SECONDS, 3 * minutes))  # ≤ 5 %
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run / "compare-calibration.json", json.dumps({"seconds_per_step": calibration}))
        train(budgeted(recipe, minutes=minutes, per_step=calibration), run, progress=progress)
    recipe, step = read_run(run)
    record = run / "compare-calibration.json"
    if calibration is None and record.is_file():
        calibration = json.loads(record.read_text())["seconds_per_step"]
    return {
        "method": recipe.method.kind,
        "model": recipe.model.kind,
        "steps": step,
        "planned_steps": recipe.train.steps,
        "train_minutes": train_seconds(run) / 60,
        "calibrated_seconds_per_step": calibration,
    }


def row(name: str, record: dict, report: dict) -> dict:
    """One table row from the training record and eval.json."""
    metrics, settings, lik = report.get("metrics", {}), report.get("settings", {}), report.get("likelihood") or {}
    # text: bits per byte of the test split (tokenizer-independent); images: bits/dim; vectors: nats/dim
    unit = next((u for u in ("bits_per_byte", "bits_per_dim") if u in lik), "nats_per_dim")
    return {
        "name": name,
        **record,
        **{k: metrics.get(k) for k in COLUMNS + TEXT_COLUMNS},
        "likelihood": lik.get(unit),
        "likelihood_unit": unit if lik.get(unit) is not None else None,
        "likelihood_kind": lik.get("kind") if lik.get(unit) is not None else None,
        "nfe": settings.get("nfe"),
        "ms_per_sample": settings.get("ms_per_sample"),
    }


def _cell(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def markdown(rows: list[dict], *, minutes: float, n: int | None, seed: int) -> str:
    text = any(r.get(k) is not None for r in rows for k in TEXT_COLUMNS)
    head = (
        "| run | method | FD ↓ | precision ↑ | recall ↑ | class acc. ↑ | "
        + ("distinct-2 | repetition-4 | " if text else "")
        + "likelihood ↓ | NFE | ms/sample | train min | steps |"
    )
    sizes = "each evaluator's default n" if n is None else f"n = {n}"
    lines = [
        f"# genlab compare: {minutes:g} CPU minutes per run, {sizes}, seed = {seed}",
        "",
        head,
        "|" + " --- |" * head.count(" |"),
    ]
    for r in rows:
        lik = (
            "—"
            if r["likelihood"] is None
            else (
                f"{r['likelihood']:.3f} {UNITS[r['likelihood_unit']]}"
                f"{' (bound)' if r['likelihood_kind'] == 'bound' else ''}"
            )
        )
        cells = [
            r["name"],
            r["method"],
            *(_cell(r[k]) for k in COLUMNS + (TEXT_COLUMNS if text else ())),
            lik,
            _cell(r["nfe"]),
            _cell(r["ms_per_sample"]),
            _cell(r["train_minutes"], 2),
            f"{r['steps']}/{r['planned_steps']}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "likelihood: bits/dim of held-out data (nats/dim for vectors, bits/byte for text), from eval.json; "
        "'(bound)' = an upper bound (ELBO). "
        + (
            "distinct-2: share of distinct 2-grams of the text samples; repetition-4: share of repeated 4-grams "
            "(degenerate repetition). "
            if text
            else ""
        )
        + "steps: done / planned from the calibration; a token prior's train "
        "minutes include its tokenizer's, which gets no row of its own. ms/sample: sampling "
        f"only (the run already loaded). torch threads: {torch.get_num_threads()}.",
    ]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """FD against ms per sample (log scale), one labelled point per run."""
    from genlab.plots import pyplot

    plt = pyplot()  # Agg backend
    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=100)
    for r in rows:
        if r["fd"] is not None and r["ms_per_sample"]:
            ax.scatter(r["ms_per_sample"], r["fd"], s=30)
            ax.annotate(r["name"], (r["ms_per_sample"], r["fd"]), textcoords="offset points", xytext=(4, 4))
    ax.set_xscale("log")
    ax.set_xlabel("ms per sample")
    ax.set_ylabel("FD (genlab features, lower is better)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)


def compare(
    recipes: list[str],
    *,
    budget_minutes: float = 5.0,
    out: str | Path = "runs/compare",
    n: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Train every recipe into OUT/<name> for the same budget, evaluate each alike; write OUT/compare.{md,json,png}.
    n: samples per run for the metrics (None: the evaluator's default for the run's kind, 1000 images or points,
    64 texts)."""
    from genlab.evaluate import evaluate

    if not recipes:
        raise GenlabError("give at least one recipe: genlab compare recipes/a.yaml recipes/b.yaml")
    if not budget_minutes > 0:
        raise GenlabError(f"--budget-minutes must be > 0, got {budget_minutes}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GenlabError(f"--out {out} is a file: pass a folder")
    rows, planned = [], plan(recipes, out)
    names = {name for name, _ in planned}
    tokenizers = {tokenizer_of(tree): 0.0 for _, tree in planned if tokenizer_of(tree) in names}
    for name, tree in planned:
        run = out / name
        record = train_one(name, tree, run, minutes=budget_minutes, progress=progress)
        if name in tokenizers:  # a tokenizer makes no samples: its minutes go to the prior's row
            tokenizers[name] = record["train_minutes"]
            continue
        tok = tokenizer_of(tree)
        if tok in tokenizers:
            record.update(train_minutes=record["train_minutes"] + tokenizers[tok], tokenizer_minutes=tokenizers[tok])
        torch.manual_seed(seed)  # bounds estimated by sampling (the VAE's ELBO) are reproducible
        report = json.loads(evaluate(run, out=run / "eval", n=n, seed=seed).read_text())
        rows.append(row(name, record, report))
    atomic_write_text(
        out / "compare.json",
        json.dumps({"budget_minutes": budget_minutes, "n": n, "seed": seed, "rows": rows}, indent=2) + "\n",
    )
    atomic_write_text(out / "compare.md", markdown(rows, minutes=budget_minutes, n=n, seed=seed))
    plot(rows, out / "compare.png")
    return out / "compare.md"
