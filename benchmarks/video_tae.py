"""Video autoencoder that compresses time (recipes/videos-tae.yaml, MovieGen's TAE at laptop scale) against per-frame
compression with the image autoencoder (runs/shapes-autoencoder, what recipes/videos-t2v.yaml encodes frames with).

    python benchmarks/video_tae.py [--steps 600] [--n 200] [--threads 1] [--repeats 7] [--reuse-run]
        [--variants inflated scratch-lc4 scratch-lc8] [--image-ae runs/shapes-autoencoder] [--runs runs]
        [--out benchmarks/results/video_tae.json] [--doc docs/video.md] [--picture docs/images/video_tae.png]

1. recipes/videos-tae.yaml is trained for --steps steps (no time limit) per variant (VARIANTS: the recipe itself,
   4 latent channels inflated from runs/shapes-autoencoder, into runs/videos-tae, the run recipes/videos-t2v-tae.yaml
   reads; from scratch with 4 or 8 latent channels at the learning rate 3e-3 into runs/bench-video-tae-NAME).
   --reuse-run scores the runs already there.
2. The same n test videos (genlab.data.videos, split 'test', seed 0) go through each autoencoder (posterior mean,
   decoded, clamped to [-1, 1]): the image autoencoder frame by frame, the TAE whole videos.
3. Scores (genlab.metrics.video.reconstruction_scores): PSNR per frame (mean and by frame index), flicker (mean
   |Δr − Δx| of consecutive-frame differences, 8-bit levels) and static flicker (mean |Δr| where the video does not
   change); latent numbers per video, latent frames (what a video DiT attends over), compression ratio (pixel
   numbers / latent numbers), parameters.
4. Speed: encode and decode of a batch of --batch videos, each autoencoder timed in turn within each of --repeats
   rounds (interleaved), medians; reported as TAE / image-autoencoder time ratios (and ms per video).
Writes the JSON, docs/images/video_tae.png (test videos' frames left to right; rows: original, per-frame
autoencoder, each TAE) and the "Video autoencoder" section of docs/video.md (replaced between its markers, the rest
of the page kept).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from common import train_or_reuse, write_json
from genlab.atomic import atomic_path, atomic_write_text
from genlab.config import load_recipe
from genlab.data.videos import sample_videos
from genlab.metrics.video import reconstruction_scores
from genlab.plots import save_samples
from genlab.runs import load_run

RECIPE = "recipes/videos-tae.yaml"
ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "video.md"
PICTURE = ROOT / "docs" / "images" / "video_tae.png"
START, END = "<!-- video_tae:start -->", "<!-- video_tae:end -->"
SHOWN = 3  # test videos in the picture
SCRATCH = ["method.init=", "train.lr=0.003"]
VARIANTS = {  # name: (row label, recipe overrides)
    "inflated": ("TAE 4ch, from the image AE", []),
    "scratch-lc4": ("TAE 4ch, from scratch", SCRATCH),
    "scratch-lc8": ("TAE 8ch, from scratch", [*SCRATCH, "model.latent_channels=8"]),
}


def per_frame(ae):
    """encode / decode functions of an image autoencoder applied to every frame of videos (B, T, C, H, W)."""

    def encode(x):
        return ae.encode(x.flatten(0, 1))[0].unflatten(0, x.shape[:2])  # (B, T, c, h, w)

    def decode(z):
        return ae.decode(z.flatten(0, 1)).unflatten(0, z.shape[:2])

    return encode, decode


def whole_video(ae):
    return (lambda x: ae.encode(x)[0]), ae.decode


@torch.no_grad()
def reconstruct(coder, x: torch.Tensor, batch: int = 50) -> torch.Tensor:
    encode, decode = coder
    return torch.cat([decode(encode(c)).clamp(-1, 1) for c in x.split(batch)])


@torch.no_grad()
def timings(coders: dict, x: torch.Tensor, repeats: int) -> dict:
    """Median seconds of encode and decode of x per coder, the coders timed in turn in every round."""
    latents = {name: coder[0](x) for name, coder in coders.items()}  # warm-up, and the decoders' inputs
    times = {name: {"encode": [], "decode": []} for name in coders}
    for _ in range(repeats):
        for name, (encode, decode) in coders.items():
            start = time.perf_counter()
            encode(x)
            mid = time.perf_counter()
            decode(latents[name])
            times[name]["encode"].append(mid - start)
            times[name]["decode"].append(time.perf_counter() - mid)
    return {name: {k: statistics.median(v) for k, v in t.items()} for name, t in times.items()}


def params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def render_section(result: dict) -> str:
    rows = result["autoencoders"]
    frames = result["frames"]
    lines = [
        START,
        "## Video autoencoder: compressing time (MovieGen's TAE, small)",
        "",
        "`model.kind: video_autoencoder` / `method.kind: video_autoencoder` (recipes/videos-tae.yaml) is the image",
        "autoencoder's blocks applied to every frame, each followed by a causal 1-D temporal convolution, with time",
        "halved by a stride-2 causal conv (8 frames -> 4 latent frames) and space as the image autoencoder",
        "(32x32 -> 8x8). A latent frame depends only on its own and earlier frames. As MovieGen does, the recipe",
        "starts from the image autoencoder (`method.init: runs/shapes-autoencoder`: its layers copied into every",
        "frame's, the temporal layers starting as identity, pair mean and frame repeat). `video_flow` reads it as",
        "`method.autoencoder` (recipes/videos-t2v-tae.yaml); its video DiT then runs on the 4 latent frames.",
        "",
        f"The same {result['n']} test videos through the image autoencoder frame by frame (runs/shapes-autoencoder)",
        f"and through TAEs trained for {result['steps']} steps of batch {result['batch_size']} videos, from",
        "`python benchmarks/video_tae.py` (benchmarks/results/video_tae.json). Flicker: mean |Δr − Δx| of",
        "consecutive-frame differences; static flicker: mean |Δr| where the video does not change (8-bit levels,",
        "lower is better). Time ratios: to the per-frame image autoencoder on the same videos (below 1: faster).",
        "",
        "| autoencoder | latent per video | latent frames | compression | PSNR dB | flicker | static flicker"
        " | encode time ratio | decode time ratio | parameters |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {'x'.join(map(str, r['latent_shape']))} = {r['latent_numbers']} | {r['latent_frames']} | "
            f"{r['compression']:.0f}x | {r['scores']['psnr_db']:.2f} | {r['scores']['flicker']:.2f} | "
            f"{r['scores']['static_flicker']:.2f} | {r['encode_ratio']:.2f} | {r['decode_ratio']:.2f} | "
            f"{r['parameters']} |"
        )
    lines += [
        "",
        "PSNR (dB) by frame index:",
        "",
        "| autoencoder | " + " | ".join(str(t) for t in range(frames)) + " |",
        "|" + " --- |" * (frames + 1),
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | " + " | ".join(f"{r['scores'][f'psnr_db_frame_{t}']:.2f}" for t in range(frames)) + " |"
        )
    names = "; ".join(rows)
    image = rows["per-frame image AE"]
    lines += ["", "Notes:", ""]
    lines.append(
        f"- The per-frame image AE is {image['run']} ({image['steps']} steps on {image['trained_on']}); a TAE"
        ' "from the image AE" starts from it and then trains its steps on videos, one "from scratch" has only'
        " those steps."
    )
    for name, r in rows.items():
        if r.get("latent_frames", frames) == frames:
            continue
        per = [r["scores"][f"psnr_db_frame_{t}"] for t in range(frames)]
        lines.append(
            f"- {name}: the first frame of each latent frame's pair {statistics.mean(per[0::2]):.2f} dB, the second "
            f"{statistics.mean(per[1::2]):.2f} dB; frame 0 (no past frames) {per[0]:.2f} dB."
        )
    lines += [
        "",
        f"![original and reconstructions]({result['picture']})",
        "",
        f"Frames left to right; per test video the rows are: original; {names}.",
        END,
    ]
    return "\n".join(lines) + "\n"


def write_section(section: str, doc: Path) -> None:
    """Replace this benchmark's section of docs/video.md (between its markers) or append it; the rest is kept."""
    text = doc.read_text() if doc.exists() else "# Video\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + section.rstrip("\n") + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    atomic_write_text(doc, text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--batch", type=int, default=16, help="videos per timed encode / decode")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--image-ae", default="runs/shapes-autoencoder")
    ap.add_argument("--reuse-run", action="store_true", help="score the TAE runs already in their folders")
    ap.add_argument("--runs", default="runs", help="folder of the TAE runs")
    ap.add_argument("--doc", default=str(DOC))
    ap.add_argument("--picture", default=str(PICTURE))
    ap.add_argument("--out", default="benchmarks/results/video_tae.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    base = load_recipe(RECIPE)
    steps = args.steps or base.train.steps
    image_run = load_run(args.image_ae)
    if image_run.recipe.method.kind != "autoencoder":
        raise SystemExit(f"--image-ae {args.image_ae} is a {image_run.recipe.method.kind!r} run, not an autoencoder")
    frames = base.data.frames
    x, _, _ = sample_videos(args.n, split="test", seed=0, frames=frames)
    coders = {"per-frame image AE": per_frame(image_run.method.ae)}
    info = {
        "per-frame image AE": {
            "run": args.image_ae,
            "steps": image_run.step,
            "trained_on": f"{image_run.recipe.data.kind} images (n={image_run.recipe.data.n})",
            "parameters": params(image_run.method.ae),
            "latent_shape": [frames, *image_run.method.ae.cfg.latent_shape()],
            "latent_frames": frames,
        }
    }
    for variant in args.variants:
        name, changes = VARIANTS[variant]
        overrides = [f"train.steps={steps}", "train.time_limit_minutes=0", *changes]
        recipe = load_recipe(RECIPE, overrides)
        run_dir = f"{args.runs}/videos-tae" if not changes else f"{args.runs}/bench-video-tae-{variant}"
        run, wall = train_or_reuse(recipe, run_dir, reuse=args.reuse_run)
        coders[name] = whole_video(run.method.ae)
        shape = list(run.method.ae.cfg.latent_shape())
        info[name] = {
            "run": run_dir,
            "recipe": RECIPE,
            "overrides": overrides,
            "steps": run.step,
            "train_seconds": wall,
            "trained_on": f"videos (n={recipe.data.n}, {frames} frames)",
            "init": recipe.method.init or None,
            "lr": recipe.train.lr,
            "parameters": params(run.method.ae),
            "latent_shape": shape,
            "latent_frames": shape[0],
        }
    speed = timings(coders, x[: args.batch], args.repeats)
    pixels = x[0].numel()
    rows = {}
    recons = {}
    for name, coder in coders.items():
        recons[name] = reconstruct(coder, x)
        r = info[name]
        numbers = int(torch.tensor(r["latent_shape"]).prod())
        ref = speed["per-frame image AE"]
        rows[name] = {
            **r,
            "latent_numbers": numbers,
            "compression": pixels / numbers,
            "scores": reconstruction_scores(recons[name], x),
            "encode_ms_per_video": 1000 * speed[name]["encode"] / args.batch,
            "decode_ms_per_video": 1000 * speed[name]["decode"] / args.batch,
            "encode_ratio": speed[name]["encode"] / ref["encode"],
            "decode_ratio": speed[name]["decode"] / ref["decode"],
        }
    shown = torch.stack([x[:SHOWN], *(recons[name][:SHOWN] for name in coders)], 1)  # (SHOWN, rows, T, C, H, W)
    with atomic_path(args.picture) as tmp:
        save_samples(shown.flatten(0, 2), tmp, nrow=frames)
    result = {
        "recipe": RECIPE,
        "steps": steps,
        "batch_size": base.train.batch_size,
        "n": args.n,
        "frames": frames,
        "split": "test",
        "timing": {"batch_videos": args.batch, "repeats": args.repeats, "statistic": "median"},
        "autoencoders": rows,
        "picture": os.path.relpath(args.picture, Path(args.doc).parent),
    }
    write_json(args.out, result)
    write_section(render_section(result), Path(args.doc))
    for name, r in rows.items():
        s = r["scores"]
        print(
            f"{name:20s} PSNR {s['psnr_db']:.2f}  flicker {s['flicker']:.2f}  static {s['static_flicker']:.2f}  "
            f"latent {r['latent_numbers']}  enc x{r['encode_ratio']:.2f}  dec x{r['decode_ratio']:.2f}"
        )


if __name__ == "__main__":
    main()
