"""Shared helpers for the benchmark scripts: JSON output (written atomically) with the machine it ran on."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from genlab.atomic import atomic_write_text

# the text-to-image run the editing, guidance and quality benchmarks measure by default: the cross-attention DiT
# shipped as shapes-t2i (the package's default until shapes-t2i-curriculum replaced it), so that their recorded
# results rerun as they are; pass --run for another
BASE_T2I = "shipped:shapes-t2i"


def machine() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d"),
    }


def rotated(items: list, r: int) -> list:
    """`items` in the order of repeat r of an interleaved benchmark: each repeat starts one item later, so slow drift
    of a shared machine hits every arm alike."""
    return items[r % len(items) :] + items[: r % len(items)]


def write_json(path: str | Path, result: dict, *, with_machine: bool = True, **dumps) -> Path:
    """Write `result` (after a "machine" entry unless with_machine=False) as indented JSON, atomically."""
    body = {"machine": machine(), **result} if with_machine else result
    atomic_write_text(path, json.dumps(body, indent=2, **dumps) + "\n")
    print(f"wrote {path}")
    return Path(path)


def previous(out: str | Path) -> dict:
    """The JSON already at `out` (a benchmark keeps the rows of arms not run this time), or an empty dict."""
    path = Path(out)
    return json.loads(path.read_text()) if path.is_file() else {}


@contextlib.contextmanager
def locked(out: str | Path):
    """Hold an exclusive lock named after `out` (in the temporary folder, POSIX only) while the block reads,
    merges and writes it, so two benchmark processes writing rows into one results file keep each other's."""
    try:
        import fcntl
    except ImportError:  # no POSIX locks: one process at a time is the caller's to ensure
        yield
        return
    name = hashlib.sha256(str(Path(out).resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"genlab-bench-{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def wilson(k: int, n: int) -> list[float]:
    """95 % Wilson score interval of k successes in n."""
    if n == 0:
        return [float("nan"), float("nan")]
    z, p = 1.96, k / n
    mid, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return [round((mid - half) / (1 + z * z / n), 4), round((mid + half) / (1 + z * z / n), 4)]


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def measured(fn) -> tuple[float, int]:
    """(seconds, rise of the process's peak RSS over the RSS just before) of one call of fn() (Linux: VmHWM is
    reset before the call; elsewhere the rise reads 0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        pass
    before = _status("VmRSS")
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start, _status("VmHWM") - before


def train_or_reuse(recipe, run_dir: str | Path, *, reuse: bool):
    """(the run, training wall seconds or None): train `recipe` into run_dir afresh, or with `reuse` score the run
    already there, which must have finished the recipe's steps."""
    import shutil

    from genlab.runs import load_run
    from genlab.train import train

    wall = None
    if not reuse:
        shutil.rmtree(run_dir, ignore_errors=True)
        start = time.perf_counter()
        train(recipe, run_dir, progress=False)
        wall = round(time.perf_counter() - start, 1)
    run = load_run(run_dir)
    if run.step != recipe.train.steps:
        raise SystemExit(f"{run_dir} holds step {run.step}, not {recipe.train.steps}: drop --reuse-run")
    return run, wall
