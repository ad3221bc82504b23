"""Train genlab's photo-patch feature network (the FD features of image-to-image on photos) and check that FD in it
sees the degradations image-to-image models must undo.

The network is a SmallCNN trained on a free proxy label, (which of the seven training photographs a 32×32 patch
was cut from, rendered as is / blurred / noisy), with colours scrambled on half of each batch
(genlab.metrics.image2image.fit_photo_feature_net). It is written to src/genlab/assets/features-photos.safetensors
(+ .json). Sanity check on the held-out photographs: FD between 384 test patches and the other 384 (the floor)
against FD to the same other patches blurred (bicubic 4× down and up), turned grey, or with Gaussian noise
(σ = 0.1), in this network and in the 8×8-pixel fallback; a useful feature space puts every degradation well
above the floor. (Blur and noise are renderings the network was trained to name, so this shows that the features
can see them, not that they generalise to other artefacts; grey is not one of them.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402
from genlab.data import build_dataset  # noqa: E402
from genlab.data.photos import PhotosConfig  # noqa: E402
from genlab.edit.degrade import downsample, grey, upsample  # noqa: E402
from genlab.metrics.features import extract, load_feature_net, pixel_feature_net, save_feature_net  # noqa: E402
from genlab.metrics.fid import frechet_distance  # noqa: E402
from genlab.metrics.image2image import fit_photo_feature_net  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ASSET = ROOT / "src" / "genlab" / "assets" / "features-photos.safetensors"


def degradations(x: torch.Tensor) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "blur_4x": upsample(downsample(x, 4), x.shape[-1]),
        "grey": grey(x).expand(-1, 3, -1, -1),
        "noise_0.1": (x + 0.1 * torch.randn(x.shape, generator=gen)).clamp(-1, 1),
    }


def sanity(net) -> dict:
    """FD floor and FD to degraded copies on the test split, in `net` and in 8×8 pixels."""
    test = build_dataset(PhotosConfig(size=32), split="test").x
    half = len(test) // 2
    a, b = test[:half], test[half:]
    out = {}
    for name, feats in (("photo_net", net), ("pixels_8x8", pixel_feature_net(3, 32))):
        fa = extract(feats, a)[0]
        floor = frechet_distance(extract(feats, b)[0], fa)
        row = {"floor_real_vs_real": floor}
        for what, y in degradations(b).items():
            fd = frechet_distance(extract(feats, y)[0], fa)
            row[what] = fd
            row[f"{what}_over_floor"] = fd / floor
        out[name] = row
    return {"n_per_set": half, **out}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--n", type=int, default=8192, help="training patches")
    p.add_argument("--out", default=str(ASSET), help="weights file (.safetensors; a .json sidecar beside it)")
    p.add_argument("--result", default=str(ROOT / "benchmarks" / "results" / "photo_features.json"))
    p.add_argument("--check-only", action="store_true", help="only the sanity check of the existing network")
    args = p.parse_args()
    info = None
    if not args.check_only:
        start = time.perf_counter()
        net, info = fit_photo_feature_net(n=args.n, epochs=args.epochs)
        info["train_seconds"] = round(time.perf_counter() - start, 1)
        save_feature_net(net, args.out, info=info)
        print(info)
    check = sanity(load_feature_net(args.out))
    print(check)
    write_json(args.result, {"benchmark": "photo_features", "weights": Path(args.out).name, "net": info, **check})


if __name__ == "__main__":
    main()
