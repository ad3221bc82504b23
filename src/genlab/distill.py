"""`genlab distill TEACHER --method M`: a few-step student of a trained flow/diffusion run, as an ordinary run.

The student's recipe is the teacher's (same data, same network, same path and target) with `method.kind = M`, the
teacher named as a frozen part, the method's defaults (`STUDENTS`) and the user's dotted overrides on top. Its
sample settings are the few-step ones the method is made for; `genlab sample/eval/compare` then work on it
unchanged, and `genlab train --resume OUT` continues it like every run.

Reflow first draws its training couplings: `pairs` (noise, teacher sample, label) triples from the teacher's own
sampler and settings (the teacher recipe's, the best it has), written once to OUT/pairs.npz with their provenance.
`straightness` measures how straight a run's ODE is (Liu et al. 2022).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from genlab.atomic import atomic_path
from genlab.config import apply_override, recipe_from_dict, recipe_to_dict
from genlab.errors import GenlabError
from genlab.methods.student import TEACHER_KINDS

#: per method: (method fields, train fields, sample settings) laid over the teacher's recipe
STUDENTS: dict[str, tuple[dict, dict, dict]] = {
    "reflow": ({}, {"steps": 2000, "lr": 2e-4, "warmup_steps": 100}, {"sampler": "euler", "steps": 1}),
    "progressive": (
        {"rounds": 2, "steps_per_round": 600},
        {"steps": 1200, "lr": 2e-4, "warmup_steps": 50, "schedule": "constant", "ema_decay": 0.995},
        {"sampler": "ddim", "grid": "uniform", "eta": 0.0},
    ),
    "consistency": ({}, {"steps": 2000, "lr": 2e-4, "warmup_steps": 100}, {"steps": 1}),
    "guidance_distill": ({}, {"steps": 1500, "lr": 2e-4, "warmup_steps": 100}, {}),
    "meanflow": ({}, {"steps": 2000, "lr": 2e-4, "warmup_steps": 100}, {"steps": 1}),
}
PAIRS = 8192  # reflow couplings drawn by default


def teacher_recipe(teacher: str | Path):
    from genlab.runs import read_run

    if not Path(teacher).exists():
        raise GenlabError(f"teacher {teacher}: no such run folder; train one first (genlab train recipes/...)")
    recipe, _ = read_run(teacher)
    if recipe.method.kind not in TEACHER_KINDS:
        raise GenlabError(
            f"teacher {teacher} is a {recipe.method.kind!r} run: distill a run sampled by an ODE "
            f"({', '.join(TEACHER_KINDS)})"
        )
    return recipe


def student_recipe(teacher: str | Path, method: str, overrides: list[str] = (), *, out: str | Path | None = None):
    """The resolved recipe of method `method`'s student of run `teacher` (see the module docstring)."""
    if method not in STUDENTS:
        raise GenlabError(f"--method {method!r}: use one of {', '.join(STUDENTS)}")
    base = teacher_recipe(teacher)
    tree = recipe_to_dict(base)
    fields, train, sample = STUDENTS[method]
    t_method = tree["method"]
    t_sample = base.sample
    tree["name"] = f"{base.name}-{method}"
    tree["method"] = {
        "kind": method,
        "teacher": str(teacher),
        "path": t_method["path"],
        "target": t_method["target"],
        "sigma_data": t_method["sigma_data"],
        "time": t_method["time"],
        # the guided prediction the teacher samples with (a student teacher's own recipe says 1: it is guided already)
        "teacher_guidance": t_sample.guidance_scale if method != "guidance_distill" else 1.0,
        "teacher_guidance_interval": list(t_sample.guidance_interval) if method != "guidance_distill" else [0.0, 1.0],
        **fields,
    }
    if method == "progressive":
        tree["method"]["teacher_steps"] = t_sample.steps if t_sample.sampler in ("euler", "ddim") else 32
    if method == "reflow":
        tree["method"]["pairs"] = str(Path(out or f"runs/{tree['name']}") / "pairs.npz")
    tree["train"].update(train)
    guidance = t_sample.guidance_scale if method == "guidance_distill" else 1.0
    tree["sample"] = {**tree["sample"], "guidance_scale": guidance, **sample}
    for o in overrides:
        apply_override(tree, o)
    if method == "progressive":  # the rounds fill the run, and the student samples with the last round's steps
        m = tree["method"]
        if not any(o.lstrip("-").startswith("train.steps=") for o in overrides):
            tree["train"]["steps"] = m["rounds"] * m["steps_per_round"]
        if not any(o.lstrip("-").startswith("sample.steps=") for o in overrides):
            tree["sample"]["steps"] = max(1, m["teacher_steps"] // 2 ** m["rounds"])
    if method == "consistency" and not any("schedule_steps" in o for o in overrides):
        tree["method"]["schedule_steps"] = tree["train"]["steps"]
    tree["method"].pop("frozen", None)
    return recipe_from_dict(tree, f"genlab distill {teacher} --method {method}")


@torch.no_grad()
def write_pairs(
    teacher: str | Path,
    out: str | Path,
    *,
    n: int = PAIRS,
    seed: int = 0,
    steps: int | None = None,
    guidance: float | None = None,
    interval: tuple[float, float] | None = None,
    progress: bool = True,
) -> Path:
    """Draw n (noise, teacher sample, label) couplings from the teacher's sampler and recipe settings (`steps`,
    `guidance` and `interval` replace its steps, CFG scale and guidance interval); write them (and their provenance)
    to `out` atomically. Deterministic from the seed."""
    from genlab.runs import load_run

    if n < 1:
        raise GenlabError(f"--pairs must be >= 1, got {n}")
    run = load_run(teacher)
    settings = run.resolve_deterministic(steps=steps, guidance_scale=guidance, guidance_interval=interval)
    method = run.method
    gen = torch.Generator().manual_seed(seed)
    noises, xs, labels, nfe = [], [], [], 0
    chunk = 500
    from tqdm import tqdm

    for start in tqdm(range(0, n, chunk), desc="teacher pairs", disable=not progress, leave=False):
        size = min(chunk, n - start)
        cond = run.conditions(size, start=start)
        noise = method.sample_latent(size, generator=gen)
        s = method.sample(size, cond=cond, settings=settings, generator=gen, noise=noise)
        noises.append(noise.cpu())
        xs.append(s.x.cpu())  # images come back clamped to [-1, 1], as the teacher would save them
        if cond is not None:
            labels.append(torch.as_tensor(cond).cpu())
        nfe = s.nfe
    provenance = {
        "teacher": str(teacher),
        "teacher_step": run.step,
        "settings": settings.as_dict(),
        "nfe_per_sample": nfe,
        "n": n,
        "seed": seed,
        "labels": "classes cycled evenly" if labels else None,
    }
    arrays = {
        "noise": torch.cat(noises).numpy().astype(np.float32),
        "x": torch.cat(xs).numpy().astype(np.float32),
        "provenance": np.array(json.dumps(provenance)),
    }
    if labels:
        arrays["labels"] = torch.cat(labels).numpy().astype(np.int64)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return out


def distill(
    teacher: str | Path,
    method: str,
    *,
    out: str | Path | None = None,
    overrides: list[str] = (),
    pairs: int = PAIRS,
    pairs_steps: int | None = None,
    dry_run: bool = False,
    progress: bool = True,
) -> Path | str:
    """Train method `method`'s student of run `teacher` into `out` (default runs/NAME); returns the run folder
    (the resolved recipe as YAML text with dry_run). Reflow draws `pairs` couplings first, with the teacher's sampler
    at `pairs_steps` steps (default: its recipe's)."""
    from genlab.config import dump_recipe
    from genlab.train import train

    recipe = student_recipe(teacher, method, list(overrides), out=out)
    if dry_run:
        return dump_recipe(recipe)
    out = Path(out or f"runs/{recipe.name}")
    if (out / "checkpoint").exists():
        raise GenlabError(f"{out} already holds a run: use genlab train --resume {out}, or -o NEW_DIR")
    if method == "reflow" and not Path(recipe.method.pairs).is_file():
        write_pairs(
            teacher,
            recipe.method.pairs,
            n=pairs,
            seed=recipe.seed,
            steps=pairs_steps,
            guidance=recipe.method.teacher_guidance,  # the flow the student learns: the teacher's at that scale
            interval=recipe.method.teacher_guidance_interval,
            progress=progress,
        )
    return train(recipe, out, progress=progress)


@torch.no_grad()
def straightness(method, n: int = 512, *, steps: int = 64, seed: int = 0, cond=None, guidance: float = 1.0) -> float:
    """Liu et al.'s S = E ∫₀¹ ‖(ε − x₀) − v(x_t, t)‖² dt / D along the run's own Euler-integrated ODE (rectified
    path: the straight displacement per unit time is ε − x₀, with x₀ the ODE's end); 0 for a straight flow."""
    from genlab.paths import to_x_eps, velocity
    from genlab.settings import SampleSettings

    if method.path.name != "rectified":
        raise GenlabError("straightness is defined here for the rectified path")
    gen = torch.Generator().manual_seed(seed)
    eps = method.sample_latent(n, generator=gen)
    fn = method.prediction(n, cond, SampleSettings(guidance_scale=guidance))
    ts = torch.linspace(1, 0, steps + 1, dtype=torch.float64)
    x, vs = eps.clone(), []
    for t_hi, t_lo in zip(ts[:-1], ts[1:]):
        t = torch.full((n,), float(t_hi), device=x.device, dtype=x.dtype)
        v = velocity(method.path, t, *to_x_eps(method.path, method.cfg.target, x, t, fn(x, t)))
        vs.append(v)
        x = x + float(t_lo - t_hi) * v
    line = eps - x
    dims = math.prod(x.shape[1:])
    return float(torch.stack([(line - v).pow(2).flatten(1).sum(1) for v in vs]).mean() / dims)
