"""genlab on a real CUDA GPU: every method kind's loss, sample and likelihood, the trainer, and the default
text-to-image model on the GenEval-style suite, in fp32 and bf16. The project never needs a GPU; this is the check
that what runs on CPU is also right on one (tests/test_devices.py checks the same on a pretend device, on CPU).

    python benchmarks/gpu_check.py prepare   # on any machine with the bundled MiniLM: the suite's text table
    python benchmarks/gpu_check.py check     # on a CUDA machine: writes benchmarks/results/gpu_check.json

1. methods: each method kind of tests/test_devices.py (tiny and untrained, built as that test builds them) moved to
   the GPU, its batch too: every optimizer group's loss, sampling with a CPU generator, and the likelihood, in fp32
   and under bf16 autocast; every loss must be finite.
2. trainer: recipes/digits-flow.yaml (the `make demo` run), shortened, trained by genlab's Trainer on the GPU in fp32
   and with `train.mixed_precision: bf16`: the first and last logged losses (the loss must fall).
3. t2i: the default model (shipped:shapes-t2i-curriculum) on the GenEval-style suite (seed 0, 4 images per prompt,
   its recipe's sampling), on the GPU in fp32 and under bf16 autocast, beside the CPU row of the same suite,
   seeds and settings (`prepare` writes it); and how far the GPU's fp32 images are from the CPU's (the sampler's
   noise is drawn on a CPU generator, so both start from the same numbers).
   A GPU machine without the MiniLM package reads the captions' embeddings from `prepare`'s table (every prompt,
   plus the empty one for guidance); on the CPU the table reproduces the encoder's images exactly (checked there).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.* helpers: the tiny methods of tests/test_devices.py

from genlab.atomic import atomic_path, atomic_write_text  # noqa: E402
from genlab.metrics.geneval import builtin_suite, geneval  # noqa: E402

TEXTS = ROOT / ".gpu-check/texts.safetensors"  # inputs of `check`, written by `prepare` (not kept in git)
SHIPPED = "shipped:shapes-t2i-curriculum"
N_PER_PROMPT, SEED, COMPARED = 4, 0, 96  # images per prompt; suite seed; images compared with the CPU's one by one


# ----------------------------------------------------------------------------- the text table


class TableEncoder(torch.nn.Module):
    """A frozen text encoder read from a table: each text's per-token states and pooled vector as the packaged
    encoder gave them (genlab.text.base.TextEncoder.encode caches exactly these), padded the same way."""

    def __init__(self, table: dict[str, torch.Tensor], texts: list[str], name: str, max_length: int):
        super().__init__()
        self.rows = {t: (table[f"tokens.{i}"], table[f"pooled.{i}"]) for i, t in enumerate(texts)}
        self.dim, self.name, self.max_length = int(table["pooled.0"].shape[-1]), name, max_length

    def encode(self, texts: list[str]):
        from genlab.text.base import padded

        missing = [t for t in texts if t not in self.rows]
        if missing:
            raise KeyError(f"{missing[0]!r} is not in the text table: rerun `gpu_check.py prepare`")
        return padded([self.rows[t] for t in texts], self.dim, "cpu")


def suite_texts() -> list[str]:
    return ["", *dict.fromkeys(p.text for p in builtin_suite().prompts)]


def use_table(table: dict[str, torch.Tensor]) -> None:
    """Every latent_flow method built from now on reads its text from `table` (as `prepare` writes it)."""
    import genlab.methods.latent as latent

    table = dict(table)
    meta = json.loads(table.pop("meta").numpy().tobytes().decode())
    encoder = TableEncoder(table, meta["texts"], meta["name"], meta["max_length"])
    latent.text_encoder = lambda name: encoder


def draw(run, texts: list[str], seed: int = SEED, *, bf16: bool = False) -> torch.Tensor:
    """Images (on the CPU, float32) of `texts` at the run's own sampling, under bf16 autocast if asked."""
    from genlab.rerank import best_of

    with torch.autocast(run.method.device.type, dtype=torch.bfloat16, enabled=bf16):
        return best_of(run, texts, k=1, seed=seed, settings=run.resolve_settings()).x.float().cpu()


