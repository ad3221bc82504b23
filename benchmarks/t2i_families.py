"""Three text-to-image families on the same shapes prompts, at matched parameters and CPU minutes: the latent DiT
(rectified flow, recipes/shapes-t2i.yaml), a Parti-style token transformer over VQ codes (recipes/shapes-parti.yaml)
and a text-conditional GAN (recipes/shapes-text-gan.yaml) — the notes' AR vs GAN vs diffusion comparison, measured.

    python benchmarks/t2i_families.py [--minutes 8] [--threads 1] [--n-per-prompt 2] [--reuse]
        [--out benchmarks/results/t2i_families.json] [--docs docs/t2i_families.md]

Stage 1 (the frozen parts, each trained by its own recipe, their CPU minutes listed apart): the KL autoencoder the DiT
reads latents from, the VQ tokenizer the token transformer reads codes from, and a CLIP used only for the CLIP score.
Stage 2, the comparison: every family gets the same training budget in CPU minutes at the same thread count. Its step
count is set from a short probe of its own steps per second, so that each one finishes its learning-rate schedule
inside the budget (a time limit alone would cut the cosine decay short for the slower ones). Each is then scored alike:
the GenEval-style suite (`genlab.metrics.geneval`, per category with 95 % intervals), FD against renders of the same
captions and CLIP score (`genlab.metrics.t2i`, seen and held-out colour×shape pairs), images per second of sampling
at the recipe's own settings and NFE (network evaluations per image).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from common import write_json
from genlab.atomic import atomic_path, atomic_write_text
from genlab.config import load_recipe
from genlab.data.images import save_grid
from genlab.metrics.geneval import CATEGORIES, builtin_suite, geneval
from genlab.metrics.t2i import evaluate_t2i, prompt_set, render_captions
from genlab.runs import load_run
from genlab.train import train

ROOT = Path(__file__).resolve().parents[1]
STAGE1 = {  # name: (recipe, what it is for)
    "shapes-autoencoder": ("recipes/shapes-autoencoder.yaml", "latents of the DiT"),
    "shapes-vqvae": ("recipes/shapes-vqvae.yaml", "codes of the token transformer"),
    "shapes-clip": ("recipes/shapes-clip.yaml", "the CLIP score only"),
}
FAMILIES = {  # name: (recipe, overrides pointing at the stage-1 runs, family)
    "latent DiT": ("recipes/shapes-t2i.yaml", {"method.autoencoder": "shapes-autoencoder"}, "diffusion / flow"),
    "token transformer": ("recipes/shapes-parti.yaml", {"method.tokenizer": "shapes-vqvae"}, "autoregressive"),
    "text GAN": ("recipes/shapes-text-gan.yaml", {}, "GAN"),
}
PICTURE_PROMPTS = [
    "a red circle",
    "a large blue square",
    "a yellow triangle",
    "a green square to the left of an orange circle",
    "a white circle above a magenta triangle",
    "two red squares",
]


def overrides(given: dict, base: Path, **more) -> list[str]:
    pairs = {k: str(base / v) for k, v in given.items()} | more
    return [f"--{k}={v}" for k, v in pairs.items()]


def train_stage1(base: Path, *, reuse: bool) -> dict:
    """Each frozen part trained by its own recipe as written (with --reuse: the run already there is kept)."""
    out = {}
    for name, (recipe, why) in STAGE1.items():
        run_dir = base / name
        minutes = None
        if not (reuse and (run_dir / "checkpoint").is_dir()):
            shutil.rmtree(run_dir, ignore_errors=True)
            start = time.perf_counter()
            train(load_recipe(ROOT / recipe), run_dir, progress=False)
            minutes = round((time.perf_counter() - start) / 60, 2)
        out[name] = {"recipe": recipe, "for": why, "step": load_run(run_dir).step, "minutes": minutes}
        print(f"stage 1 {name}: step {out[name]['step']}, {minutes} min")
    return out


def probe_steps_per_second(recipe_path: str, extra: list[str], probe: int) -> float:
    """Training steps per second of a recipe, read from the trainer's samples/s over `probe` steps."""
    with tempfile.TemporaryDirectory() as tmp:
        recipe = load_recipe(
            ROOT / recipe_path,
            [*extra, f"--train.steps={probe}", f"--train.log_every={probe // 2}", "--train.sample_every=0",
             f"--train.checkpoint_every={probe}", "--train.time_limit_minutes=0", "--train.warmup_steps=0"],
        )  # fmt: skip
        train(recipe, Path(tmp) / "probe", progress=False)
        rows = [json.loads(line) for line in (Path(tmp) / "probe" / "metrics.jsonl").read_text().splitlines()]
        rate = [r["samples_per_s"] for r in rows if "samples_per_s" in r][-1]  # the second half: warm
        return rate / recipe.train.batch_size


