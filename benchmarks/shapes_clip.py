"""CLIP trained by genlab on the shapes: image→text retrieval and CLIP score of true vs shuffled pairs.

Usage: OMP_NUM_THREADS=1 python benchmarks/shapes_clip.py RUN [--n 500] [--out benchmarks/results/shapes_clip.json]
For the 'test' split (seen colour×shape pairs) and the 'heldout' split (pairs never seen in training):
- retrieval_exact: top-1 over the split's distinct captions is the image's own caption (chance ≈ 1/#captions);
- retrieval_true: the top-1 caption is true of the image by the procedural checker (captions from other
  templates or omitting a size can be true as well); chance_true: the same for a random candidate caption;
- clip_score of (image, own caption) vs (image, shuffled caption).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402
from genlab.data.images import tensor_to_uint8  # noqa: E402
from genlab.data.shapes import sample_pairs  # noqa: E402
from genlab.metrics.t2i import check  # noqa: E402
from genlab.text.clip import clip_score, load_clip, retrieve  # noqa: E402


def split_report(clip, split: str, n: int) -> dict:
    x, texts, _ = sample_pairs(n, split=split, seed=0)  # the 'test'/'heldout' images of ShapesConfig(seed=0)
    candidates = sorted(set(texts))
    best = retrieve(x, candidates, clip)
    pixels = tensor_to_uint8(x)
    rng = random.Random(0)
    shuffled = rng.sample(texts, len(texts))
    random_true = [check(p, rng.choice(candidates))["all"] for p in pixels for _ in range(3)]
    return {
        "images": n,
        "distinct_captions": len(candidates),
        "retrieval_exact": sum(b == t for b, t in zip(best, texts)) / n,
        "chance_exact": 1 / len(candidates),
        "retrieval_true": sum(check(p, b)["all"] for p, b in zip(pixels, best)) / n,
        "chance_true": sum(random_true) / len(random_true),
        "clip_score_true_pairs": clip_score(x, texts, clip),
        "clip_score_shuffled_pairs": clip_score(x, shuffled, clip),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--out", default="benchmarks/results/shapes_clip.json")
    args = p.parse_args()
    clip = load_clip(args.run)
    result = {"run": args.run, **{split: split_report(clip, split, args.n) for split in ("test", "heldout")}}
    print(result)
    write_json(args.out, result)


if __name__ == "__main__":
    main()
