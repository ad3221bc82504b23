"""Load test of `genlab serve`: 20 concurrent clients issue generate requests on localhost for a bounded time.

The server is the real command (`python -m genlab serve --runs DIR --port P`, default limits: 8 jobs queued or
running, 1 running, 1 per user) in its own process. Each client is a gradio_client.Client (its own session, so its
own user) in a thread that loops until the deadline: one generate request (the shipped text-to-image run, n images,
--steps sampler steps), then the next. A request is
    completed  the job ran and its PNG(s) came back,
    rejected   refused at once because the queue was full (the client waits 0.2–0.5 s and tries again),
    failed     anything else (an error, a wrong answer): the test asks for none.
Latency: seconds from submitting to the result of completed requests (queue wait included); percentiles p50, p90,
p99, and the median of --single requests of one client alone before (the baseline: p50 over it is the cost of
sharing). The machine's 1-minute load average before and after is recorded: on a shared machine it bounds all.
Written to benchmarks/results/serve_load.json (every rejection message is counted, so "rejections only as
the queue limit says" is checked from the JSON: all carry the queue-full message).
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402
from genlab.serve.core import Limits  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
QUEUE_FULL = "the server is busy"
SHIPPED = "shapes-t2i (shipped)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the server did not answer at {url} within {timeout:.0f} s")


def client_loop(url: str, deadline: float, args, out: dict, lock: threading.Lock, seed: int) -> None:
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from genlab.serve.pngmeta import read_settings

    client = Client(url, verbose=False)
    rng = random.Random(seed)
    k = 0
    while time.time() < deadline:
        s = seed * 100_000 + k
        k += 1
        start = time.perf_counter()
        try:
            *_, files, status = client.predict(
                SHIPPED, "a red circle above a blue square", None, "euler", args.steps, 4.0, s, args.n, 1,
                api_name="/generate",
            )  # fmt: skip
            seconds = time.perf_counter() - start
            ok = status.startswith("done") and len(files) == args.n and read_settings(files[0])["seed"] == s
            with lock:
                if ok:
                    out["latencies"].append(seconds)
                else:
                    out["failed"].append(f"unexpected answer: {status!r}, {len(files)} files")
        except AppError as e:
            with lock:
                (out["rejected"] if QUEUE_FULL in str(e) else out["failed"]).append(str(e)[:200])
            time.sleep(rng.uniform(0.2, 0.5))
        except Exception as e:  # a dropped connection, a timeout, ...
            with lock:
                out["failed"].append(f"{type(e).__name__}: {str(e)[:200]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0, help="how long the clients keep issuing requests")
    ap.add_argument("--steps", type=int, default=8, help="sampler steps per image (euler: NFE = steps)")
    ap.add_argument("--n", type=int, default=1, help="images per request")
    ap.add_argument("--single", type=int, default=5, help="requests of one client alone first (the baseline)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serve_load.json"))
    args = ap.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "GRADIO_ANALYTICS_ENABLED": "False"}
    with tempfile.TemporaryDirectory() as runs:  # an empty runs folder: the shipped run only
        cmd = [sys.executable, "-m", "genlab", "serve", "--runs", runs, "--port", str(port)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_up(url, proc)
            from gradio_client import Client

            # warm-up (untimed): the run loads on its first request; then one client alone, for the ratio
            alone = Client(url, verbose=False)
            single = []
            for k in range(args.single + 1):
                t0 = time.perf_counter()
                alone.predict(
                    SHIPPED, "a red circle", None, "euler", args.steps, 4.0, k, args.n, 1, api_name="/generate"
                )
                single.append(time.perf_counter() - t0)
            single = single[1:]
            load_before = os.getloadavg()
            out = {"latencies": [], "rejected": [], "failed": []}
            lock = threading.Lock()
            start = time.perf_counter()
            deadline = time.time() + args.seconds
            threads = [
                threading.Thread(target=client_loop, args=(url, deadline, args, out, lock, i + 1))
                for i in range(args.clients)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - start
            load_after = os.getloadavg()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    lat = np.array(out["latencies"])
    rejected_messages = collections.Counter(m.split(":")[0] for m in out["rejected"])
    result = {
        "command": " ".join(["python", "-m", "genlab", "serve", "--runs", "EMPTY", "--port", "PORT"]),
        "limits": {"queue": Limits().queue, "workers": Limits().workers, "per_user": 1},
        "clients": args.clients,
        "seconds": args.seconds,
        "wall_seconds": round(wall, 1),
        "request": {"run": SHIPPED, "sampler": "euler", "steps": args.steps, "n": args.n},
        "completed": int(len(lat)),
        "rejected": len(out["rejected"]),
        "failed": len(out["failed"]),
        "failures": out["failed"][:20],
        "rejection_messages": dict(rejected_messages),
        "completed_per_second": round(len(lat) / wall, 2),
        "single_client_latency_seconds": round(float(np.median(single)), 3),
        "p50_over_single_client": round(float(np.percentile(lat, 50)) / float(np.median(single)), 1)
        if len(lat)
        else None,
        "load_average_1min": {"before": round(load_before[0], 1), "after": round(load_after[0], 1)},
        "cpu_cores": os.cpu_count(),
        "latency_seconds": {
            "p50": round(float(np.percentile(lat, 50)), 3) if len(lat) else None,
            "p90": round(float(np.percentile(lat, 90)), 3) if len(lat) else None,
            "p99": round(float(np.percentile(lat, 99)), 3) if len(lat) else None,
            "max": round(float(lat.max()), 3) if len(lat) else None,
        },
    }
    write_json(args.out, result)
    print({k: result[k] for k in ("completed", "rejected", "failed", "latency_seconds")})
    if out["failed"]:
        raise SystemExit(f"{len(out['failed'])} requests failed, e.g. {out['failed'][0]}")


if __name__ == "__main__":
    main()