def suite_images(run, *, bf16: bool = False):
    """(geneval report, images on the CPU) of `run` on the builtin suite, at the run's own sampling."""
    images = []

    def generate(texts: list[str], seed: int) -> torch.Tensor:
        images.append(draw(run, texts, seed, bf16=bf16))
        return images[-1]

    report = geneval(generate, builtin_suite(), n_per_prompt=N_PER_PROMPT, seed=SEED)
    return report, images[0]


def summary(row: dict) -> dict:
    """overall, each category's accuracy, held-out gap, extra-object rate and seconds of a report row."""
    out = {k: round(float(row[k]), 4) for k in ("overall", "heldout_gap", "extra_rate", "generate_seconds")}
    return out | {"categories": {c: round(v["accuracy"], 4) for c, v in row["categories"].items()}}


def prepare(args) -> None:
    """The suite's captions through the packaged MiniLM (the table), and the CPU's row of the suite."""
    from genlab.methods.latent import text_encoder
    from genlab.runs import load_run

    texts = suite_texts()
    real = text_encoder("minilm")
    emb = real.encode(texts)
    table = {}
    for i in range(len(texts)):
        table[f"tokens.{i}"], table[f"pooled.{i}"] = emb.tokens[i, emb.mask[i]].contiguous(), emb.pooled[i]
    meta = {"texts": texts, "name": real.name, "max_length": real.max_length}
    table["meta"] = torch.frombuffer(bytearray(json.dumps(meta).encode()), dtype=torch.uint8)
    torch.set_num_threads(args.threads)
    run = load_run(SHIPPED)
    start = time.perf_counter()
    report, images = suite_images(run)
    cpu = {"row": summary(report["rows"]["model"]), "seconds": round(time.perf_counter() - start, 1)}
    # the table must give the encoder's images exactly: a few prompts drawn by each (the same batch, so the same noise)
    few = [p.text for p in builtin_suite().prompts[::19]]
    by_encoder = draw(run, few)
    use_table(table)
    diff = float((draw(load_run(SHIPPED), few) - by_encoder).abs().max())
    if diff != 0.0:
        sys.exit(f"the text table does not reproduce the encoder's images (max abs {diff}); nothing written")
    with atomic_path(Path(args.texts)) as tmp:
        save_file(table, str(tmp))
    with atomic_path(Path(args.texts).with_suffix(".cpu.safetensors")) as tmp:
        save_file({"images": images[:COMPARED].contiguous()}, str(tmp))
    atomic_write_text(Path(args.texts).with_suffix(".cpu.json"), json.dumps({**cpu, "threads": args.threads}) + "\n")
    print(f"table of {len(texts)} texts; CPU suite overall {cpu['row']['overall']:.3f} in {cpu['seconds']} s")


# ----------------------------------------------------------------------------- the checks


def kind_losses(kind: str, device: torch.device, bf16: bool) -> list[float]:
    """Build the tiny `kind` method of tests/test_devices.py on `device`, run its loss, sampling and likelihood there
    (under bf16 autocast if asked) and return every loss it computed."""
    import pytest
    from tests.t2i_fixtures import use_hash_encoder
    from tests.test_devices import run_everything, tiny_method

    losses = []
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        use_hash_encoder(mp)
        method, batch, texts = tiny_method(Path(tmp), kind)
        method = method.to(device)
        loss = method.loss

        def recording(*a, **k):
            value = loss(*a, **k)
            losses.append(float(value[0].detach().float()))
            return value

        method.loss = recording
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            run_everything(method, {k: v.to(device) for k, v in batch.items()}, texts)
    return losses


