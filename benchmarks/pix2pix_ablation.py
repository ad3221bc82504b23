"""pix2pix's objective ablation (Isola et al. 2017, Table 1 / Fig. 4, in spirit) on colorization of photo patches.

Trains recipes/photos-pix2pix.yaml three times, changing only `method.objective` (l1, cgan, l1+cgan: same data,
steps, batch and seed; run with OMP_NUM_THREADS=1), then scores each run's EMA weights, k outputs per grey input
drawn with one seed (genlab.metrics.image2image), on two sets of n patches:
- heldout: the test split (chelsea, rocket, flower: photographs no run saw), the image-to-image protocol;
- fresh_positions: new patch positions (another seed) of the seven training photographs, the in-distribution view
  (colour priors learnt from seven photographs do not carry to a blue sky they never saw: see the JSON).
Metrics: PSNR and SSIM of the first output, diversity of the k outputs (dropout is the only noise), FD in genlab's
photo feature network (8x8 pixels when that asset is missing) with the truth-vs-truth floor, the Hasler-Süsstrunk
colourfulness beside the truths', and chroma sharpness: the mean gradient magnitude of the opponent colour
channels (R − G, (R + G)/2 − B) of the outputs over the truths' (1: as crisp as real colour edges; blurry, bleeding
colour < 1; speckle and checkerboard artefacts > 1). The grey input shown as RGB is the no-colour baseline row.
Writes benchmarks/results/pix2pix_ablation.json and docs/images/pix2pix-ablation.png (columns grey | L1 | cGAN |
L1+cGAN | truth; the first half of the rows held-out patches, the second half fresh positions).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import shutil
import sys
import time
from importlib.resources import files
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402
from genlab.atomic import atomic_path  # noqa: E402
from genlab.config import load_recipe  # noqa: E402
from genlab.data import build_dataset  # noqa: E402
from genlab.errors import GenlabError  # noqa: E402
from genlab.metrics.features import pixel_feature_net  # noqa: E402
from genlab.metrics.image2image import (  # noqa: E402
    PHOTOS_ASSET,
    photo_feature_net,
    score_translations,
    translate_heldout,
)
from genlab.plots import save_samples  # noqa: E402
from genlab.runs import load_run, train_seconds  # noqa: E402
from genlab.settings import Samples  # noqa: E402
from genlab.train import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OBJECTIVES = (("L1", "l1"), ("cGAN", "cgan"), ("L1+cGAN", "l1+cgan"))
PICTURE_ROWS = 8


class GreyInput:
    """The no-colour baseline: the grey input itself, as RGB."""

    image_task, device = "colorize", torch.device("cpu")

    def __init__(self, like):
        self.like = like

    def degrade(self, x, *, generator=None):
        return self.like.degrade(x, generator=generator)

    def translate(self, source, *, mask=None, settings=None, generator=None) -> Samples:
        return Samples(source.expand(-1, 3, -1, -1).cpu(), 0, "the input")


def opponent_gradient(x: torch.Tensor) -> torch.Tensor:
    """Mean |finite difference| of the opponent colour channels rg = R − G, yb = (R + G)/2 − B of x (B, 3, H, W)."""
    r, g, b = x.clamp(-1, 1).unbind(1)
    opp = torch.stack([r - g, 0.5 * (r + g) - b], 1)  # (B, 2, H, W)
    dx, dy = opp[..., :, 1:] - opp[..., :, :-1], opp[..., 1:, :] - opp[..., :-1, :]
    return 0.5 * (dx.abs().mean() + dy.abs().mean())


def asset_digest() -> str | None:
    """The first 16 hex digits of the shipped photo feature network's SHA-256 (FD values depend on its version)."""
    path = Path(str(files("genlab").joinpath(PHOTOS_ASSET)))
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None


def feature_net(data):
    try:
        return photo_feature_net()
    except GenlabError as e:
        print(f"{e}; FD falls back to 8x8 pixels")
        return pixel_feature_net(data.x.shape[1], data.x.shape[-1])


def score(method, test, net, *, n: int, k: int) -> tuple[dict, dict]:
    res = translate_heldout(method, test, n=n, k=k, seed=0)
    metrics = score_translations(res, test, task="colorize", seed=0, feature_net=net)
    metrics["chroma_sharpness"] = float(opponent_gradient(res["outputs"][0]) / opponent_gradient(res["truth"]))
    return metrics, res


