"""The `genlab` command line. Each subcommand parses arguments and calls one library function."""

from __future__ import annotations

import argparse
import json
import sys

import yaml

from genlab.errors import GenlabError


def _train(args, overrides: list[str]) -> None:
    from genlab.checkpoint import find_checkpoint, read_checkpoint_config
    from genlab.config import apply_override, dump_recipe, load_recipe, recipe_from_dict, recipe_to_dict
    from genlab.train import train

    if args.resume:
        recipe, _ = read_checkpoint_config(find_checkpoint(args.resume))
        if args.recipe or args.out:
            raise GenlabError("--resume takes the run folder only: drop RECIPE and --out")
        bad = [o for o in overrides if not o.lstrip("-").startswith("train.")]
        if bad:
            raise GenlabError(f"{bad[0]}: only train.* keys can change when resuming")
        tree = recipe_to_dict(recipe)
        for o in overrides:
            apply_override(tree, o)
        recipe, out = recipe_from_dict(tree, "command line"), args.resume
    else:
        if not args.recipe:
            raise GenlabError("give a recipe (e.g. genlab train recipes/digits-flow.yaml) or --resume RUN")
        bad = [o for o in overrides if not o.startswith("--") or "=" not in o]
        if bad:
            raise GenlabError(f"unexpected argument {bad[0]!r}: overrides look like --section.key=value")
        recipe = load_recipe(args.recipe, overrides)
        out = args.out or f"runs/{recipe.name}"
    if args.dry_run:
        print(dump_recipe(recipe), end="")
        return
    run = train(recipe, out, resume=bool(args.resume), progress=not args.no_progress)
    print(f"run written to {run}")


def _sample(args) -> None:
    from genlab.samplers import SAMPLER_INFO
    from genlab.sampling import sample_run, write_samples

    if args.list_samplers:
        width = max(map(len, SAMPLER_INFO))
        print("\n".join(f"{name:<{width}}  {info}" for name, info in SAMPLER_INFO.items()))
        return
    if not args.run or not args.output:
        raise GenlabError("genlab sample needs a run folder and -o FILE (.png or .npz)")
    stats: dict = {}
    x, labels = sample_run(
        args.run, n=args.n, label=args.label, seed=args.seed, stats=stats,
        sampler=args.sampler, steps=args.steps, guidance_scale=args.guidance_scale, grid=args.grid, eta=args.eta,
        classifier=args.classifier, classifier_scale=args.classifier_scale,
    )
    nrow = args.nrow or (8 if labels is None else min(args.n, int(labels.max()) + 1))
    out = write_samples(x, labels, args.output, nrow=nrow)
    how = f"{stats['sampler']}, {stats['steps']} steps" if "steps" in stats else stats["sampler"]
    print(f"{len(x)} samples ({how}, {stats['nfe']} NFE) written to {out}")


def _info(args) -> None:
    from genlab.sampling import run_info

    info = run_info(args.run)
    recipe = info.pop("recipe")
    print(yaml.safe_dump(info, sort_keys=False), end="")
    print("recipe:\n" + "".join("  " + line + "\n" for line in yaml.safe_dump(recipe, sort_keys=False).splitlines()))
    if args.json:
        print(json.dumps({**info, "recipe": recipe}))


def _eval(args) -> None:
    from genlab.evaluate import evaluate

    out = evaluate(
        args.run, samples=args.samples, data=args.data, out=args.out, n=args.n, seed=args.seed,
        features=args.features, inception_weights=args.inception_weights, likelihood_n=args.likelihood_n,
        likelihood_opts={"divergence": args.likelihood_divergence} if args.likelihood_divergence else None,
        sampler=args.sampler, steps=args.steps, guidance_scale=args.guidance_scale,
    )
    print(f"evaluation written to {out.parent} (eval.json, eval.md, plots)")


def _interpolate(args) -> None:
    from genlab.interpolate import write_interpolation

    out = write_interpolation(args.run, args.output, n_rows=args.n_rows, steps=args.steps, label=args.label,
                              mode=args.mode, seed=args.seed)
    print(f"{args.n_rows} interpolations of {args.steps} steps ({args.mode}) written to {out}")


def _compare(args) -> None:
    from genlab.compare import compare

    out = compare(args.recipes, budget_minutes=args.budget_minutes, out=args.out, n=args.n, seed=args.seed,
                  progress=not args.no_progress)
    print(f"comparison written to {out} (+ compare.json, compare.png)")


def _features(args) -> None:
    from genlab.evaluate import train_features

    out, acc = train_features(args.data, out=args.out, epochs=args.epochs, seed=args.seed)
    print(f"feature net written to {out} (+ .json); held-out accuracy {acc:.4f}")


