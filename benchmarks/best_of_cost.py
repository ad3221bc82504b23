"""What best of K costs on the default text-to-image run: time and network evaluations per image, against one draw.

    python benchmarks/best_of_cost.py [--ks 1 2 4] [--repeats 5] [--cli-repeats 3] [--threads 1]
        [--out benchmarks/results/best_of_cost.json]

In process: `genlab.generate.generate(prompt, n=4, best_of=K)` on the first wording of each category of the
GenEval-style suite (six prompts), the arms in an order rotated per repeat (interleaved, so drift of the shared
machine hits them alike); CPU seconds (time.thread_time) and wall seconds per image, medians over repeats, each as a
ratio to best of 1 measured in the same run; the network evaluations per image each arm reports (Samples.nfe: K
draws and the judge's). Command line: `genlab generate PROMPT --best-of K` in a fresh process (start-up, model
load, 4 images, PNG), wall seconds, interleaved the same way: what a user waits for.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import rotated, write_json  # noqa: E402
from genlab.generate import SHIPPED, generate, text_run  # noqa: E402
from genlab.metrics.geneval import CATEGORIES, builtin_suite  # noqa: E402

N = 4  # images per prompt, as `genlab generate` draws by default


def prompts() -> list[str]:
    """The first wording of each suite category."""
    suite = builtin_suite().prompts
    return [next(p.text for p in suite if p.category == cat) for cat in CATEGORIES]


def in_process(ks: list[int], repeats: int) -> dict:
    run = text_run()
    texts = prompts()
    generate(texts[0], n=1, run=run, best_of=1, steps=2)  # warm-up: first-call allocations
    cpu, wall, nfe = ({k: [] for k in ks} for _ in range(3))
    for r in range(repeats):
        for k in rotated(ks, r):
            c0, w0, evaluations = time.thread_time(), time.perf_counter(), []
            for i, text in enumerate(texts):
                evaluations.append(generate(text, n=N, run=run, best_of=k, seed=1000 * r + i).nfe)
            images = N * len(texts)
            cpu[k].append((time.thread_time() - c0) / images)
            wall[k].append((time.perf_counter() - w0) / images)
            nfe[k] = evaluations
        print(f"repeat {r + 1}/{repeats}", flush=True)
    med = {what: {k: statistics.median(v[k]) for k in ks} for what, v in (("cpu", cpu), ("wall", wall))}
    return {
        "prompts": texts,
        "images_per_prompt": N,
        "seconds_per_image": {what: {str(k): round(v, 4) for k, v in m.items()} for what, m in med.items()},
        "ratio_to_one_draw": {what: {str(k): round(v / m[ks[0]], 2) for k, v in m.items()} for what, m in med.items()},
        "nfe_per_image": {str(k): dict(zip(texts, v)) for k, v in nfe.items()},
        "nfe_per_image_mean": {str(k): round(statistics.mean(v), 1) for k, v in nfe.items()},
        "seconds": {
            what: {str(k): [round(x, 4) for x in v[k]] for k in ks} for what, v in (("cpu", cpu), ("wall", wall))
        },
    }


def command_line(ks: list[int], repeats: int) -> dict:
    prompt = prompts()[4]  # position: two objects and a relation, the longest judge
    wall = {k: [] for k in ks}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for k in rotated(ks, r):
                cmd = [sys.executable, "-m", "genlab", "generate", prompt, "--best-of", str(k), "-o", f"{tmp}/x.png"]
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True)
                wall[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in wall.items()}
    return {
        "command": f'genlab generate "{prompt}" --best-of K (4 images, a fresh process, default threads)',
        "wall_seconds": {str(k): round(v, 2) for k, v in med.items()},
        "ratio_to_one_draw": {str(k): round(v / med[ks[0]], 2) for k, v in med.items()},
        "seconds": {str(k): [round(x, 2) for x in v] for k, v in wall.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4], help="best of K arms; the first is the baseline")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cli-repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/best_of_cost.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    result = {
        "run": f"shipped:{SHIPPED} (the default), its recipe's sampling",
        "threads": args.threads,
        "note": "CPU machine shared with other engineers: medians of interleaved repeats, ratios within this run",
        "in_process": in_process(args.ks, args.repeats),
        "command_line": command_line(args.ks, args.cli_repeats),
    }
    write_json(args.out, result)


if __name__ == "__main__":
    main()
