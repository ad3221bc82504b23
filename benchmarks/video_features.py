"""Train the video feature net (genlab.metrics.video_features) and check its Fréchet distance.

    python benchmarks/video_features.py [--n 3000] [--epochs 30] [--frames 8] [--threads 1] [--seed 0]
        [--out src/genlab/assets/features-videos.safetensors] [--json benchmarks/results/video_features.json]

1. A VideoCNN is trained on n 'train' videos of genlab.data.videos (seed 0, the given frames) to predict the
   multi-hot labels of their shapes (colours, kinds, motions) and written to --out (+ .json sidecar): this is
   how the shipped src/genlab/assets/features-videos.* was made.
2. Held-out label accuracy on 'test' and 'heldout' (500 videos each).
3. FD sanity: FD of the 'test' videos against themselves (0), against a second draw of 'test' (other seed: the
   sampling noise floor), against the same videos with shuffled frames, with each video's frames reversed in
   time, with all frames replaced by the first one, and against 'heldout' (unseen kind×motion pairs).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from common import write_json
from genlab.data.videos import sample_videos
from genlab.metrics.fid import frechet_distance
from genlab.metrics.video_features import (
    fit_video_net,
    label_accuracy,
    label_targets,
    save_video_net,
    shuffle_frames,
    video_features,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--n-test", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="src/genlab/assets/features-videos.safetensors")
    ap.add_argument("--json", default="benchmarks/results/video_features.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    x, _, casts = sample_videos(args.n, split="train", seed=0, frames=args.frames)
    start = time.perf_counter()
    net = fit_video_net(x, label_targets(casts), epochs=args.epochs, seed=args.seed)
    seconds = round(time.perf_counter() - start, 1)
    train_acc = label_accuracy(net, x[:1000], label_targets(casts[:1000]))
    del x
    splits = {
        split: sample_videos(args.n_test, split=split, seed=0, frames=args.frames) for split in ("test", "heldout")
    }
    accuracy = {split: label_accuracy(net, v, label_targets(c)) for split, (v, _, c) in splits.items()}
    info = {
        "name": f"videos-cnn{net.num_features}",
        "dataset": f"videos (train split, seed 0, {args.frames} frames, n={args.n})",
        "heldout_accuracy": accuracy["test"]["per_label"],
        "accuracy": {"train_first_1000": train_acc, **accuracy},
        "num_features": net.num_features,
        "feature": "penultimate layer (ReLU of linear 4w -> num_features after the space-time mean)",
        "parameters": sum(p.numel() for p in net.parameters()),
        "epochs": args.epochs,
        "seed": args.seed,
        "train_seconds": seconds,
        "command": "python benchmarks/video_features.py "
        + f"--n {args.n} --epochs {args.epochs} --frames {args.frames}",
    }
    save_video_net(net, args.out, info=info)

    test = splits["test"][0]
    other, _, _ = sample_videos(args.n_test, split="test", seed=1, frames=args.frames)
    feats = video_features(net, test)
    variants = {
        "itself": test,
        "other_test_draw": other,
        "shuffled_frames": shuffle_frames(test, seed=0),
        "reversed_in_time": test.flip(1),
        "first_frame_only": test[:, :1].expand_as(test),
        "heldout_split": splits["heldout"][0],
    }
    fd = {name: round(frechet_distance(feats, video_features(net, v)), 4) for name, v in variants.items()}
    result = {
        "net": str(args.out),
        "size_bytes": os.path.getsize(args.out),
        **info,
        "fd_vs_test": fd,
        "n_test": args.n_test,
    }
    write_json(args.json, result)
    print(f"accuracy {accuracy}\nFD against test: {fd}")


if __name__ == "__main__":
    main()