def check_methods(device: torch.device) -> dict:
    from tests.test_devices import KINDS

    out = {}
    for kind in KINDS:
        for bf16 in (False, True):
            name = kind + (" bf16" if bf16 else "")
            start = time.perf_counter()
            try:
                losses = kind_losses(kind, device, bf16)
                finite = all(math.isfinite(v) for v in losses)
                out[name] = {"ok": finite, "losses": [round(v, 4) for v in losses]}
                if not finite:
                    out[name]["error"] = "a loss is not finite"
            except Exception as e:  # noqa: BLE001  (every kind is reported, whatever fails)
                out[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"[:500]}
            out[name]["seconds"] = round(time.perf_counter() - start, 2)
            print(name, out[name], flush=True)
    return out


def check_trainer(steps: int) -> dict:
    from genlab.config import load_recipe
    from genlab.train import train

    out = {}
    for precision in ("no", "bf16"):
        with tempfile.TemporaryDirectory() as tmp:
            recipe = load_recipe(
                ROOT / "recipes/digits-flow.yaml",
                overrides=[
                    f"train.steps={steps}",
                    "train.log_every=25",
                    "train.sample_every=0",
                    f"train.checkpoint_every={steps}",
                    "train.warmup_steps=25",
                ]
                + (["train.mixed_precision=bf16"] if precision == "bf16" else []),
            )
            start = time.perf_counter()
            train(recipe, Path(tmp) / "run", progress=False)
            rows = [json.loads(r) for r in (Path(tmp) / "run/metrics.jsonl").read_text().splitlines() if r.strip()]
            losses = [r["loss"] for r in rows if "loss" in r]
            out[precision] = {
                "steps": steps,
                "first_loss": round(losses[0], 4),
                "last_loss": round(losses[-1], 4),
                "loss_fell": losses[-1] < losses[0],
                "seconds": round(time.perf_counter() - start, 1),
            }
            print("trainer", precision, out[precision], flush=True)
    return out


def check_t2i(device: torch.device, texts: Path) -> dict:
    from genlab.runs import load_run

    use_table(load_file(str(texts)))
    run = load_run(SHIPPED, device=device)
    cpu_images = load_file(str(texts.with_suffix(".cpu.safetensors")))["images"]
    prompts = [p for p in builtin_suite().prompts for _ in range(N_PER_PROMPT)][:COMPARED]
    out = {"cpu": json.loads(texts.with_suffix(".cpu.json").read_text())}
    for bf16 in (False, True):
        report, images = suite_images(run, bf16=bf16)
        row = {"row": summary(report["rows"]["model"])}
        diff = (images[:COMPARED] - cpu_images).abs()
        same = [a == b for a, b in zip(_verdicts(images[:COMPARED], prompts), _verdicts(cpu_images, prompts))]
        row["against_cpu_images"] = {
            "images": COMPARED,
            "max_abs": round(float(diff.max()), 4),
            "mean_abs": round(float(diff.mean()), 5),
            "same_verdict": round(sum(same) / len(same), 4),
        }
        out["bf16" if bf16 else "fp32"] = row
        print("t2i", "bf16" if bf16 else "fp32", row, flush=True)
    return out


def _verdicts(images: torch.Tensor, prompts) -> list[bool]:
    """The checker's verdict (right in every attribute) on each image."""
    from genlab.metrics.geneval import score_image, tensor_to_uint8

    return [score_image(im, p)["correct"] for im, p in zip(tensor_to_uint8(images.float().clamp(-1, 1)), prompts)]


def check(args) -> None:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check.py check: no CUDA device here; run it on a GPU machine (or --device cpu to try it)")
    report = {
        "machine": {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__,
            "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d"),
        },
        "methods": check_methods(device),
        "trainer": check_trainer(args.train_steps),
        "t2i": check_t2i(device, Path(args.texts)),
    }
    report["all_ok"] = all(v["ok"] for v in report["methods"].values()) and all(
        v["loss_fell"] for v in report["trainer"].values()
    )
    atomic_write_text(Path(args.out), json.dumps(report, indent=1) + "\n")
    print("all ok" if report["all_ok"] else "FAILURES: see " + args.out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="the suite's text table and the CPU row (any machine with MiniLM)")
    p.add_argument("--texts", default=str(TEXTS))
    p.add_argument("--threads", type=int, default=2)
    c = sub.add_parser("check", help="the checks on a CUDA machine")
    c.add_argument("--texts", default=str(TEXTS))
    c.add_argument("--device", default="cuda")
    c.add_argument("--train-steps", type=int, default=300)
    c.add_argument("--out", default="benchmarks/results/gpu_check.json")
    args = ap.parse_args()
    prepare(args) if args.cmd == "prepare" else check(args)


if __name__ == "__main__":
    main()
