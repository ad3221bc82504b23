"""train.parallel: fsdp (FSDP2 over 2 gloo CPU processes) and train.activation_checkpointing.

One 2-process job (`accelerate launch --multi_gpu`, tests/fsdp_worker.py) trains a tiny DiT, a tiny U-Net (with
activation checkpointing) and a guidance-distillation student of a U-Net teacher (a frozen part) with FSDP, 2
processes x 2 micro-batches; the 1-process references (the plain path, 4 micro-batches) run here. The promise
checked: the consolidated checkpoint equals the 1-process weights within the tolerances of test_distributed
(1e-5 of a tensor's largest value), loads and samples in one process exactly like the sharded run's samples.png,
and resumes on 1 process like an uninterrupted 1-process run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from genlab.config import dump_recipe, load_recipe
from genlab.errors import GenlabError
from genlab.train import Trainer, write_sample_grid
from tests.conftest import ROOT, write_recipe
from tests.test_distributed import _env, assert_same_state, inert_elements, launcher

TRAIN = {
    "steps": 3,
    "batch_size": 16,
    "warmup_steps": 1,
    "schedule": "constant",  # the learning rate does not depend on train.steps: a 3-step run resumes into a 5-step one
    "lr": 3e-3,
    "log_every": 1,
    "checkpoint_every": 3,
    "grid_columns": 2,
    "ema_decay": 0.9,
    "parallel": "fsdp",
}
SAMPLE = {"sampler": "euler", "steps": 2, "guidance_scale": 1.0}
DIT = {"kind": "dit", "size": "micro", "width": 32, "heads": 2}
UNET = {"kind": "unet", "channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1, "attention_resolutions": [4]}


def _tree(name: str, model: dict, **train) -> dict:
    return {
        "name": f"fsdp-{name}",
        "seed": 0,
        "data": {"kind": "digits"},
        "model": model,
        "method": {"kind": "flow", "label_dropout": 0.1},
        "train": {**TRAIN, **train},
        "sample": SAMPLE,
    }


@pytest.fixture(scope="module")
def sharded(tmp_path_factory, digits_run) -> tuple[dict[str, Path], Path]:
    """(recipe files, the 2-process job's output folder)."""
    from genlab.distill import student_recipe

    tmp = tmp_path_factory.mktemp("fsdp")
    student = student_recipe(digits_run, "guidance_distill", ["--train.parallel=fsdp", "--sample.steps=2"])
    student.train.steps, student.train.batch_size, student.train.checkpoint_every = 3, 16, 3
    recipes = {
        "dit": write_recipe(tmp / "dit.yaml", _tree("dit", DIT)),
        "unet": write_recipe(tmp / "unet.yaml", _tree("unet", UNET, activation_checkpointing=True)),
        "dit-bf16": write_recipe(tmp / "dit-bf16.yaml", _tree("dit", DIT, mixed_precision="bf16")),
        "student": tmp / "student.yaml",
    }
    recipes["student"].write_text(dump_recipe(student))
    spec = tmp / "spec.json"
    spec.write_text(json.dumps({k: str(v) for k, v in recipes.items()} | {"_resume": "dit"}))
    cmd = [*launcher(), str(ROOT / "tests" / "fsdp_worker.py"), str(spec), str(tmp / "two"), "--train.grad_accum=2"]
    done = subprocess.run(cmd, env=_env(), timeout=300, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return recipes, tmp / "two"


def one_process(recipe: Path, steps: int, out: Path, *overrides: str) -> tuple[list[dict], dict, dict]:
    """The plain 1-process path with 4 micro-batches: (weights after each step, inert elements, final EMA)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the launched workers: the same kernels
    try:
        trainer = Trainer(load_recipe(recipe, ["--train.grad_accum=4", "--train.parallel=ddp", *overrides]), out)
        states = []
        for _ in range(steps):
            trainer.train_step()
            states.append({k: v.detach().clone() for k, v in trainer.method.state_dict().items()})
    finally:
        torch.set_num_threads(threads)
    return states, inert_elements(trainer), trainer.ema.state_dict()


def test_two_fsdp_processes_match_one_process(sharded, tmp_path):
    """DiT, U-Net (+ activation checkpointing) and a student with a frozen teacher: the consolidated checkpoint of 2
    processes x 2 micro-batches is the 1-process weights; each rank held half of the trained elements, and the
    frozen teacher was neither sharded nor given gradients or optimizer state."""
    recipes, two = sharded
    for name, recipe in recipes.items():
        if name == "dit-bf16":
            continue
        states, inert, ema = one_process(recipe, 3, tmp_path / name)
        ckpt = two / name / "checkpoint"
        assert_same_state(load_file(str(ckpt / "model.safetensors")), states[-1], name, skip=inert)
        assert_same_state(load_file(str(ckpt / "ema.safetensors")), ema, f"{name} EMA", skip=inert)
        ranks = [json.loads((two / f"{name}-rank{r}.json").read_text()) for r in (0, 1)]
        for f in ranks:
            assert f["sharded"] == f["trained"] > 0 and f["ema_sharded"] >= f["trained"], name
            assert 0.4 < f["local_elements"] / f["elements"] < 0.6, name  # about half of every tensor on each rank
            assert f["master_dtypes"] == ["torch.float32"]
            assert not f["frozen_with_grad"] and not f["frozen_in_optimizer"] and not f["frozen_sharded"], name
        assert ranks[0]["local_elements"] + ranks[1]["local_elements"] == ranks[0]["elements"]
    student = json.loads((two / "student-rank0.json").read_text())
    assert student["frozen"] > 0  # the teacher is there


def test_bf16_keeps_fp32_master_weights(sharded):
    """train.mixed_precision bf16 under fsdp: fp32 master weights, AdamW state and checkpoint, and the losses of the
    fp32 run within 1e-3 (the time embedding is not rounded to bf16)."""
    _, two = sharded
    for r in (0, 1):
        assert json.loads((two / f"dit-bf16-rank{r}.json").read_text())["master_dtypes"] == ["torch.float32"]
    for file in ("model.safetensors", "ema.safetensors", "state/optimizer.safetensors"):
        assert {v.dtype for v in load_file(str(two / "dit-bf16" / "checkpoint" / file)).values()} == {torch.float32}
    losses = [[json.loads(line)["loss"] for line in (two / k / "metrics.jsonl").read_text().splitlines()] for k in
              ("dit", "dit-bf16")]  # fmt: skip
    assert len(losses[0]) == len(losses[1]) == 3
    assert all(abs(a - b) <= 1e-3 * abs(a) for a, b in zip(*losses)), losses


def test_consolidated_checkpoint_samples_like_the_sharded_run(sharded, tmp_path):
    """`genlab sample`'s loader reads the sharded run's checkpoint in one process and draws the same grid."""
    from genlab.data import build_dataset
    from genlab.runs import load_run

    _, two = sharded
    run = load_run(two / "dit")
    path = tmp_path / "again.png"
    write_sample_grid(run.method, run.recipe, build_dataset(run.recipe.data), path)
    got, want = (np.asarray(Image.open(p)) for p in (path, two / "dit" / "samples.png"))
    assert got.shape == want.shape and np.array_equal(got, want)


def test_resume_a_two_process_checkpoint_on_one_process(sharded, tmp_path):
    """The 2-process FSDP checkpoint at step 3 (whole weights, EMA, AdamW state) resumed by one process (fsdp
    without a process group, i.e. the plain path) for 2 more steps equals 5 uninterrupted 1-process steps."""
    from genlab.checkpoint import find_checkpoint

    recipes, two = sharded
    run = tmp_path / "run"
    shutil.copytree(two / "dit", run)
    states, inert, _ = one_process(recipes["dit"], 5, tmp_path / "ref", "--train.steps=5")
    trainer = Trainer(load_recipe(recipes["dit"], ["--train.grad_accum=4", "--train.steps=5"]), run)
    trainer.resume_from(find_checkpoint(run))
    assert trainer.step == 3 and trainer.sharding is None
    assert_same_state(trainer.method.state_dict(), states[2], "dit at step 3", skip=inert)
    for _ in range(2):
        trainer.train_step()
    assert_same_state(trainer.method.state_dict(), states[4], "dit resumed", skip=inert)


def test_resume_on_two_processes_is_bit_identical(sharded, tmp_path):
    """The 2-process checkpoint at step 3, re-sharded and resumed on 2 processes to step 5, is bit for bit the
    uninterrupted 2-process run (weights, EMA, AdamW state), and matches 5 one-process steps."""
    recipes, two = sharded
    resumed, long = (two / f"dit-{k}" / "checkpoint" for k in ("resumed", "long"))
    for file in ("model.safetensors", "ema.safetensors", "state/optimizer.safetensors"):
        got, want = load_file(str(resumed / file)), load_file(str(long / file))
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want), file
    assert json.loads((resumed / "config.json").read_text())["step"] == 5
    states, inert, _ = one_process(recipes["dit"], 5, tmp_path / "ref", "--train.steps=5")
    assert_same_state(load_file(str(resumed / "model.safetensors")), states[4], "dit resumed on 2", skip=inert)


def test_activation_checkpointing_gives_the_same_loss_and_gradients():
    """Per-block checkpointing of the DiT and the U-Net (with dropout): identical loss and gradients, and each block
    does run twice (forward, then again in the backward pass)."""
    from genlab.models import build_model
    from genlab.models.dit import DiTConfig
    from genlab.models.unet import UNetConfig
    from genlab.parallel import enable_activation_checkpointing, outer_blocks

    nets = [
        DiTConfig(in_channels=1, image_size=8, num_classes=10, **{k: v for k, v in DIT.items() if k != "kind"}),
        UNetConfig(in_channels=1, image_size=8, num_classes=10, channels=8, channel_mults=(1, 2), dropout=0.3),
    ]
    x, t, label = torch.randn(4, 1, 8, 8), torch.rand(4), torch.tensor([0, 3, 10, 9])
    for cfg in nets:
        torch.manual_seed(0)
        net = build_model(cfg)
        for p in net.parameters():  # the zero-initialised output layers would give zero gradients elsewhere
            torch.nn.init.normal_(p, std=0.1)
        calls = []
        for block in outer_blocks(net):
            block.register_forward_pre_hook(lambda *_, calls=calls: calls.append(1))
        results = []
        for checkpointing in (False, True):
            if checkpointing:
                enable_activation_checkpointing(net)
            net.zero_grad()
            torch.manual_seed(1)  # dropout
            loss = net(x, t, label).square().mean()
            loss.backward()
            results.append((loss.detach(), {n: p.grad.clone() for n, p in net.named_parameters()}))
        blocks = len(outer_blocks(net))
        assert len(calls) == blocks * 3, cfg.kind  # once without, twice with checkpointing
        assert torch.equal(results[0][0], results[1][0]), cfg.kind
        for n, g in results[0][1].items():
            assert torch.allclose(results[1][1][n], g, rtol=0, atol=1e-7), f"{cfg.kind}: {n}"
        assert any(g.abs().max() > 0 for g in results[0][1].values())


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        (
            {"model": {"kind": "none"}, "method": {"kind": "gmm", "components": 2}},
            "method.kind gmm is closed-form",
        ),
        ({"model": {"kind": "dcgan", "latent_dim": 8, "channels": 8}, "method": {"kind": "gan"}}, "spectral"),
        ({"model": UNET, "method": {"kind": "flow"}, "train": {"eval_every": 1, "keep_best": True}}, "keep_best"),
        (
            {
                "model": {"kind": "conv_vae", "channels": 8, "channel_mults": [1], "latent_dim": 4},
                "method": {"kind": "vae"},
            },
            "checkpointable",
        ),
    ],
)
def test_unsupported_combinations_are_refused(tmp_path, tree, message):
    """fsdp refuses closed-form (EM) and spectral-normalised methods and keep_best, even in one process (a recipe does
    not pass on a laptop and fail on a cluster); activation checkpointing needs a DiT or U-Net."""
    full = {"name": "x", "data": {"kind": "digits"}, **tree}
    full["train"] = {"parallel": "fsdp", **({"activation_checkpointing": True} if message == "checkpointable" else {})}
    full["train"] |= tree.get("train", {})
    with pytest.raises(GenlabError, match=message):
        Trainer(load_recipe(write_recipe(tmp_path / "r.yaml", full)), tmp_path / "run")
