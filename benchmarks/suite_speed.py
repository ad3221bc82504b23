"""Wall time of the test suite (or a part of it): serial vs pytest-xdist workers, and this tree's tests vs an
earlier commit's, run interleaved in one session.

Each configuration is one `python -m pytest` process (-p no:cacheprovider, --durations=0) on the same selection;
the repeats go round-robin over the configurations so that a change in the machine's load hits all of them alike.
A commit's tests are taken with `git archive REV tests` into a temporary folder (the library itself is the working
tree's in every configuration, so only the tests differ). Reported: each run's wall seconds, pass/fail counts and
its slowest test phases, the median per configuration, and each configuration's median as a ratio of the first's.

  python benchmarks/suite_speed.py                                   # the whole suite: serial vs -n 2
  python benchmarks/suite_speed.py --trees HEAD~1,. --workers 0 -- tests/test_cli.py
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import write_json

ROOT = Path(__file__).resolve().parents[1]
DURATION = re.compile(r"^\s*([0-9.]+)s (setup|call|teardown)\s+(\S.*)$")
COUNTS = re.compile(r"(\d+) (passed|failed|errors?|skipped|deselected)")


def export_tests(rev: str, into: Path) -> Path:
    """A folder holding `rev`'s tests/ and pyproject.toml (pytest's settings), beside links to this tree's data."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev, "tests", "pyproject.toml"], cwd=ROOT, capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"git archive {rev} failed: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    for name in ("recipes", "src", "benchmarks", "docs", "README.md", "Makefile"):  # what tests read from ROOT
        if (ROOT / name).exists():
            (into / name).symlink_to(ROOT / name)
    return into


def run_pytest(tree: Path, workers: int, selection: list[str]) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--durations=0", *selection]
    if workers:
        cmd += ["-n", str(workers), "--dist", "loadfile"]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=tree, capture_output=True, text=True)
    wall = time.perf_counter() - start
    phases = []
    for line in done.stdout.splitlines():
        m = DURATION.match(line)
        if m:
            phases.append({"seconds": float(m.group(1)), "phase": m.group(2), "test": m.group(3).strip()})
    ends = [ln for ln in done.stdout.splitlines() if re.search(r"\d+ (passed|failed|errors?)\b.* in [0-9.]+s", ln)]
    tail = ends[-1].strip("= ") if ends else done.stdout.strip()[-300:]
    counts = {kind.rstrip("s"): int(n) for n, kind in COUNTS.findall(tail)}
    return {
        "wall_s": round(wall, 1),
        "exit_code": done.returncode,
        "counts": counts,
        "summary": tail,
        "slowest": phases[:40],
        "failures": [ln for ln in done.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))][:20],
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trees", default=".", help="comma list: '.' (this tree) or git revisions whose tests to run")
    ap.add_argument("--workers", default="0,2", help="comma list of xdist worker counts (0: serial)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "suite_speed.json"))
    ap.add_argument("selection", nargs="*", help="pytest arguments after --: files, -k EXPR (default: everything)")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    scratch = Path(tempfile.mkdtemp(prefix="suite-speed-"))
    try:
        trees = {}
        for i, rev in enumerate(args.trees.split(",")):
            trees[rev] = ROOT if rev == "." else export_tests(rev, scratch / f"tree{i}")
        configs = [(rev, int(w)) for rev in trees for w in args.workers.split(",")]
        runs = {f"{rev} -n {w}": [] for rev, w in configs}
        for r in range(args.repeats):
            for rev, w in configs:
                result = run_pytest(trees[rev], w, args.selection)
                print(f"[{r + 1}/{args.repeats}] {rev} -n {w}: {result['wall_s']} s, {result['summary']}", flush=True)
                runs[f"{rev} -n {w}"].append({**result, "load_average_after": os.getloadavg()})
                report(args, runs)  # after every run: a long session that is stopped keeps what it measured
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def report(args, runs: dict) -> None:
    done = {k: v for k, v in runs.items() if v}
    medians = {k: statistics.median(x["wall_s"] for x in v) for k, v in done.items()}
    first = next(iter(medians.values()))
    write_json(
        args.out,
        {
            "selection": args.selection or ["(whole suite)"],
            "omp_num_threads": os.environ["OMP_NUM_THREADS"],
            "complete": all(len(v) == args.repeats for v in runs.values()),
            "median_wall_s": medians,
            "ratio_to_first": {k: round(v / first, 3) for k, v in medians.items()},
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
