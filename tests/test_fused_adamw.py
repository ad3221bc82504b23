"""The trainer's AdamW runs torch's fused kernel where torch has one: the same update as the per-tensor loop (to
fp32 rounding), refused for what the kernel does not take, and kept when a run resumes from a checkpoint saved by
either kernel."""

import pytest
import torch

from genlab.config import load_recipe
from genlab.train import Trainer, adamw

FUSED_ON_CPU = "cpu" in __import__("torch.utils._foreach_utils", fromlist=["x"])._get_fused_kernels_supported_devices()
needs_cpu_fused = pytest.mark.skipif(not FUSED_ON_CPU, reason="this torch has no fused AdamW on CPU")


def _params(dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(33, 17), (17,), (5, 3, 2, 2), (1,)]
    return [torch.nn.Parameter(torch.randn(s, generator=g, dtype=dtype)) for s in shapes]


@needs_cpu_fused
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_adamw_equals_the_per_tensor_loop(dtype):
    ours, ref = _params(dtype), _params(dtype)
    kw = dict(lr=3e-2, betas=(0.9, 0.99), weight_decay=0.1)
    fused, loop = adamw(ours, **kw), torch.optim.AdamW(ref, foreach=False, **kw)
    assert fused.param_groups[0]["fused"] is True and not loop.param_groups[0]["fused"]
    g = torch.Generator().manual_seed(1)
    for step in range(20):
        for a, b in zip(ours, ref):
            a.grad = torch.randn(a.shape, generator=g, dtype=dtype)
            b.grad = a.grad.clone()
        if step % 3 == 0:
            ours[1].grad = ref[1].grad = None  # a parameter without a gradient this step is skipped by both
        fused.step()
        loop.step()
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    for a, b, start in zip(ours, ref, _params(dtype)):
        assert not torch.equal(a, start)  # the update did move the weights
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    for sa, sb in zip(fused.state.values(), loop.state.values()):
        torch.testing.assert_close(sa["exp_avg_sq"], sb["exp_avg_sq"], rtol=tol, atol=tol)


def test_adamw_falls_back_to_the_loop():
    assert not adamw(_params(), lr=1e-3, fused=False).param_groups[0]["fused"]  # FSDP's sharded parameters
    assert not adamw(_params(torch.bfloat16), lr=1e-3).param_groups[0]["fused"]  # low-precision weights
    plain = [p.detach().clone().requires_grad_() for p in _params()]  # not nn.Parameter (a tensor subclass path)
    assert not adamw(plain, lr=1e-3).param_groups[0]["fused"]


@needs_cpu_fused
def test_trainer_uses_fused_adamw_and_resumes_a_loop_checkpoint_on_it(tmp_path, toy_recipe):
    recipe = load_recipe(toy_recipe)
    run = tmp_path / "run"
    old = Trainer(recipe, run)
    assert all(o.param_groups[0]["fused"] is True for o in old.optimizers.values())
    # a checkpoint written by the per-tensor loop (what the trainer used before)
    cfg = recipe.train
    old.optimizers = {
        n: torch.optim.AdamW(p, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, foreach=False)
        for n, p in old.groups.items()
    }
    run.mkdir()
    for _ in range(3):
        old.train_step()
    old.save()
    new = Trainer(recipe, tmp_path / "other")
    new.resume_from(run / "checkpoint")
    opt = new.optimizers["model"]
    assert opt.param_groups[0]["fused"] is True and new.step == 3
    for p, q in zip(new.groups["model"], old.groups["model"]):
        torch.testing.assert_close(opt.state[p]["exp_avg"], old.optimizers["model"].state[q]["exp_avg"])
    new.train_step()  # the fused kernel takes the loaded state (its step counter moved to the parameters' device)
    assert int(opt.state[new.groups["model"][0]]["step"]) == 4
