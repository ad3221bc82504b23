"""The `genlab` command line. Each subcommand parses its arguments and calls one library function; the table
COMMANDS maps names to those handlers, and flags shared by several subcommands are defined once (PARENTS)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from genlab.errors import GenlabError

T2I_RUN_HELP = "a text-to-image run folder or shipped:NAME (default: shipped:shapes-t2i-curriculum)"

SETTINGS = ("sampler", "steps", "grid", "guidance_scale", "guidance_interval", "eta", "temperature", "top_k", "top_p")


def _settings(args) -> dict:
    """The sample settings given on the command line (None = the run's recipe value)."""
    return {k: getattr(args, k) for k in SETTINGS}


def _train(args, overrides: list[str]) -> None:
    from genlab.config import dump_recipe
    from genlab.runs import recipe_for
    from genlab.train import train

    if args.resume and args.out:
        raise GenlabError("--resume takes the run folder only: drop RECIPE and --out")
    recipe = recipe_for(args.recipe, overrides, resume=args.resume)
    if args.dry_run:
        print(dump_recipe(recipe), end="")
        return
    run = train(
        recipe,
        args.resume or args.out or f"runs/{recipe.name}",
        resume=bool(args.resume),
        progress=not args.no_progress,
    )
    print(f"run written to {run}")


def _distill(args, overrides: list[str]) -> None:
    from genlab.distill import distill

    result = distill(
        args.teacher,
        args.method,
        out=args.out,
        overrides=overrides,
        pairs=args.pairs,
        pairs_steps=args.pairs_steps,
        dry_run=args.dry_run,
        progress=not args.no_progress,
    )
    if args.dry_run:
        print(result, end="")
    else:
        print(f"student run written to {result}")


def _sample(args) -> None:
    from genlab.samplers import SAMPLER_INFO

    if args.list_samplers:
        width = max(map(len, SAMPLER_INFO))
        print("\n".join(f"{name:<{width}}  {info}" for name, info in SAMPLER_INFO.items()))
        return
    if not args.run or not args.output:
        raise GenlabError("genlab sample needs a run folder and -o FILE (.png or .npz)")
    from genlab.runs import load_run

    run = load_run(args.run)
    if run.method.makes_text:
        raise GenlabError(
            f"{args.run} is a language model ({run.method.kind}): use genlab generate-text RUN -o FILE.txt"
        )
    settings = run.resolve_settings(**_settings(args))
    out, nfe = run.sample_to_file(
        args.output,
        args.n,
        nrow=args.nrow,
        label=args.label,
        seed=args.seed,
        settings=settings,
        classifier=args.classifier,
        classifier_scale=args.classifier_scale,
    )
    how = (
        f"{settings.sampler}, {settings.steps} steps"
        if "sampler" in run.method.sample_settings
        else f"{run.method.sampled_by}, {settings.steps} steps"
        if "steps" in run.method.sample_settings
        else run.method.sampled_by
    )
    print(f"{args.n} samples ({how}, {nfe} NFE) written to {out}")


def _info(args) -> None:
    import yaml

    from genlab.runs import load_run

    info = load_run(args.run).info()
    recipe = info.pop("recipe")
    print(yaml.safe_dump(info, sort_keys=False), end="")
    print("recipe:\n" + "".join("  " + line + "\n" for line in yaml.safe_dump(recipe, sort_keys=False).splitlines()))
    if args.json:
        print(json.dumps({**info, "recipe": recipe}))


def _eval(args) -> None:
    from genlab.evaluate import evaluate

    _check_verifier(args)
    if args.prompts is not None:
        return _geneval(args)
    for flag, value in (
        ("--n-per-prompt", args.n_per_prompt),
        ("--best-of", args.best_of),
        ("--verifier", args.verifier),
    ):
        if value is not None:
            raise GenlabError(f"{flag} goes with --prompts builtin|FILE (the GenEval-style suite)")
    out = evaluate(
        args.run,
        samples=args.samples,
        data=args.data,
        out=args.out,
        n=args.n,
        seed=args.seed,
        features=args.features,
        inception_weights=args.inception_weights,
        likelihood_n=args.likelihood_n,
        likelihood_opts={"divergence": args.likelihood_divergence} if args.likelihood_divergence else None,
        **_settings(args),
    )
    print(f"evaluation written to {out.parent} (eval.json, eval.md, plots)")


def _geneval(args) -> None:
    from genlab.evaluate import evaluate_geneval

    for flag, value in (("--samples", args.samples), ("--data", args.data), ("--n", args.n)):
        if value is not None:
            raise GenlabError(f"--prompts scores a text-to-image RUN's own samples: drop {flag}")
    out = evaluate_geneval(
        args.run,
        prompts=args.prompts,
        n_per_prompt=4 if args.n_per_prompt is None else args.n_per_prompt,
        out=args.out,
        seed=args.seed,
        best_of=args.best_of,
        verifier=args.verifier,
        **_settings(args),
    )
    print(f"GenEval-style suite written to {out.parent} (geneval.json, geneval.md)")


def _interpolate(args) -> None:
    from genlab.interpolate import write_interpolation

    out = write_interpolation(
        args.run, args.output, n_rows=args.n_rows, steps=args.points, label=args.label, mode=args.mode, seed=args.seed
    )
    print(f"{args.n_rows} interpolations of {args.points} points ({args.mode}) written to {out}")


def _directions(args) -> None:
    from genlab.directions import write_directions

    png, js, report = write_directions(
        args.run,
        args.output,
        components=args.components,
        sigma=args.sigma,
        points=args.points,
        samples=args.samples,
        seed=args.seed,
        label=args.label,
    )
    names = ", ".join(f"{d['component']}: {d['name']}" for d in report["directions"])
    print(f"{args.components} GANSpace directions written to {png} (+ {js.name}); measured: {names}")


def _compare(args) -> None:
    from genlab.compare import compare

    out = compare(
        args.recipes,
        budget_minutes=args.budget_minutes,
        out=args.out,
        n=args.n,
        seed=args.seed,
        progress=not args.no_progress,
    )
    print(f"comparison written to {out} (+ compare.json, compare.png)")


def _features(args) -> None:
    from genlab.evaluate import train_features

    out, acc = train_features(args.data, out=args.out, epochs=args.epochs, seed=args.seed)
    print(f"feature net written to {out} (+ .json); held-out accuracy {acc:.4f}")


def _check_verifier(args) -> None:
    from genlab.rerank import check_verifier

    check_verifier(args.best_of, args.verifier)  # before the model loads


def _generate(args) -> None:
    _check_verifier(args)
    searched = (args.best_of is not None and args.best_of != 1) or args.verifier is not None
    if searched and (args.from_png is not None or args.video or args.edit_to is not None or args.reweight):
        raise GenlabError(
            "--best-of and --verifier search plain text-to-image generation: drop them with "
            "--from-png/--video/--edit-to"
        )
    if args.from_png is not None:
        return _generate_from_png(args)
    if args.prompt is None:
        raise GenlabError('give a prompt, e.g. genlab generate "a red circle above a blue square", or --from-png FILE')
    if args.video:
        return _generate_video(args)
    if args.first_frame is not None:
        raise GenlabError("--first-frame starts a video: add --video and a text-to-video --run")
    if args.edit_to is not None or args.reweight:
        return _prompt2prompt(args)
    from genlab.generate import check_prompt, text_run
    from genlab.methods.adapters import adapter_inputs
    from genlab.rerank import check_best_of, resolve_best_of
    from genlab.textual_inversion import using

    check_prompt(args.prompt)
    check_best_of(args.best_of)  # before the model loads
    run = text_run(args.run)
    best_of = resolve_best_of(run, args.best_of, args.verifier)  # by default the run's own (the shipped run: 4)
    if best_of != 1:
        return _generate_best_of(args, run, best_of)
    with using(run, args.embedding, prompts=[args.prompt, args.negative]) as run:
        out, _ = run.sample_to_file(
            args.output,
            args.n,
            nrow=min(args.n, 8),
            prompts=[args.prompt] * args.n,
            negative=args.negative,
            seed=args.seed,
            adapter=adapter_inputs(run.method, args.boxes, args.image_prompt, args.image_scale),
            **_settings(args),
        )
    print(f"{args.n} images for {args.prompt!r}{_against(args)} written to {out}")


def _against(args) -> str:
    return "" if args.negative is None else f" (negative {args.negative!r})"


def _generate_best_of(args, run, best_of: int) -> None:
    """`genlab generate --best-of K` (or a run whose recipe sets sample.best_of): each image the best of K
    candidates, judged by the generator itself or by --verifier RUN (genlab.rerank)."""
    from genlab.generate import generate
    from genlab.runs import samples_path, write_samples

    samples_path(args.output, args.n)  # a bad file name, or too many images for a grid, fails before any sampling
    out = generate(
        args.prompt,
        n=args.n,
        seed=args.seed,
        run=run,
        negative=args.negative,
        embeddings=args.embedding,
        boxes=args.boxes,
        image_prompt=args.image_prompt,
        image_scale=args.image_scale,
        best_of=best_of,
        verifier=args.verifier,
        **_settings(args),
    )
    path = write_samples(out.x, None, args.output, nrow=min(args.n, 8))
    print(
        f"{args.n} images for {args.prompt!r}{_against(args)}, each the best of {best_of} ({out.nfe} NFE), "
        f"written to {path}"
    )


def _generate_from_png(args) -> None:
    """`genlab generate --from-png FILE`: the image a PNG from `genlab serve` records, drawn again from its settings."""
    from genlab.serve.core import reproduce
    from genlab.serve.pngmeta import write_png

    given = [
        f
        for f in ("prompt", "negative", "boxes", "image_prompt", "embedding", "edit_to", "reweight", "first_frame")
        if getattr(args, f)
    ]
    given += [k for k, v in _settings(args).items() if v is not None] + (["video"] if args.video else [])
    if given or args.n != 4 or args.seed != 0:
        what = (given or ["n/seed"])[0].replace("_", "-")
        raise GenlabError(f"--from-png takes every setting from the PNG: drop {what}")
    if not str(args.output).endswith(".png"):
        raise GenlabError(f"-o {args.output}: --from-png writes one .png")
    image, record = reproduce(args.from_png, run=args.run)
    out = write_png(args.output, image, record)
    print(f"image of {args.from_png} (seed {record['seed']}) drawn again and written to {out}")


def _serve(args) -> None:
    from genlab.serve import launch

    launch(args.runs, host=args.host, port=args.port, results_dir=args.results)


def _generate_video(args) -> None:
    from genlab.generate import check_prompt
    from genlab.video import generate_video

    if args.run is None:
        raise GenlabError("--video needs --run RUN: a text-to-video run (train recipes/videos-t2v-init.yaml)")
    check_prompt(args.prompt)
    output = args.output if args.output != "out.png" else "out.gif"
    out = generate_video(
        args.prompt,
        run=args.run,
        out=output,
        n=args.n,
        seed=args.seed,
        first_frame=args.first_frame,
        **_settings(args),
    )
    start = "" if args.first_frame is None else f" from first frame {args.first_frame}"
    print(f"{args.n} video(s) for {args.prompt!r}{start} written to {out}")


def _textual_inversion(args) -> None:
    from genlab.textual_inversion import check_token, learn, save

    check_token(args.token)
    if not args.output.endswith(".safetensors"):
        raise GenlabError(f"-o {args.output}: use a .safetensors file name")

    def log(step: int, loss: float) -> None:
        if not args.no_progress:
            print(f"step {step}/{args.steps}: loss {loss:.4f}", file=sys.stderr)

    concept = learn(
        args.run,
        args.images,
        token=args.token,
        steps=args.steps,
        lr=args.lr,
        init=args.init,
        seed=args.seed,
        callback=log,
    )
    out = save(concept, args.output)
    print(
        f"embedding of {concept.token} ({len(args.images)} images, {concept.steps} steps, final loss "
        f'{concept.losses[-1]:.4f}) written to {out} (+ .json); use it: genlab generate "{concept.token} ..." '
        f"--embedding {out}"
    )


def _prompt2prompt(args) -> None:
    from genlab.edit.prompt2prompt import parse_reweight, prompt2prompt
    from genlab.runs import write_samples

    for flag in ("negative", "boxes", "image_prompt", "embedding"):
        if getattr(args, flag, None):
            raise GenlabError(f"--{flag.replace('_', '-')} does not combine with --edit-to/--reweight: drop it")
    target = args.prompt if args.edit_to is None else args.edit_to
    out = prompt2prompt(
        args.prompt,
        args.edit_to,
        run=args.run,
        mode=args.mode,
        share=args.share,
        weights=parse_reweight(args.reweight),
        n=args.n,
        seed=args.seed,
        **_settings(args),
    )
    path = write_samples(out.x, None, args.output, nrow=args.n)
    print(
        f"{args.n} images of {args.prompt!r} (top row) and their edits to {target!r} (share {args.share:g}) in {path}"
    )


def _invert(args) -> None:
    import torch

    from genlab.edit import read_image
    from genlab.edit.inversion import edit_image
    from genlab.edit.prompt2prompt import parse_reweight
    from genlab.generate import text_run
    from genlab.metrics.image import psnr as image_psnr
    from genlab.runs import write_samples

    if not args.output.endswith((".png", ".npz")):
        raise GenlabError(f"-o {args.output}: use a .png (rows: input, reconstruction, edit) or .npz file name")
    run = text_run(args.run)
    c, size, _ = run.method.image_shape
    images = torch.cat([read_image(f, channels=c, size=size, resize=args.resize) for f in args.images])
    out = edit_image(
        images,
        args.prompt,
        args.edit_to,
        run=run,
        null_text=args.null_text,
        mode=args.mode,
        share=args.share,
        weights=parse_reweight(args.reweight),
        iters=args.iters,
        **_settings(args),
    )
    parts = out.x.view(-1, len(images), *images.shape[1:])  # (1 or 2, N, C, H, W): reconstructions, edits
    rows = torch.stack([images, *parts], dim=1).flatten(0, 1)  # per image: input, reconstruction[, edit]
    path = write_samples(rows, None, args.output, nrow=1 + len(parts))
    psnr = ", ".join(f"{v:.1f}" for v in image_psnr(parts[0], images).tolist())
    print(
        f"{len(images)} images inverted (reconstruction PSNR {psnr} dB); rows: input, reconstruction"
        + (", edit" if len(parts) > 1 else "")
        + f" in {path}"
    )


def _generate_text(args) -> None:
    from genlab.runs import format_texts, load_run, write_texts

    if args.output and not args.output.endswith(".txt"):
        raise GenlabError(f"-o {args.output}: use a .txt file name")
    run = load_run(args.run).require_lm()
    opts = {
        "n": args.n,
        "seed": args.seed,
        "steps": args.steps,
        "remasking": args.remasking,
        "temperature": args.temperature,
        "top_k": args.top_k,
        "top_p": args.top_p,
    }
    if args.infill:
        if args.prompt is None or args.block_length is not None or args.max_tokens is not None:
            raise GenlabError(
                "--infill fills the '____' gaps of --prompt: give --prompt, drop --block-length/--max-tokens"
            )
        texts = run.infill(args.prompt, gap_tokens=args.gap_tokens, **opts)
    else:
        texts = run.generate_text(args.prompt, block_length=args.block_length, max_tokens=args.max_tokens, **opts)
    if args.output:
        write_texts(texts, args.output)
        print(f"{len(texts)} texts written to {args.output}")
    else:
        print(format_texts(texts), end="")


def _edit(args) -> None:
    from genlab.edit.translate import edit_files
    from genlab.runs import load_run

    if not args.output.endswith((".png", ".npz")):
        raise GenlabError(f"-o {args.output}: use a .png (rows: input, given, edits) or .npz file name")
    path, out, strength = edit_files(
        load_run(args.run),
        args.image,
        task=args.task,
        output=args.output,
        mask=args.mask,
        resize=args.resize,
        strength=args.strength,
        keep=args.keep,
        n=args.n,
        seed=args.seed,
        label=args.label,
        prompt=args.prompt,
        resample=args.resample,
        jump=args.jump,
        mask_blur=args.mask_blur,
        **_settings(args),
    )
    how = f"strength {strength:g}, " if args.task == "sdedit" else ""
    print(f"{len(out.x)} {args.task} edits ({how}{out.nfe} NFE) written to {path}")


def _clip(args) -> None:
    from pathlib import Path

    from genlab import clip_tasks as ct

    if bool(args.classify) == bool(args.retrieve):
        raise GenlabError("give one of --classify IMAGES... (with --labels) or --retrieve FOLDER (with --query)")
    if args.classify:
        if not args.labels:
            raise GenlabError('--classify needs --labels, e.g. --labels "a red circle,a blue square"')
        labels = ct.parse_labels(args.labels)
        clip = ct.clip_method(args.run)
        files = [f for path in args.classify for f in (ct.image_files(path) if Path(path).is_dir() else [path])]
        probs = ct.zero_shot(clip, files, labels, templates=args.templates)
        print(ct.classify_table([str(f) for f in files], probs, labels, top=args.top))
    else:
        if not args.query:
            raise GenlabError('--retrieve needs --query, e.g. --query "a red circle"')
        hits = ct.retrieve(args.run, ct.image_files(args.retrieve), args.query, k=args.k)
        print(ct.retrieve_table(hits, args.query))


def _caption(args) -> None:
    from genlab.caption import caption, captioner_method

    method = captioner_method(args.run)
    texts = caption(
        args.images, run=method, question=args.question, temperature=args.temperature, top_p=args.top_p, seed=args.seed
    )
    for path, text in zip(args.images, texts):
        print(f"{path}: {text}")


COMMANDS: dict[str, Callable] = {
    "caption": _caption,
    "clip": _clip,
    "edit": _edit,
    "sample": _sample,
    "info": _info,
    "eval": _eval,
    "interpolate": _interpolate,
    "directions": _directions,
    "compare": _compare,
    "features": _features,
    "generate": _generate,
    "serve": _serve,
    "generate-text": _generate_text,
    "invert": _invert,
    "textual-inversion": _textual_inversion,
}


def _parents() -> dict[str, argparse.ArgumentParser]:
    """Flag groups shared by several subcommands, each defined once."""
    settings = argparse.ArgumentParser(add_help=False)
    g = settings.add_argument_group("sample settings (default: the run's recipe)")
    g.add_argument("--sampler", help="ODE/SDE sampler (genlab sample --list-samplers)")
    g.add_argument("--steps", type=int, help="sampler steps")
    g.add_argument("--grid", help="time grid: auto (the sampler's default), uniform, log_snr, shift, karras, asinh")
    g.add_argument("--guidance-scale", type=float, help="classifier-free guidance scale (1 = none)")
    g.add_argument(
        "--guidance-interval",
        nargs=2,
        type=float,
        metavar=("LO", "HI"),
        help="guide only for times t in [LO, HI] (t = 1 is noise; 0 1 = every step)",
    )
    g.add_argument("--eta", type=float, help="DDIM stochasticity")
    g.add_argument("--temperature", type=float, help="autoregressive families: softmax temperature")
    g.add_argument("--top-k", type=int, help="autoregressive families: keep the k most likely tokens (0 = all)")
    g.add_argument("--top-p", type=float, help="autoregressive families: nucleus mass")
    seed = argparse.ArgumentParser(add_help=False)
    seed.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    progress = argparse.ArgumentParser(add_help=False)
    progress.add_argument("--no-progress", action="store_true", help="no progress bars")
    label = argparse.ArgumentParser(add_help=False)
    label.add_argument("--label", type=int, help="class to sample (default: cycle the classes)")
    p2p = argparse.ArgumentParser(add_help=False)
    g = p2p.add_argument_group("prompt-to-prompt editing")
    g.add_argument("--edit-to", help='the edited prompt, e.g. "a blue circle" (its images form a second row)')
    g.add_argument("--share", type=float, default=0.6, help="fraction of the steps sharing attention (default 0.6)")
    g.add_argument("--mode", choices=["swap", "refine"], help="word swap or added words (default: by word count)")
    g.add_argument("--reweight", action="append", metavar="WORD=FACTOR", help="scale a word's attention (repeatable)")
    return {"settings": settings, "seed": seed, "progress": progress, "label": label, "p2p": p2p}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genlab", description="Train, sample and evaluate generative models.")
    sub = p.add_subparsers(dest="command", required=True)
    par = _parents()

    t = sub.add_parser("train", parents=[par["progress"]], help="train a recipe (overrides: --section.key=value)")
    t.add_argument("recipe", nargs="?", help="YAML recipe, e.g. recipes/digits-flow.yaml")
    t.add_argument("--resume", metavar="RUN", help="continue the run in this folder")
    t.add_argument("--out", help="run folder (default runs/<recipe name>)")
    t.add_argument("--dry-run", action="store_true", help="print the resolved recipe and exit")

    d = sub.add_parser(
        "distill",
        parents=[par["progress"]],
        help="train a few-step student of a flow/diffusion run (overrides: --section.key=value)",
    )
    d.add_argument("teacher", help="the teacher's run folder (flow, or a student to distill further)")
    d.add_argument(
        "--method", required=True, choices=["reflow", "progressive", "consistency", "guidance_distill", "meanflow"]
    )
    d.add_argument("-o", "--out", help="run folder (default runs/<teacher name>-<method>)")
    d.add_argument("--pairs", type=int, default=8192, help="reflow: teacher couplings to draw (default 8192)")
    d.add_argument("--pairs-steps", type=int, help="reflow: the teacher's sampler steps for the couplings")
    d.add_argument("--dry-run", action="store_true", help="print the student's resolved recipe and exit")

    s = sub.add_parser(
        "sample",
        parents=[par["settings"], par["seed"], par["label"]],
        help="sample from a run into a PNG grid or an .npz file",
    )
    s.add_argument("run", nargs="?")
    s.add_argument("-o", "--output", help="grid.png or samples.npz (any n: written in chunks)")
    s.add_argument("--list-samplers", action="store_true", help="describe every sampler and exit")
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--classifier", metavar="RUN", help="noisy_classifier run for classifier guidance")
    s.add_argument(
        "--classifier-scale",
        type=float,
        default=1.0,
        help="classifier guidance scale (0 none, 1 the exact conditional; default 1)",
    )
    s.add_argument("--nrow", type=int, help="images per row in the grid")

    i = sub.add_parser("info", help="recipe, parameter count, step and last metrics of a run")
    i.add_argument("run")
    i.add_argument("--json", action="store_true", help="also print one JSON line")

    e = sub.add_parser(
        "eval",
        parents=[par["settings"], par["seed"]],
        help="metrics of a run's samples (or of a samples .npz) against a dataset",
    )
    e.add_argument("run", nargs="?", help="run folder to sample from (or use --samples)")
    e.add_argument("--samples", help="samples .npz ('images' uint8 NHWC or 'x' float, optional 'labels')")
    e.add_argument("--data", help="with --samples: digits[:SIZE], toy2d:NAME, an image folder or an .npz file")
    e.add_argument("--n", type=int, help="number of samples (default 1000 for a run, all for --samples)")
    e.add_argument("--features", help="feature net: digits, pixels or a .safetensors from 'genlab features train'")
    e.add_argument(
        "--inception-weights",
        metavar="PATH",
        help="FID Inception-v3 weights as .safetensors (pytorch-fid's pt_inception-2015-12-05, converted)",
    )
    e.add_argument(
        "--likelihood-n",
        type=int,
        default=64,
        help="held-out items scored by the method's likelihood (bits/dim), if it has one; 0 disables",
    )
    e.add_argument(
        "--likelihood-divergence",
        choices=("auto", "exact", "hutchinson"),
        help="flow/diffusion: trace of the velocity's Jacobian (auto: exact up to 32 dims)",
    )
    e.add_argument("--out", help="output folder (default RUN/eval or ./eval)")
    e.add_argument(
        "--best-of",
        type=int,
        metavar="K",
        help="with --prompts: each image the best of K candidates (genlab generate --best-of; default the run's "
        "sample.best_of: 4 for the shipped run, 1 draws once)",
    )
    e.add_argument("--verifier", help="with --best-of: a verifier run that judges (default: the generator itself)")
    e.add_argument(
        "--prompts",
        metavar="builtin|FILE",
        help="text-to-image: score the GenEval-style prompt suite (builtin, or JSON lines; docs/geneval.md)",
    )
    e.add_argument("--n-per-prompt", type=int, help="with --prompts: images per prompt (default 4)")

    ip = sub.add_parser(
        "interpolate",
        parents=[par["seed"], par["label"]],
        help="rows of decoded latent interpolations (GAN, VAE, flow) as a PNG grid",
    )
    ip.add_argument("run")
    ip.add_argument("-o", "--output", default="interp.png", help="grid .png (default interp.png)")
    ip.add_argument("--n-rows", type=int, default=6, help="interpolations (rows)")
    ip.add_argument(
        "--points", "--steps", dest="points", type=int, default=8, help="points per interpolation, endpoints included"
    )
    ip.add_argument("--mode", default="slerp", choices=["slerp", "lerp"])

    dr = sub.add_parser(
        "directions",
        parents=[par["seed"], par["label"]],
        help="GANSpace: PCA directions of a StyleGAN-style run's w-space as a grid, named by what they change",
    )
    dr.add_argument("run")
    dr.add_argument("-o", "--output", default="directions.png", help="grid .png (+ the same name .json)")
    dr.add_argument("--components", type=int, default=5, help="top directions, one row each (default 5)")
    dr.add_argument("--sigma", type=float, default=3.0, help="columns run t in [-sigma, sigma] std devs (default 3)")
    dr.add_argument("--points", type=int, default=7, help="columns per row (default 7)")
    dr.add_argument("--samples", type=int, default=10000, help="w samples for the PCA (default 10000)")

    ed = sub.add_parser(
        "edit",
        parents=[par["settings"], par["seed"], par["label"]],
        help="edit images: sdedit, inpaint, outpaint (flow runs); superres, colorize, ... (trained runs)",
    )
    ed.add_argument("run")
    ed.add_argument(
        "--task", required=True, choices=["sdedit", "inpaint", "outpaint", "superres", "colorize", "translate"]
    )
    ed.add_argument("--image", required=True, help="input image (PNG/JPEG), or .npz `images` uint8 (N,H,W,C) batch")
    ed.add_argument("--mask", help="inpaint/outpaint: one-channel image, white = make, black = keep")
    ed.add_argument("--strength", type=float, help="the time the edit starts from, (0, 1] (sdedit 0.6, else 1)")
    ed.add_argument("--keep", type=float, default=0.5, help="outpaint without --mask: kept centre's share of a side")
    ed.add_argument("--prompt", help="text-to-image runs: the prompt of every edit")
    ed.add_argument("--resample", type=int, default=1, help="inpaint/outpaint: RePaint passes per block (1 = none)")
    ed.add_argument("--jump", type=int, default=5, help="inpaint/outpaint with --resample: RePaint's block length")
    ed.add_argument("--mask-blur", type=float, default=0.0, help="inpaint/outpaint: feather the mask outward (std, px)")
    ed.add_argument("--resize", action="store_true", help="centre-crop and resize the image (and mask) to the run")
    ed.add_argument("--n", type=int, default=4, help="edits of each image (default 4)")
    ed.add_argument("-o", "--output", default="edit.png", help="a .png row (input, given, edits) or .npz")

    g = sub.add_parser(
        "generate",
        parents=[par["settings"], par["seed"], par["p2p"]],
        help="images from a text prompt (default: the shipped shapes checkpoint)",
    )
    g.add_argument("prompt", nargs="?", help='e.g. "a red circle above a blue square"')
    g.add_argument(
        "--from-png", metavar="FILE", help="draw again the image of a PNG saved by genlab serve (its settings)"
    )
    g.add_argument("-o", "--output", default="out.png", help="grid .png or .npz (default out.png)")
    g.add_argument("--n", type=int, default=4)
    g.add_argument("--run", help=T2I_RUN_HELP)
    g.add_argument("--video", action="store_true", help="a text-to-video run (--run): write an animated .gif")
    g.add_argument(
        "--first-frame",
        metavar="IMAGE",
        help="with --video: image-to-video, every video starts from this image (a run trained with first_frame > 0)",
    )
    g.add_argument("--negative", help='a negative prompt: guidance pushes away from it (e.g. "red"; needs CFG > 1)')
    g.add_argument("--boxes", help='a gligen run: "PHRASE:x0,y0,x1,y1;..." in [0, 1], y down (objects to place)')
    g.add_argument("--image-prompt", help="an ip_adapter run: a reference image (PNG/JPEG) whose content to follow")
    g.add_argument("--image-scale", type=float, help="with --image-prompt: weight of the image (default the run's)")
    g.add_argument(
        "--embedding", action="append", help="a textual-inversion .safetensors whose token the prompt uses (repeatable)"
    )
    g.add_argument(
        "--best-of",
        type=int,
        metavar="K",
        help="each image the best of K candidates (K draws, and about as much again to judge them); the generator "
        "judges them against the prompt's contradictions. Default: the run's sample.best_of (4 for the shipped "
        "run); 1 draws once",
    )
    g.add_argument("--verifier", help="with --best-of: a verifier run that judges (default: the generator itself)")

    ti = sub.add_parser(
        "textual-inversion",
        parents=[par["seed"], par["progress"]],
        help="learn a new prompt word (<c>) from a few images with a frozen text-to-image run",
    )
    ti.add_argument("images", nargs="+", metavar="IMAGE", help="3-5 images of the concept (PNG/JPEG)")
    ti.add_argument("--token", default="<c>", help="the placeholder to learn, <name> (default <c>)")
    ti.add_argument("--run", help=T2I_RUN_HELP)
    ti.add_argument("--steps", type=int, default=300, help="Adam steps on the embedding (default 300)")
    ti.add_argument("--lr", type=float, default=5e-3, help="learning rate (default 5e-3)")
    ti.add_argument("--init", default="shape", help="the word whose embedding starts the search (default shape)")
    ti.add_argument("-o", "--output", default="concept.safetensors", help="the embedding (+ a .json beside it)")

    iv = sub.add_parser(
        "invert",
        parents=[par["settings"], par["p2p"]],
        help="invert real images to noise with a text-to-image run (reconstruction), and edit them (--edit-to)",
    )
    iv.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG/JPEG) of the run's size")
    iv.add_argument("--prompt", required=True, help='the caption of the images, e.g. "a red circle"')
    iv.add_argument("--run", help=T2I_RUN_HELP)
    iv.add_argument("--null-text", action="store_true", help="null-text inversion (Mokady et al.), for guidance > 1")
    iv.add_argument("--iters", type=int, default=10, help="with --null-text: Adam steps per sampler step (default 10)")
    iv.add_argument("--resize", action="store_true", help="centre-crop and resize the images to the run's size")
    iv.add_argument("-o", "--output", default="invert.png", help="a .png (rows: input, reconstruction, edit) or .npz")

    gt = sub.add_parser(
        "generate-text",
        parents=[par["seed"]],
        help="text from a language-model run (ar_lm, mdlm): continue a prompt, or fill its ____ gaps (mdlm)",
    )
    gt.add_argument("run", help="an ar_lm or mdlm run folder")
    gt.add_argument("--prompt", help="text to continue (default: none); with --infill, text with ____ gaps")
    gt.add_argument("--n", type=int, default=1, help="texts to draw (default 1)")
    gt.add_argument("--steps", type=int, help="mdlm: unmasking steps (default: the recipe's)")
    gt.add_argument("--block-length", type=int, help="mdlm: semi-autoregressive blocks of this many tokens (0: none)")
    gt.add_argument("--remasking", help="mdlm: low_confidence or random (which predictions to keep)")
    gt.add_argument("--temperature", type=float, help="softmax temperature (0: greedy)")
    gt.add_argument("--top-k", type=int, help="keep the k most likely tokens (0 = all)")
    gt.add_argument("--top-p", type=float, help="nucleus mass")
    gt.add_argument("--max-tokens", type=int, help="keep at most this many generated tokens")
    gt.add_argument("--infill", action="store_true", help="mdlm: fill each ____ of --prompt")
    gt.add_argument("--gap-tokens", type=int, default=8, help="with --infill: tokens per gap (default 8)")
    gt.add_argument("-o", "--output", help="write the texts to this .txt file instead of printing them")

    cl = sub.add_parser(
        "clip", help="a CLIP run: zero-shot classify images (--classify) or find images for a text (--retrieve)"
    )
    cl.add_argument("run", help="a CLIP run folder (recipes/shapes-clip.yaml, recipes/digits-clip.yaml)")
    cl.add_argument("--classify", nargs="+", metavar="IMAGE", help="image files (or folders) to classify")
    cl.add_argument("--labels", help='with --classify: comma-separated labels, e.g. "a red circle,a blue square"')
    cl.add_argument(
        "--templates", help='prompt ensemble: "builtin", or ";"-separated templates with {} (default: the label alone)'
    )
    cl.add_argument("--top", type=int, default=3, help="with --classify: labels shown per image (default 3)")
    cl.add_argument("--retrieve", metavar="FOLDER", help="a folder of images to rank against --query")
    cl.add_argument("--query", help='with --retrieve: the text to look for, e.g. "a red circle"')
    cl.add_argument("-k", type=int, default=5, help="with --retrieve: images to list (default 5)")

    cp = sub.add_parser(
        "caption",
        parents=[par["seed"]],
        help="caption images (or answer --question) with a captioner run (default: the shipped shapes captioner)",
    )
    cp.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG/JPEG)")
    cp.add_argument("--run", help="a captioner run folder (default: the captioner shipped with genlab)")
    cp.add_argument("--question", help='a visual question instead of a caption, e.g. "what colour is the circle?"')
    cp.add_argument("--temperature", type=float, help="softmax temperature (0: greedy, the default)")
    cp.add_argument("--top-p", type=float, help="nucleus mass (with a temperature > 0)")

    c = sub.add_parser(
        "compare",
        parents=[par["seed"], par["progress"]],
        help="train recipes for the same CPU budget, evaluate alike, tabulate",
    )
    c.add_argument("recipes", nargs="+", help="YAML recipes (a token prior's tokenizer recipe is trained first)")
    c.add_argument("--budget-minutes", type=float, default=5.0, help="training wall time per recipe")
    c.add_argument("--out", default="runs/compare", help="folder: OUT/<name> per run + compare.md/json/png")
    c.add_argument(
        "--n", type=int, help="samples per run for the metrics (default: the evaluator's, 1000 images, 64 texts)"
    )

    sv = sub.add_parser("serve", help="the web app: generate, edit, compare and inspect runs in a browser")
    sv.add_argument("--runs", default="runs", help="folder of run folders to offer (default ./runs)")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    sv.add_argument("--results", default="benchmarks/results", help="benchmark plots to offer (if the folder exists)")

    f = sub.add_parser("features", help="feature networks for the image metrics")
    fsub = f.add_subparsers(dest="features_command", required=True)
    ft = fsub.add_parser(
        "train", parents=[par["seed"]], help="train a small CNN classifier whose penultimate layer gives features"
    )
    ft.add_argument("data", help="labelled image data: digits[:SIZE], an image folder or an .npz file")
    ft.add_argument("--out", help="weights file (default features-<data>.safetensors; a .json sidecar is added)")
    ft.add_argument("--epochs", type=int, default=40)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    try:
        if args.command == "train":
            _train(args, extra)
        elif args.command == "distill":
            _distill(args, extra)
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        else:
            COMMANDS[args.command](args)
    except GenlabError as e:
        print(f"genlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "genlab: interrupted; the last checkpoint is intact (resume with genlab train --resume RUN)",
            file=sys.stderr,
        )
        return 130
    return 0