def parameters(method) -> dict:
    """Trained parameters (frozen parts excluded), and those a sample runs through (a GAN's D is not)."""
    trained = sum(p.numel() for p in method.parameters() if p.requires_grad)
    critic = sum(p.numel() for n, p in method.named_parameters() if p.requires_grad and ".disc" in f".{n}")
    return {"trained": trained, "sampling": trained - critic, "discriminator": critic}


@torch.no_grad()
def images_per_second(run, n: int = 64, repeats: int = 3) -> dict:
    prompts = [PICTURE_PROMPTS[i % len(PICTURE_PROMPTS)] for i in range(n)]
    run.sample(8, prompts=prompts[:8], seed=0)  # warm-up
    times, nfe = [], None
    for r in range(repeats):
        start = time.perf_counter()
        out = run.sample(n, prompts=prompts, seed=r)
        times.append(time.perf_counter() - start)
        nfe = out.nfe
    median = sorted(times)[len(times) // 2]
    return {"images_per_s": round(n / median, 2), "nfe": nfe, "n": n, "repeats": repeats}


def run_family(name: str, base: Path, args) -> dict:
    recipe_path, given, family = FAMILIES[name]
    run_dir = base / name.replace(" ", "-")
    extra = overrides(given, base)
    if args.reuse and (run_dir / "checkpoint").is_dir():
        info = json.loads((run_dir / "bench.json").read_text())
    else:
        rate = probe_steps_per_second(recipe_path, extra, args.probe)
        steps = max(50, int(rate * args.minutes * 60))
        shutil.rmtree(run_dir, ignore_errors=True)
        recipe = load_recipe(
            ROOT / recipe_path,
            [*extra, f"--train.steps={steps}", f"--train.time_limit_minutes={2 * args.minutes}",
             f"--train.checkpoint_every={steps}"],
        )  # fmt: skip
        start = time.perf_counter()
        train(recipe, run_dir, progress=False)
        info = {
            "probe_steps_per_s": round(rate, 3),
            "steps": steps,
            "minutes": round((time.perf_counter() - start) / 60, 2),
        }
        atomic_write_text(run_dir / "bench.json", json.dumps(info))
    run = load_run(run_dir)
    print(f"{name}: step {run.step}, {info['minutes']} min")

    def generate(texts, seed):
        return run.sample(len(texts), prompts=texts, seed=seed).x

    suite = geneval(generate, builtin_suite(), n_per_prompt=args.n_per_prompt, seed=0)
    quality = evaluate_t2i(
        generate,
        prompts_seen=prompt_set("test", args.prompts),
        prompts_heldout=prompt_set("heldout", args.prompts),
        n_per_prompt=args.per_prompt,
        clip_run=base / "shapes-clip",
    )
    picture = run.sample(len(PICTURE_PROMPTS) * 4, prompts=[p for p in PICTURE_PROMPTS for _ in range(4)], seed=0).x
    return {
        "recipe": recipe_path,
        "family": family,
        "run_step": run.step,
        **info,
        "parameters": parameters(run.method),
        "sampling": {"settings": run.settings.as_dict(run.method.sample_settings), **images_per_second(run)},
        "geneval": suite["rows"]["model"],
        "quality": {k: quality[k] for k in ("seen", "heldout")},
        "_picture": picture,
    }


def picture(rows: dict, path: Path) -> None:
    """One row per family (and the renders): 4 images per prompt, prompts left to right."""
    k = 4
    texts = [p for p in PICTURE_PROMPTS for _ in range(k)]
    real = render_captions(texts, seed=0)
    images = torch.cat([real, *(r["_picture"] for r in rows.values())])
    with atomic_path(path) as tmp:
        save_grid(images, tmp, nrow=len(texts), row_labels=["renders", *rows], scale=2)


def markdown(result: dict) -> str:
    rows = result["families"]
    s1 = result["stage1"]
    lines = [
        "# Text to image, three families on the same prompts",
        "",
        f"Each family trained for {result['settings']['minutes']} CPU minutes ({result['settings']['threads']} "
        "thread) on the captioned shapes, then scored alike; generated by `benchmarks/t2i_families.py` "
        "(every number below is in `benchmarks/results/t2i_families.json`).",
        "",
        "![Samples of the three families for six prompts (four seeds each) under the renders of the same prompts]"
        "(images/t2i_families.png)",
        "",
        "| family | recipe | trained params | steps | overall | "
        + " | ".join(CATEGORIES)
        + " | FD seen | FD held-out | CLIP score | images/s | NFE |",
        "|---|---|---|---|---|" + "---|" * len(CATEGORIES) + "---|---|---|---|---|",
    ]
    for name, r in rows.items():
        g = r["geneval"]
        cats = " | ".join(f"{100 * g['categories'][c]['accuracy']:.1f}" for c in CATEGORIES)
        q = r["quality"]
        clip = q["seen"].get("clip_score")
        lines.append(
            f"| {name} ({r['family']}) | `{r['recipe']}` | {r['parameters']['sampling'] / 1e6:.2f} M | {r['steps']} | "
            f"{100 * g['overall']:.1f} [{100 * g['overall_ci95'][0]:.1f}, {100 * g['overall_ci95'][1]:.1f}] | {cats} | "
            f"{q['seen']['fd']:.1f} | {q['heldout']['fd']:.1f} | {'–' if clip is None else f'{clip:.3f}'} | "
            f"{r['sampling']['images_per_s']:.1f} | {r['sampling']['nfe']} |"
        )
    lines += [
        "",
        "GenEval-style accuracy in % (95 % bootstrap interval over prompt specs for the overall number); FD in the "
        "shapes feature network against renders of the same captions (lower is better); CLIP score with the "
        "stage-1 CLIP; images/s at each recipe's own sampler settings, one thread. "
        "Trained parameters exclude the frozen parts, which each family needs and trained first: "
        + ", ".join(f"{k} ({v['for']}, step {v['step']})" for k, v in s1.items())
        + ". The GAN's discriminator ("
        + ", ".join(
            f"{r['parameters']['discriminator'] / 1e6:.2f} M" for r in rows.values() if r["parameters"]["discriminator"]
        )
        + ") is trained but not run at sampling time.",
        "",
        "What it shows, and what it cannot: " + reading(rows),
        "",
        "Each family's step count was set from a probe of its own speed, aiming at the same wall time (they took "
        f"{min(r['minutes'] for r in rows.values()):.1f}–{max(r['minutes'] for r in rows.values()):.1f} minutes); "
        "the machine was shared with other jobs while this ran, "
        "so the budgets are matched in wall time more than in CPU time, and the images/s were measured at different "
        "moments. At a few hundred steps none of the three follows prompts well: this is the comparison at the small "
        "end, not a verdict on the families.",
        "",
    ]
    return "\n".join(lines)


def reading(rows: dict) -> str:
    """Sentences read from the rows (every number from the JSON)."""
    best = max(rows, key=lambda k: rows[k]["geneval"]["overall"])
    fd = min(rows, key=lambda k: rows[k]["quality"]["seen"]["fd"])
    fast = max(rows, key=lambda k: rows[k]["sampling"]["images_per_s"])
    slow = min(rows, key=lambda k: rows[k]["sampling"]["images_per_s"])
    ratio = rows[fast]["sampling"]["images_per_s"] / rows[slow]["sampling"]["images_per_s"]
    return (
        f"the {best} scores highest overall ({100 * rows[best]['geneval']['overall']:.1f} %), the {fd} has the lowest "
        f"FD on seen prompts ({rows[fd]['quality']['seen']['fd']:.1f}), and the {fast} samples {ratio:.0f}x faster "
        f"than the {slow} ({rows[fast]['sampling']['nfe']} network pass per image against "
        f"{rows[slow]['sampling']['nfe']})."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=8.0, help="CPU minutes of training per family")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--probe", type=int, default=40, help="steps of the speed probe")
    ap.add_argument("--n-per-prompt", type=int, default=2, help="images per GenEval-suite prompt")
    ap.add_argument("--prompts", type=int, default=24, help="prompts per set (seen, held-out) for FD and CLIP score")
    ap.add_argument("--per-prompt", type=int, default=8, help="images per prompt for FD and CLIP score")
    ap.add_argument("--runs", default="runs/bench-t2i-families")
    ap.add_argument("--reuse", action="store_true", help="score the runs already there instead of training")
    ap.add_argument("--only", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--out", default="benchmarks/results/t2i_families.json")
    ap.add_argument("--docs", default="docs/t2i_families.md")
    ap.add_argument("--docs-only", action="store_true", help="rewrite the docs page from the JSON, nothing else")
    args = ap.parse_args()
    if args.docs_only:
        atomic_write_text(args.docs, markdown(json.loads(Path(args.out).read_text())))
        print(f"wrote {args.docs}")
        return
    torch.set_num_threads(args.threads)
    base = Path(args.runs)
    stage1 = train_stage1(base, reuse=args.reuse)
    rows = {name: run_family(name, base, args) for name in args.only}
    picture(rows, ROOT / "docs" / "images" / "t2i_families.png")
    for r in rows.values():
        del r["_picture"]
    result = {
        "settings": {
            k: getattr(args, k) for k in ("minutes", "threads", "probe", "n_per_prompt", "prompts", "per_prompt")
        },
        "stage1": stage1,
        "families": rows,
    }
    write_json(args.out, result)
    atomic_write_text(args.docs, markdown(result))
    print(f"wrote {args.docs}")


if __name__ == "__main__":
    main()
