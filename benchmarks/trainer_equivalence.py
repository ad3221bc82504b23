"""The trainer's promise, measured: does the micro-batch split change what a method learns?

GMM (recipes/digits-gmm.yaml, 60 EM steps on batches of 1,436 of the 1,437 digits, divisible by 4): final
training loss in nats/dim for grad_accum 1, 2, 4 (one process); equal losses mean seeding and EM follow the
global batch.
VQ-VAE (recipes/digits-vqvae.yaml, 20 steps): 2 processes (torchrun, gloo on CPU) x 1 micro-batch against
1 process x 2 micro-batches on the same global batch: the largest weight gap relative to the tensor's largest
value, the largest codebook gap, and the largest gap in the running per-code usage (codes per batch).

usage: python benchmarks/trainer_equivalence.py --label after   (--label before with PYTHONPATH=<old src>)
Results are merged into benchmarks/results/trainer_equivalence.json under the label.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "trainer_equivalence.json"
VQ_STEPS = 20


def gmm_losses() -> dict[str, float]:
    from tests.ddp_worker import Trainer, load_recipe

    out = {}
    for k in (1, 2, 4):
        overrides = ["--train.batch_size=1436", f"--train.grad_accum={k}"]
        trainer = Trainer(load_recipe(ROOT / "recipes" / "digits-gmm.yaml", overrides), "unused")
        for _ in range(trainer.cfg.steps):
            loss = trainer.train_step()["loss"]
        out[str(k)] = round(loss, 4)
    return out


def vq_gaps(tmp: Path) -> dict[str, float]:
    from tests.ddp_worker import run_steps, state

    recipe = ROOT / "recipes" / "digits-vqvae.yaml"
    spec = tmp / "spec.json"
    spec.write_text(json.dumps({"vqvae": str(recipe)}))
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    overrides = [f"--train.steps={VQ_STEPS}"]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(ROOT / "tests" / "ddp_worker.py"),
            str(spec),
            str(tmp / "two"),
            *overrides,
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    two = load_file(str(tmp / "two" / "vqvae-rank0.safetensors"))
    one = state(run_steps(str(recipe), ["--train.grad_accum=2", *overrides], tmp / "one"))
    rel = {k: float((two[k] - one[k]).abs().max() / one[k].abs().max().clamp_min(1e-12)) for k in one}
    return {
        "max_relative_weight_gap": max(rel.values()),
        "codebook_relative_gap": rel["model.quantizer.codebook"],
        "usage_abs_gap": float((two["model.quantizer.usage"] - one["model.quantizer.usage"]).abs().max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--label", required=True)
    label = parser.parse_args().label
    torch.set_num_threads(1)
    import genlab

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = {
            "genlab_source": str(Path(genlab.__file__).parent),
            "gmm_final_loss_nats_per_dim": gmm_losses(),
            "vqvae_two_processes_vs_one": vq_gaps(Path(tmp)),
            "vq_steps": VQ_STEPS,
        }
    result["seconds"] = round(time.perf_counter() - start, 1)
    from benchmarks.common import write_json

    old = json.loads(OUT.read_text()) if OUT.exists() else {}
    old.pop("machine", None)
    write_json(OUT, {**old, label: result})
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
