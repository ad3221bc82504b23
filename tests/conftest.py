import os
from pathlib import Path

import pytest
import yaml

# 2 threads on the 2-core CI machine; under pytest-xdist (pytest -n 2) 1 thread per worker, so that the workers do
# not oversubscribe the cores (tests that need a given thread count set it in their subprocesses' env)
os.environ.setdefault("OMP_NUM_THREADS", "1" if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1 else "2")
ROOT = Path(__file__).resolve().parents[1]

TINY_TOY = {
    "name": "tiny-toy",
    "seed": 0,
    "data": {"kind": "toy2d", "name": "moons", "n": 2000},
    "model": {"kind": "mlp", "hidden": 32, "depth": 1},
    "method": {"kind": "flow"},
    "train": {"steps": 12, "batch_size": 64, "warmup_steps": 2, "log_every": 3, "checkpoint_every": 6, "lr": 1e-3},
    "sample": {"sampler": "euler", "steps": 4},
}
TINY_DIGITS = {
    "name": "tiny-digits",
    "seed": 0,
    "data": {"kind": "digits"},
    "model": {"kind": "unet", "channels": 16, "channel_mults": [1, 2], "num_res_blocks": 1},
    "method": {"kind": "flow", "label_dropout": 0.2},
    "train": {"steps": 6, "batch_size": 32, "warmup_steps": 2, "log_every": 2, "checkpoint_every": 3},
    "sample": {"sampler": "heun", "steps": 3, "guidance_scale": 2.0},
}


def write_recipe(path: Path, tree: dict) -> Path:
    path.write_text(yaml.safe_dump(tree))
    return path


def tiny_text_tree(kind: str, corpus: Path, *, steps: int) -> dict:
    """A recipe tree of a tiny language model (ar_lm or mdlm) on the text file `corpus` (40 merges, 16 tokens)."""
    return {
        "name": f"tiny-{kind}",
        "seed": 0,
        "data": {"kind": "text", "source": str(corpus), "seq_len": 16, "merges": 40},
        "model": {"kind": "lm", "dim": 32, "depth": 2, "heads": 2},
        "method": {"kind": kind},
        "train": {"steps": steps, "batch_size": 16, "warmup_steps": 2, "lr": 3e-3, "ema_decay": 0.5},
    }


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """A tiny trained class-conditional digits run, shared by the CLI and eval tests (copy before changing)."""
    from genlab.cli import main

    tmp = tmp_path_factory.mktemp("digits")
    recipe = write_recipe(tmp / "digits.yaml", TINY_DIGITS)
    assert main(["train", str(recipe), "--out", str(tmp / "run"), "--no-progress"]) == 0
    return tmp / "run"


@pytest.fixture(scope="session")
def gan_run(tmp_path_factory):
    """A tiny class-conditional DCGAN run trained for two steps (copy before changing)."""
    from genlab.cli import main
    from tests.methods.test_gan import TINY_GAN

    tmp = tmp_path_factory.mktemp("gan")
    recipe = write_recipe(tmp / "gan.yaml", {**TINY_GAN, "train": {**TINY_GAN["train"], "steps": 2}})
    assert main(["train", str(recipe), "--out", str(tmp / "run"), "--no-progress"]) == 0
    return tmp / "run"


@pytest.fixture
def toy_recipe(tmp_path):
    return write_recipe(tmp_path / "toy.yaml", TINY_TOY)


@pytest.fixture
def digits_recipe(tmp_path):
    return write_recipe(tmp_path / "digits.yaml", TINY_DIGITS)