def _generate(args) -> None:
    from genlab.generate import generate
    from genlab.sampling import write_samples

    x = generate(args.prompt, n=args.n, steps=args.steps, guidance_scale=args.guidance_scale, seed=args.seed,
                 sampler=args.sampler, run=args.run)
    out = write_samples(x, None, args.output, nrow=min(args.n, 8))
    print(f"{len(x)} images for {args.prompt!r} written to {out}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genlab", description="Train, sample and evaluate generative models.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a recipe (overrides: --section.key=value)")
    t.add_argument("recipe", nargs="?", help="YAML recipe, e.g. recipes/digits-flow.yaml")
    t.add_argument("--resume", metavar="RUN", help="continue the run in this folder")
    t.add_argument("--out", help="run folder (default runs/<recipe name>)")
    t.add_argument("--dry-run", action="store_true", help="print the resolved recipe and exit")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    s = sub.add_parser("sample", help="sample from a run into a PNG grid or an .npz file")
    s.add_argument("run", nargs="?")
    s.add_argument("-o", "--output", help="grid.png or samples.npz")
    s.add_argument("--list-samplers", action="store_true", help="describe every sampler and exit")
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--label", type=int, help="class to sample (default: cycle the classes)")
    s.add_argument("--steps", type=int)
    s.add_argument("--sampler")
    s.add_argument("--grid")
    s.add_argument("--guidance-scale", type=float)
    s.add_argument("--eta", type=float)
    s.add_argument("--classifier", metavar="RUN", help="noisy_classifier run for classifier guidance")
    s.add_argument("--classifier-scale", type=float, default=1.0,
                   help="classifier guidance scale (0 none, 1 the exact conditional; default 1)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--nrow", type=int, help="images per row in the grid")

    i = sub.add_parser("info", help="recipe, parameter count, step and last metrics of a run")
    i.add_argument("run")
    i.add_argument("--json", action="store_true", help="also print one JSON line")

    e = sub.add_parser("eval", help="metrics of a run's samples (or of a samples .npz) against a dataset")
    e.add_argument("run", nargs="?", help="run folder to sample from (or use --samples)")
    e.add_argument("--samples", help="samples .npz ('images' uint8 NHWC or 'x' float, optional 'labels')")
    e.add_argument("--data", help="with --samples: digits[:SIZE], toy2d:NAME, an image folder or an .npz file")
    e.add_argument("--n", type=int, help="number of samples (default 1000 for a run, all for --samples)")
    e.add_argument("--sampler")
    e.add_argument("--steps", type=int)
    e.add_argument("--guidance-scale", type=float)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--features", help="feature net: digits, pixels or a .safetensors from 'genlab features train'")
    e.add_argument("--inception-weights", metavar="PATH",
                   help="FID Inception-v3 weights as .safetensors (pytorch-fid's pt_inception-2015-12-05, converted)")
    e.add_argument("--likelihood-n", type=int, default=64,
                   help="held-out items scored by the method's likelihood (bits/dim), if it has one; 0 disables")
    e.add_argument("--likelihood-divergence", choices=("auto", "exact", "hutchinson"),
                   help="flow/diffusion: trace of the velocity's Jacobian (auto: exact up to 32 dims)")
    e.add_argument("--out", help="output folder (default RUN/eval or ./eval)")

    ip = sub.add_parser("interpolate", help="rows of decoded latent interpolations (GAN, VAE) as a PNG grid")
    ip.add_argument("run")
    ip.add_argument("-o", "--output", default="interp.png", help="grid .png (default interp.png)")
    ip.add_argument("--n-rows", type=int, default=6, help="interpolations (rows)")
    ip.add_argument("--steps", type=int, default=8, help="points per interpolation, endpoints included")
    ip.add_argument("--label", type=int, help="class of every row (default: row i gets class i mod classes)")
    ip.add_argument("--mode", default="slerp", choices=["slerp", "lerp"])
    ip.add_argument("--seed", type=int, default=0)

    g = sub.add_parser("generate", help="images from a text prompt (default: the shipped shapes checkpoint)")
    g.add_argument("prompt", help='e.g. "a red circle above a blue square"')
    g.add_argument("-o", "--output", default="out.png", help="grid .png or .npz (default out.png)")
    g.add_argument("--n", type=int, default=4)
    g.add_argument("--steps", type=int, default=16)
    g.add_argument("--guidance-scale", type=float, default=4.0)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--sampler", help="default: the run's recipe (genlab sample --list-samplers)")
    g.add_argument("--run", help="a text-to-image run folder (default: the checkpoint shipped with genlab)")

    c = sub.add_parser("compare", help="train recipes for the same CPU budget, evaluate alike, tabulate")
    c.add_argument("recipes", nargs="+", help="YAML recipes (a token prior's tokenizer recipe is trained first)")
    c.add_argument("--budget-minutes", type=float, default=5.0, help="training wall time per recipe")
    c.add_argument("--out", default="runs/compare", help="folder: OUT/<name> per run + compare.md/json/png")
    c.add_argument("--n", type=int, default=1000, help="samples per run for the metrics")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--no-progress", action="store_true", help="no progress bars")

    f = sub.add_parser("features", help="feature networks for the image metrics")
    fsub = f.add_subparsers(dest="features_command", required=True)
    ft = fsub.add_parser("train", help="train a small CNN classifier whose penultimate layer gives features")
    ft.add_argument("data", help="labelled image data: digits[:SIZE], an image folder or an .npz file")
    ft.add_argument("--out", help="weights file (default features-<data>.safetensors; a .json sidecar is added)")
    ft.add_argument("--epochs", type=int, default=40)
    ft.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    try:
        if args.command == "train":
            _train(args, extra)
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        elif args.command == "sample":
            _sample(args)
        elif args.command == "info":
            _info(args)
        elif args.command == "eval":
            _eval(args)
        elif args.command == "interpolate":
            _interpolate(args)
        elif args.command == "features":
            _features(args)
        elif args.command == "compare":
            _compare(args)
        elif args.command == "generate":
            _generate(args)
    except GenlabError as e:
        print(f"genlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genlab: interrupted; the last checkpoint is intact (resume with genlab train --resume RUN)",
              file=sys.stderr)
        return 130
    return 0
