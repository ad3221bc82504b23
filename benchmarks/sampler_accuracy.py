"""Sampler accuracy per NFE: genlab against diffusers, defaults against defaults and tuned against tuned.

Problems: Gaussian mixtures with an exact velocity (genlab.analytic), rectified path, `flow` target, drawn by
`mixture(seed)` (dimension 2–32, 2–16 modes, random spread, stds and weights). Seeds TUNING_SEEDS are the ones
the defaults (DEFAULT_GRIDS, option defaults) were chosen on; HELD_OUT_SEEDS were used for nothing else and
give the reported numbers. Error = RMSE of the t = 0 endpoint against a Dormand–Prince solve at rtol = atol =
1e-10 (checked against scipy's DOP853 on one problem, in the JSON). NFE is counted by wrapping the model; for
each budget B ∈ {4, 8, 16} a sampler gets the most steps whose NFE ≤ B.

Defaults: every deterministic genlab sampler with grid="auto" and no options (what `genlab sample` gives);
diffusers' FlowMatchEuler/FlowMatchHeun as constructed, DPMSolverMultistep and UniPCMultistep with only what
makes them flow schedulers (prediction_type="flow_prediction", use_flow_sigmas=True). diffusers' model sees
the scheduler's own σ (its best case). "Best default" = the lowest error over each side's default samplers,
per problem. Tuned: the lowest error over grids and options for each side (TUNED_GENLAB, TUNED_DIFFUSERS).
Reported per budget: the geometric mean over held-out problems of the ratio genlab / diffusers, and its
median and worst case. Goal (issue 10, defect 13): default ratio ≤ 0.5 at 4, 8 and 16 NFE.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np
import torch
from scipy.integrate import solve_ivp

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402
from genlab.analytic import GaussianMixture  # noqa: E402
from genlab.atomic import atomic_path, atomic_write_text  # noqa: E402
from genlab.paths import get_path  # noqa: E402
from genlab.samplers import DEFAULT_GRIDS, sample  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = (4, 8, 16)
PATH = get_path("rectified")
TUNING_SEEDS = tuple(range(0, 10))  # chose DEFAULT_GRIDS and the default options
HELD_OUT_SEEDS = tuple(range(100, 116))  # used for nothing but these numbers
GENLAB_DEFAULTS = ("euler", "heun", "midpoint", "rk4", "dpmpp_2m", "dpmpp_3m", "unipc", "ddim", "edm")
TUNED_GRIDS = (
    {"grid": "uniform"},
    {"grid": "logit"},
    {"grid": "logit", "power": 3.0},
    {"grid": "shift"},
    {"grid": "shift", "shift": 0.7},
    {"grid": "karras"},
    {"grid": "log_snr"},
    {"grid": "asinh"},
)
TUNED_GENLAB = {
    f"{s}[{'/'.join(map(str, g.values()))}]": {"sampler": s, **g}
    for s in GENLAB_DEFAULTS
    if s != "ddim"
    for g in TUNED_GRIDS
}
TUNED_GENLAB.update(
    {
        f"unipc{k}[{'/'.join(map(str, g.values()))}]": {"sampler": "unipc", "order": k, **g}
        for k in (3, 4)
        for g in TUNED_GRIDS
    }
)
FLOW = {"prediction_type": "flow_prediction", "use_flow_sigmas": True}
DIFFUSERS_DEFAULTS = {  # name -> (constructor kwargs, steps for a budget)
    "FlowMatchEuler": ("FlowMatchEulerDiscreteScheduler", {}),
    "FlowMatchHeun": ("FlowMatchHeunDiscreteScheduler", {}),
    "DPMSolverMultistep": ("DPMSolverMultistepScheduler", FLOW),
    "UniPCMultistep": ("UniPCMultistepScheduler", FLOW),
}
SIGMAS = ({}, {"use_karras_sigmas": True}, {"use_exponential_sigmas": True}, {"use_beta_sigmas": True})
TUNED_DIFFUSERS = dict(DIFFUSERS_DEFAULTS)
TUNED_DIFFUSERS.update(
    {
        f"{cls[:-9]}{k}{list(sig) or ''}/shift{fs}": (cls, {**FLOW, "solver_order": k, "flow_shift": fs, **sig})
        for cls in ("DPMSolverMultistepScheduler", "UniPCMultistepScheduler")
        for k in (2, 3)
        for sig in SIGMAS
        for fs in (1.0, 3.0)
    }
)
TUNED_DIFFUSERS.update(
    {f"FlowMatchEuler/shift{fs}": ("FlowMatchEulerDiscreteScheduler", {"shift": fs}) for fs in (0.7, 3.0)}
)


def mixture(seed: int) -> tuple[GaussianMixture, dict]:
    """A random mixture: dim ∈ {2, 4, 8, 16, 32}, 2–16 modes, means spread·N(0, I), stds lo·U(1, 3)."""
    g = torch.Generator().manual_seed(seed)
    dim = (2, 4, 8, 16, 32)[int(torch.randint(5, (1,), generator=g))]
    k = int(torch.randint(2, 17, (1,), generator=g))
    spread = float(0.5 + 1.5 * torch.rand(1, generator=g, dtype=torch.float64))
    means = spread * torch.randn(k, dim, generator=g, dtype=torch.float64)
    lo = float(0.05 + 0.25 * torch.rand(1, generator=g, dtype=torch.float64))
    stds = lo * (1 + 2 * torch.rand(k, generator=g, dtype=torch.float64))
    weights = 0.3 + torch.rand(k, generator=g, dtype=torch.float64)
    return GaussianMixture(means, stds, weights), {
        "seed": seed,
        "dim": dim,
        "modes": k,
        "spread": round(spread, 3),
        "std_min": round(float(stds.min()), 3),
    }


def exact_velocity(gm: GaussianMixture):
    """v(x, t) on the rectified path; at t = 0 the closed form −x (E[eps | x_0] = 0)."""
    flow = gm.flow_fn(PATH)

    def v(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.double()
        return torch.where((t == 0)[:, None], -x.double(), flow(x.double(), t.clamp_min(1e-300)))

    return v


def reference(v, noise: torch.Tensor) -> torch.Tensor:
    return sample(v, noise, sampler="dopri5", steps=1, path=PATH, target="flow", rtol=1e-10, atol=1e-10)


def scipy_check(v, noise: torch.Tensor, ref: torch.Tensor) -> float:
    shape = noise.shape

    def rhs(t, y):
        x = torch.from_numpy(y).reshape(shape)
        return v(x, torch.full((shape[0],), t, dtype=torch.float64)).reshape(-1).numpy()

    sol = solve_ivp(rhs, (1.0, 0.0), noise.reshape(-1).numpy(), method="DOP853", rtol=1e-11, atol=1e-13)
    return rmse(torch.from_numpy(sol.y[:, -1]).reshape(shape), ref)


def rmse(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float((x.double() - ref).pow(2).mean().sqrt())


def run_genlab(v, noise, opts: dict, steps: int) -> tuple[torch.Tensor, int]:
    stats: dict = {}
    out = sample(v, noise, steps=steps, path=PATH, target="flow", stats=stats, **opts)
    return out, stats["nfe"]


def steps_for_budget(v, noise, opts: dict, budget: int) -> int | None:
    best = None
    for steps in range(1, budget + 1):
        if run_genlab(v, noise[:1], opts, steps)[1] > budget:
            break
        best = steps
    return best


def run_diffusers(cls: str, kwargs: dict, v, noise, budget: int) -> tuple[torch.Tensor, int] | None:
    import diffusers  # the bench extra: pip install -e ".[bench]"

    scheduler = getattr(diffusers, cls)(**kwargs)
    steps = (budget + 1) // 2 if "Heun" in cls else budget
    scheduler.set_timesteps(steps)
    x, nfe = noise.clone(), 0
    for i, t in enumerate(scheduler.timesteps):
        sigma = torch.full((x.shape[0],), float(scheduler.sigmas[i]), dtype=torch.float64)
        x = scheduler.step(v(x, sigma), t, x).prev_sample
        nfe += 1
    return x, nfe


def errors_genlab(configs: dict, v, noise, ref) -> dict:
    out = {}
    for label, opts in configs.items():
        row = {}
        for b in BUDGETS:
            steps = steps_for_budget(v, noise, opts, b)
            if steps is not None:
                x, nfe = run_genlab(v, noise, opts, steps)
                assert nfe <= b, (label, nfe, b)
                row[str(b)] = rmse(x, ref)
        out[label] = row
    return out


def errors_diffusers(configs: dict, v, noise, ref) -> dict:
    out = {}
    for label, (cls, kwargs) in configs.items():
        row = {}
        for b in BUDGETS:
            try:
                x, nfe = run_diffusers(cls, kwargs, v, noise, b)
            except Exception as err:  # an option combination diffusers refuses: not a candidate
                print(f"  diffusers {label} @ {b}: {type(err).__name__}")
                continue
            assert nfe <= b, (label, nfe, b)
            if torch.isfinite(x).all():
                row[str(b)] = rmse(x, ref)
        out[label] = row
    return out


def best(rows: dict, budget: int) -> tuple[str, float]:
    cands = [(k, r[str(budget)]) for k, r in rows.items() if str(budget) in r]
    return min(cands, key=lambda kv: kv[1])


def bench_problem(seed: int, n: int, tuned: bool, check: bool) -> dict:
    gm, info = mixture(seed)
    v = exact_velocity(gm)
    noise = torch.randn(n, info["dim"], generator=torch.Generator().manual_seed(1000 + seed), dtype=torch.float64)
    ref = reference(v, noise)
    out = {**info}
    if check:
        out["reference_vs_scipy_dop853_rmse"] = scipy_check(v, noise, ref)
    out["genlab_defaults"] = errors_genlab({s: {"sampler": s, "grid": "auto"} for s in GENLAB_DEFAULTS}, v, noise, ref)
    out["diffusers_defaults"] = errors_diffusers(DIFFUSERS_DEFAULTS, v, noise, ref)
    if tuned:
        out["genlab_tuned"] = errors_genlab(TUNED_GENLAB, v, noise, ref)
        out["diffusers_tuned"] = errors_diffusers(TUNED_DIFFUSERS, v, noise, ref)
    return out


def geomean(xs: list[float]) -> float:
    return math.exp(sum(map(math.log, xs)) / len(xs))


def summarize(problems: list[dict], ours: str, theirs: str) -> dict:
    out = {}
    for b in BUDGETS:
        g = [best(p[ours], b) for p in problems]
        d = [best(p[theirs], b) for p in problems]
        ratios = [gi[1] / di[1] for gi, di in zip(g, d)]
        wins = {}
        for k, _ in g:
            wins[k] = wins.get(k, 0) + 1
        out[str(b)] = {
            "genlab_geomean_rmse": geomean([e for _, e in g]),
            "diffusers_geomean_rmse": geomean([e for _, e in d]),
            "ratio_geomean": geomean(ratios),
            "ratio_median": float(np.median(ratios)),
            "ratio_worst": max(ratios),
            "genlab_best_counts": wins,
            "goal_met": geomean(ratios) <= 0.5,
        }
    return out


def plot(held: list[dict], path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for ax, (ours, theirs, title) in zip(
        axes,
        (
            ("genlab_defaults", "diffusers_defaults", "defaults vs defaults"),
            ("genlab_tuned", "diffusers_tuned", "tuned vs tuned"),
        ),
    ):
        if ours not in held[0]:
            continue
        for key, style, side in ((ours, "o-", "genlab"), (theirs, "s--", "diffusers")):
            labels = DIFFUSERS_DEFAULTS if side == "diffusers" and "defaults" in key else held[0][key]
            if "defaults" in key:
                for label in labels:
                    ys = [
                        geomean([p[key][label][str(b)] for p in held])
                        for b in BUDGETS
                        if all(str(b) in p[key][label] for p in held)
                    ]
                    ax.loglog(BUDGETS[-len(ys) :], ys, style, alpha=0.6, label=f"{side} {label}")
            ys = [geomean([best(p[key], b)[1] for p in held]) for b in BUDGETS]
            ax.loglog(BUDGETS, ys, style, lw=3, color="k" if side == "genlab" else "0.5", label=f"{side} best")
        ax.set(
            title=f"{title}: geometric mean over {len(held)} held-out mixtures",
            xlabel="NFE",
            ylabel="endpoint RMSE vs reference",
        )
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    print(f"wrote {path}")


def table(summary: dict, title: str) -> str:
    rows = [
        f"### {title}",
        "",
        "| NFE | genlab RMSE | diffusers RMSE | ratio (geomean) | median | worst |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for b in BUDGETS:
        s = summary[str(b)]
        rows.append(
            f"| {b} | {s['genlab_geomean_rmse']:.2e} | {s['diffusers_geomean_rmse']:.2e} | "
            f"{s['ratio_geomean']:.2f} | {s['ratio_median']:.2f} | {s['ratio_worst']:.2f} |"
        )
    return "\n".join(rows) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sampler_accuracy.json"))
    p.add_argument("--n", type=int, default=256, help="noise samples per mixture")
    p.add_argument("--no-tuned", action="store_true", help="skip the tuned-vs-tuned sweep")
    args = p.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    tuning = [bench_problem(s, args.n, tuned=False, check=False) for s in TUNING_SEEDS]
    held = [bench_problem(s, args.n, tuned=not args.no_tuned, check=(s == HELD_OUT_SEEDS[0])) for s in HELD_OUT_SEEDS]
    result = {
        "diffusers": importlib.metadata.version("diffusers"),
        "path": "rectified",
        "target": "flow",
        "budgets": list(BUDGETS),
        "n_noise": args.n,
        "tuning_seeds": list(TUNING_SEEDS),
        "held_out_seeds": list(HELD_OUT_SEEDS),
        "default_grids": DEFAULT_GRIDS,
        "genlab_default_samplers": list(GENLAB_DEFAULTS),
        "diffusers_default_schedulers": {k: [c, kw] for k, (c, kw) in DIFFUSERS_DEFAULTS.items()},
        "goal": "held-out geomean of genlab best-default RMSE / diffusers best-default RMSE <= 0.5 at 4, 8, 16 NFE",
        "held_out_defaults": summarize(held, "genlab_defaults", "diffusers_defaults"),
        "tuning_defaults": summarize(tuning, "genlab_defaults", "diffusers_defaults"),
    }
    if not args.no_tuned:
        result["held_out_tuned"] = summarize(held, "genlab_tuned", "diffusers_tuned")
    result["goal_met"] = {b: result["held_out_defaults"][b]["goal_met"] for b in map(str, BUDGETS)}
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["problems"] = {"tuning": tuning, "held_out": held}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps({"machine": machine(), **result}, indent=1) + "\n")
    print(f"wrote {out}")
    md = [
        "# Sampler accuracy: genlab vs diffusers (benchmarks/sampler_accuracy.py)",
        "",
        f"Endpoint RMSE on {len(HELD_OUT_SEEDS)} held-out exact-velocity Gaussian mixtures (rectified flow, dims "
        "2–32, 2–16 modes), geometric means; ratio = genlab / diffusers per mixture. Defaults were chosen on "
        f"seeds {TUNING_SEEDS[0]}–{TUNING_SEEDS[-1]}, held-out seeds {HELD_OUT_SEEDS[0]}–{HELD_OUT_SEEDS[-1]}.",
        "",
        table(result["held_out_defaults"], "Defaults vs defaults (best default sampler per side)"),
    ]
    if not args.no_tuned:
        md.append(table(result["held_out_tuned"], "Tuned vs tuned (best over grids and options per side)"))
    atomic_write_text(out.with_suffix(".md"), "\n".join(md))
    plot(held, out.with_suffix(".png"))
    for key in ("held_out_defaults", "held_out_tuned"):
        for b in BUDGETS:
            if key in result:
                s = result[key][str(b)]
                print(
                    f"{key} NFE {b:2d}: ratio {s['ratio_geomean']:.2f} (median {s['ratio_median']:.2f}, worst "
                    f"{s['ratio_worst']:.2f}) best {s['genlab_best_counts']}"
                )


if __name__ == "__main__":
    main()
