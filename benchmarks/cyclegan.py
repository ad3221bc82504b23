"""CycleGAN (Zhu et al. 2017) between black-and-white (A) and colour (B) photographs, scored on held-out photos.

Trains recipes/photos-cyclegan.yaml (run with OMP_NUM_THREADS=1), then on n held-out patches of each domain
(camera and clock for A; chelsea, rocket and flower for B: photographs the run never saw) reports the method's own
held-out metrics (CycleGANMethod.heldout_metrics: cycle PSNR A->B->A and B->A->B, FD of G(a) to real B beside
B's floor and the untranslated inputs, a domain classifier's verdict on G(a) and F(b), PSNR of G(a) against its
input) and two paired checks that this pair of domains allows and CycleGAN never trains on:
- colorize: G applied to the grey versions of held-out colour patches, PSNR / SSIM against the colour truth, beside
  the grey input itself (the no-colour baseline; benchmarks/pix2pix_ablation.py scores the paired pix2pix alike);
- desaturate: F(b) against the luminance of b (the known answer of B -> A).
Colourfulness (Hasler & Süsstrunk 2003) of G(a), of G(grey(b)) and of real B. Writes benchmarks/results/cyclegan.json
and docs/images/cyclegan.png (rows: a | G(a) | F(G(a)) | b | F(b) | G(F(b))).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import train_or_reuse, write_json  # noqa: E402
from genlab.atomic import atomic_path  # noqa: E402
from genlab.config import load_recipe  # noqa: E402
from genlab.data import build_dataset  # noqa: E402
from genlab.edit.degrade import grey  # noqa: E402
from genlab.metrics.image import psnr, ssim  # noqa: E402
from genlab.metrics.image2image import colorfulness  # noqa: E402
from genlab.plots import save_samples  # noqa: E402
from genlab.runs import train_seconds  # noqa: E402
from pix2pix_ablation import asset_digest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PICTURE_ROWS = 8


def paired_checks(method, b: torch.Tensor) -> dict:
    """Scores against the known answers: G(grey(b)) vs b (colorize) and F(b) vs grey(b) (desaturate)."""
    gen = torch.Generator().manual_seed(0)
    grey_b = grey(b).expand(-1, 3, -1, -1)  # (n, 3, H, W), R = G = B as domain A is stored
    colorized = method.translate(grey_b, generator=gen).x.cpu()
    desaturated = method.translate_back(b, generator=gen).x.cpu()
    return {
        "colorize_psnr_db": float(psnr(colorized, b).mean()),
        "colorize_ssim": float(ssim(colorized, b).mean()),
        "grey_input_psnr_db": float(psnr(grey_b, b).mean()),
        "grey_input_ssim": float(ssim(grey_b, b).mean()),
        "desaturate_psnr_db": float(psnr(desaturated, grey_b).mean()),
        "colorfulness_g_of_grey_b": float(colorfulness(colorized).mean()),
        "colorfulness_b": float(colorfulness(b).mean()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--recipe", default=str(ROOT / "recipes" / "photos-cyclegan.yaml"))
    p.add_argument("--steps", type=int, help="train.steps (default: the recipe's)")
    p.add_argument("--run", default=str(ROOT / "benchmarks" / "out" / "cyclegan"), help="run folder")
    p.add_argument("--n", type=int, default=768, help="held-out patches per domain for the paired checks")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cyclegan.json"))
    p.add_argument("--image", default=str(ROOT / "docs" / "images" / "cyclegan.png"))
    p.add_argument("--reuse-run", action="store_true", help="score the run folder already there (no training)")
    args = p.parse_args()
    recipe = load_recipe(args.recipe, [f"--train.steps={args.steps}"] if args.steps else [])
    run, wall = train_or_reuse(recipe, args.run, reuse=args.reuse_run)
    test = build_dataset(recipe.data, split="test")
    heldout = run.method.heldout_metrics(test, seed=0)
    gen_a = run.method.translate(test.x[: args.n], generator=torch.Generator().manual_seed(0)).x.cpu()
    checks = {**paired_checks(run.method, test.y[: args.n]), "colorfulness_g_of_a": float(colorfulness(gen_a).mean())}
    print(heldout, checks)
    pick = torch.randperm(len(test), generator=torch.Generator().manual_seed(1))[:PICTURE_ROWS]
    rows = run.method.preview(test.batch(pick), generator=torch.Generator().manual_seed(0))
    with atomic_path(Path(args.image)) as tmp:
        save_samples(rows.flatten(0, 1).cpu(), tmp, nrow=rows.shape[1])
    write_json(
        args.out,
        {
            "recipe": Path(args.recipe).name,
            "steps": recipe.train.steps,
            "batch_size": recipe.train.batch_size,
            "seed": recipe.seed,
            "train_seconds": round(train_seconds(args.run), 1),
            "wall_seconds": wall,
            "feature_net_sha256": asset_digest(),
            "heldout": f"{len(test)} patches per domain of the test photographs",
            "heldout_metrics": heldout,
            "paired_checks": {**checks, "n": min(args.n, len(test))},
            "picture": "docs/images/cyclegan.png",
            "picture_columns": ["a", "G(a)", "F(G(a))", "b", "F(b)", "G(F(b))"],
        },
    )


if __name__ == "__main__":
    main()