def evaluation_sets(recipe, n: int) -> dict:
    """{'heldout': the test split, 'fresh_positions': 2n new patches of the training photographs}."""
    fresh = dataclasses.replace(recipe.data, n=2 * n, seed=recipe.data.seed + 1)
    return {"heldout": build_dataset(recipe.data, split="test"), "fresh_positions": build_dataset(fresh, split="train")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--recipe", default=str(ROOT / "recipes" / "photos-pix2pix.yaml"))
    p.add_argument("--steps", type=int, help="train.steps for every run (default: the recipe's)")
    p.add_argument("--runs", default=str(ROOT / "benchmarks" / "out" / "pix2pix-ablation"), help="run folders")
    p.add_argument("--n", type=int, default=384, help="patches scored per set (the FD floor takes n more)")
    p.add_argument("--k", type=int, default=4, help="outputs per input (diversity)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pix2pix_ablation.json"))
    p.add_argument("--image", default=str(ROOT / "docs" / "images" / "pix2pix-ablation.png"))
    p.add_argument("--reuse-runs", action="store_true", help="score the run folders already there (no training)")
    args = p.parse_args()
    base = [f"--train.steps={args.steps}"] if args.steps else []
    recipe = load_recipe(args.recipe, base)
    sets = evaluation_sets(recipe, args.n)
    net = feature_net(sets["heldout"])
    rows, columns = {}, []
    for label, objective in OBJECTIVES:
        folder = Path(args.runs) / objective.replace("+", "_")
        rows[label] = {"run": str(folder.relative_to(ROOT)) if folder.is_relative_to(ROOT) else str(folder)}
        if not args.reuse_runs:
            shutil.rmtree(folder, ignore_errors=True)
            start = time.perf_counter()
            train(load_recipe(args.recipe, [*base, f"--method.objective={objective}"]), folder, progress=False)
            rows[label]["wall_seconds"] = round(time.perf_counter() - start, 1)
        run = load_run(folder)
        if run.recipe.method.objective != objective or run.step != recipe.train.steps:
            raise SystemExit(f"{folder} is not this benchmark's {objective} run: drop --reuse-runs")
        method = run.method
        rows[label]["train_seconds"] = round(train_seconds(folder), 1)
        outputs = []
        for name, data in sets.items():
            rows[label][name], res = score(method, data, net, n=args.n, k=args.k)
            outputs.append(res["outputs"][0][: PICTURE_ROWS // 2])
        columns.append(torch.cat(outputs))
        print(label, rows[label])
    rows = {"grey input (no colour)": {}, **rows}
    truths, greys = [], []
    for name, data in sets.items():
        rows["grey input (no colour)"][name], res = score(GreyInput(method), data, net, n=args.n, k=1)
        greys.append(res["outputs"][0][: PICTURE_ROWS // 2])
        truths.append(res["truth"][: PICTURE_ROWS // 2])
    grid = torch.stack([torch.cat(greys), *columns, torch.cat(truths)], 1)  # (rows, 5, 3, H, W)
    with atomic_path(Path(args.image)) as tmp:
        save_samples(grid.flatten(0, 1), tmp, nrow=grid.shape[1])
    write_json(
        args.out,
        {
            "recipe": Path(args.recipe).name,
            "steps": recipe.train.steps,
            "batch_size": recipe.train.batch_size,
            "seed": recipe.seed,
            "sets": {
                "heldout": f"test split ({len(sets['heldout'])} patches of chelsea, rocket, flower); n scored, seed 0",
                "fresh_positions": f"{2 * args.n} new patches (data.seed + 1) of the 7 training photographs",
            },
            "n": args.n,
            "outputs_per_input": args.k,
            "feature_net": net.name,
            "feature_net_sha256": asset_digest(),
            "rows": rows,
            "picture": "docs/images/pix2pix-ablation.png",
            "picture_columns": ["grey input", *(label for label, _ in OBJECTIVES), "truth"],
            "picture_rows": f"{PICTURE_ROWS // 2} heldout, then {PICTURE_ROWS // 2} fresh_positions",
        },
    )


if __name__ == "__main__":
    main()
