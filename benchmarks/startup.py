"""Command start-up: wall time of short `genlab` commands against the floor `python -c "import torch"`.

A tiny digits-flow run is trained first (a few steps, a small U-Net). Then each repeat runs, in one fresh
process each and in an order rotated per repeat (interleaved, so slow drift of the machine hits all alike):

    floor     python -c "import torch"
    help      python -m genlab --help
    info      python -m genlab info RUN
    sample    python -m genlab sample RUN --n 10 -o x.png
    config    python -c "import genlab.config"        (import only)
    cli       python -c "import genlab.cli, genlab.checkpoint"   (import only)

Reported: the median seconds of each and its ratio to the floor's median from the same run (1.0 = as fast as
importing torch; the part above 1 is genlab's own start-up and work), plus which heavy libraries each command
imported (scikit-learn, matplotlib, scipy, POT, transformers). `--compare SRC` also runs every genlab command
against another source tree (e.g. `git archive OLD src | tar -x -C /tmp/old`, then `--compare /tmp/old/src`),
interleaved in the same repeats and against the same floor, as entries named `compare:<command>`; the run is
trained by each tree for its own commands (an older tree may not read a newer run's recipe).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, rotated  # noqa: E402
from genlab.atomic import atomic_write_text  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("sklearn", "matplotlib", "scipy", "ot", "transformers")
TRAIN = [
    "--train.steps=3",
    "--train.batch_size=16",
    "--train.warmup_steps=1",
    "--train.log_every=1",
    "--train.checkpoint_every=3",
    "--train.sample_every=0",
    "--model.channels=16",
]


def commands(run: Path, out_png: Path) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "floor": [py, "-c", "import torch"],
        "help": [py, "-m", "genlab", "--help"],
        "info": [py, "-m", "genlab", "info", str(run)],
        "sample": [py, "-m", "genlab", "sample", str(run), "--n", "10", "-o", str(out_png)],
        "config": [py, "-c", "import genlab.config"],
        "cli": [py, "-c", "import genlab.cli, genlab.checkpoint"],
    }


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def heavy_imports(cmd: list[str], env: dict) -> list[str]:
    """The heavy libraries a command has imported by the time it exits."""
    report = (
        "import atexit, sys; atexit.register(lambda: print('HEAVY=' + ','.join(sorted({m.split('.')[0] "
        f"for m in sys.modules}} & set({HEAVY!r}))), file=sys.stderr))"
    )
    if cmd[1:3] == ["-m", "genlab"]:
        code = (
            f"{report}\nimport runpy\nsys.argv = ['genlab', *sys.argv[1:]]\n"
            "runpy.run_module('genlab', run_name='__main__')"
        )
        probe = [cmd[0], "-c", code, *cmd[3:]]
    else:
        probe = [cmd[0], "-c", f"{report}\n{cmd[2]}"]
    err = subprocess.run(probe, check=True, env=env, capture_output=True, text=True).stderr
    line = next(x for x in err.splitlines() if x.startswith("HEAVY="))
    return [m for m in line[len("HEAVY=") :].split(",") if m]


def train_tiny(run: Path, env: dict) -> None:
    """The tiny run, trained by the source tree that `env` selects (an older tree may not read a newer run)."""
    cmd = [
        sys.executable,
        "-m",
        "genlab",
        "train",
        str(ROOT / "recipes" / "digits-flow.yaml"),
        "--out",
        str(run),
        "--no-progress",
        *TRAIN,
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"training the tiny run failed (exit {done.returncode}): {done.stderr[-500:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--compare", default=None, help="another source tree to time the same commands against")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "startup.json"))
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    envs = {"": env}
    if args.compare:
        envs["compare:"] = {**env, "PYTHONPATH": str(Path(args.compare).resolve())}
    with tempfile.TemporaryDirectory() as tmp:
        run, png = Path(tmp) / "run", Path(tmp) / "x.png"
        cmds = {}
        for prefix, prefix_env in envs.items():
            train_tiny(Path(tmp) / f"{prefix}run", prefix_env)
            cmds.update(
                {
                    prefix + k: c
                    for k, c in commands(Path(tmp) / f"{prefix}run", png).items()
                    if not (prefix and k == "floor")
                }
            )
        env_of = {name: envs["compare:" if name.startswith("compare:") else ""] for name in cmds}
        names = list(cmds)
        times: dict[str, list[float]] = {k: [] for k in names}
        for name in names:  # one untimed warm-up each (file-system caches)
            timed(cmds[name], env_of[name])
        for r in range(args.repeats):
            for name in rotated(names, r):
                times[name].append(timed(cmds[name], env_of[name]))
        heavy = {name: heavy_imports(cmds[name], env_of[name]) for name in names}
        shown = {
            name: " ".join(["python", *c[1:]])
            .replace(str(Path(tmp) / "compare:run"), "RUN")
            .replace(str(run), "RUN")
            .replace(str(png), "x.png")
            for name, c in cmds.items()
        }
    floor = statistics.median(times["floor"])
    result = {
        "what": "median wall seconds of one fresh process per command, interleaved repeats; ratio = median / "
        "median of `python -c 'import torch'` in the same run",
        "repeats": args.repeats,
        "compare": args.compare,
        "train_overrides": TRAIN,
        "floor_s": round(floor, 3),
        "commands": {
            name: {
                "cmd": shown[name],
                "median_s": round(statistics.median(times[name]), 3),
                "ratio_to_floor": round(statistics.median(times[name]) / floor, 2),
                "all_s": [round(t, 3) for t in times[name]],
                "heavy_imports": heavy[name],
            }
            for name in names
        },
    }
    atomic_write_text(args.out, json.dumps({"machine": machine(), **result}, indent=2) + "\n")
    print(
        json.dumps(
            {k: (v["median_s"], v["ratio_to_floor"], v["heavy_imports"]) for k, v in result["commands"].items()},
            indent=1,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
