import math

import pytest
import torch

from genlab.errors import GenlabError
from genlab.models.vq import Quantizer, codebook_stats
from tests.ar_helpers import assert_resume_identical, assert_round_trip, build, losses_fall, tiny_recipe

MODEL = {"kind": "vq", "channels": 16, "downsample": 1, "num_res_blocks": 1, "codebook_size": 16, "code_dim": 4}
METHOD = {"kind": "vqvae"}


def test_nearest_code_is_the_brute_force_argmin():
    torch.manual_seed(0)
    q = Quantizer(32, 5)
    z = torch.randn(100, 5)
    assert torch.equal(q.nearest(z), torch.cdist(z, q.codebook).argmin(1))


@pytest.mark.parametrize("ema", [True, False])
def test_straight_through_gradient_is_the_identity(ema):
    """d(f(z_q))/dz = f'(z_q): the decoder's gradient passes the quantizer unchanged (plus β·commitment)."""
    torch.manual_seed(0)
    q = Quantizer(8, 3, ema=ema).eval()  # no codebook update between choosing and comparing codes
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    z_q, codes, stats = q(z)
    assert torch.allclose(z_q.detach(), q.codebook[codes].permute(0, 3, 1, 2).detach(), atol=1e-6)
    w = torch.randn_like(z)
    (grad,) = torch.autograd.grad((z_q * w).sum(), z)
    assert torch.equal(grad, w)
    if not ema:  # the codebook loss pulls the chosen codes toward sg(z); the commitment pulls z toward sg(e_k)
        (g_code,) = torch.autograd.grad(stats["codebook_loss"], q.codebook)
        assert g_code[codes.unique()].abs().sum() > 0


def test_encoder_receives_the_reconstruction_gradient(tmp_path):
    """With β = 0 and EMA codebook, the only path from the loss to the encoder is the straight-through one."""
    method, data = build(tiny_recipe(tmp_path, MODEL, {**METHOD, "beta": 0.0}))
    loss, _ = method.loss({"x": data.x[:8]})
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in method.model.encoder.parameters())


def test_codebook_usage_and_perplexity():
    stats = codebook_stats(torch.tensor([[0, 0], [1, 3]]), 8)
    assert stats["codebook_usage"].item() == pytest.approx(3 / 8)
    entropy = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert stats["perplexity"].item() == pytest.approx(math.exp(entropy))
    assert codebook_stats(torch.arange(8), 8)["perplexity"].item() == pytest.approx(8.0)


def test_ema_update_formula():
    q = Quantizer(3, 2, ema=True, decay=0.9, eps=1e-5, restart_threshold=0.0)
    q.cluster_size.copy_(torch.tensor([2.0, 1.0, 4.0]))
    q.embed_sum.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0], [4.0, 4.0]]))
    z = torch.tensor([[1.0, 1.0], [3.0, 1.0], [0.0, 2.0]])
    codes = torch.tensor([0, 0, 1])
    q.gather(z[:2], codes[:2])  # two micro-batches: one update from their summed statistics
    q.gather(z[2:], codes[2:])
    q.apply_statistics(q.take_pending())
    assert q.pending == {}
    n_new = 0.9 * torch.tensor([2.0, 1.0, 4.0]) + 0.1 * torch.tensor([2.0, 1.0, 0.0])
    m_new = 0.9 * torch.tensor([[2.0, 0.0], [0.0, 1.0], [4.0, 4.0]]) + 0.1 * torch.tensor(
        [[4.0, 2.0], [0.0, 2.0], [0.0, 0.0]]
    )
    total = n_new.sum()
    smoothed = (n_new + 1e-5) / (total + 3 * 1e-5) * total
    assert torch.allclose(q.cluster_size, n_new) and torch.allclose(q.embed_sum, m_new)
    assert torch.allclose(q.codebook, m_new / smoothed[:, None])


def test_training_forward_only_gathers_statistics():
    """The codebook moves once per optimizer step (the trainer's update), never inside a forward."""
    torch.manual_seed(0)
    q = Quantizer(4, 2).train()
    before = q.codebook.clone()
    q(torch.randn(2, 2, 3, 3))
    assert torch.equal(q.codebook, before) and q.pending["count"].sum() == 18


def test_dead_codes_split_the_clusters_of_largest_error():
    """Dead codes restart at mean + std * r of the clusters with the largest squared error, from global sums."""
    q = Quantizer(4, 2, ema=False, restart_threshold=0.5, usage_decay=0.0)
    q.codebook.data.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0], [100.0, 100.0], [200.0, 200.0]]))
    tight = torch.tensor([[0.0, 0.1], [0.0, -0.1]])  # code 0: small error
    wide = torch.tensor([[7.0, 10.0], [13.0, 10.0], [10.0, 10.0]])  # code 1: large error
    z = torch.cat([tight, wide])
    q.gather(z, q.nearest(z))
    assert q.apply_statistics(q.take_pending()) == 2  # codes 2 and 3 were never used
    mean, std = wide.mean(0), wide.var(0, unbiased=False).sqrt()
    for code in (2, 3):  # the wide cluster is split first, then (its error halved: 9 > 0.02) again
        r = torch.randn(2, generator=torch.Generator().manual_seed(code))
        assert torch.allclose(q.codebook[code], mean + std * r)
    assert torch.equal(q.usage[2:], torch.ones(2)) and torch.equal(q.codebook[0], torch.zeros(2))


def test_bf16_training_keeps_the_quantizer_in_fp32(tmp_path):
    """Mixed precision: a few bf16 steps train, codebook buffers stay fp32, distances are fp32 (regression: the
    bf16 counts were lerp_'ed into the fp32 EMA buffers and crashed)."""
    from accelerate.state import AcceleratorState

    from genlab.train import Trainer

    try:
        trainer = Trainer(tiny_recipe(tmp_path, MODEL, METHOD, mixed_precision="bf16"), tmp_path / "bf16")
        losses = [trainer.train_step()["loss"] for _ in range(3)]
    finally:
        AcceleratorState._reset_state()  # later trainers in this process use their own precision
    q = trainer.method.model.quantizer
    assert all(math.isfinite(v) for v in losses)
    assert {t.dtype for t in (q.codebook, q.cluster_size, q.embed_sum, q.usage)} == {torch.float32}
    q.codebook.data.zero_()
    q.codebook.data[0, 0], q.codebook.data[1, 0] = 1.0, 1.0 + 2**-8  # one bf16 value apart (spacing 2^-7 at 1)
    z = torch.tensor([[1.0 + 3 * 2**-10, 0.0, 0.0, 0.0]])  # nearer e_1 in fp32; bf16 rounds z, e_1 to 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert q.nearest(z).item() == 1


def test_tokens_round_trip_shapes_and_sample_refuses(tmp_path):
    method, data = build(tiny_recipe(tmp_path, MODEL, METHOD))
    method.eval()
    x = data.x[:5]
    tokens = method.encode_tokens(x)
    assert tokens.shape == (5, 4, 4) and tokens.dtype == torch.int64 and 0 <= tokens.min() <= tokens.max() < 16
    images = method.decode_tokens(tokens)
    assert images.shape == (5, 1, 8, 8) and images.min() >= -1 and images.max() <= 1
    assert torch.equal(method.reconstruct(x), images)
    with pytest.raises(GenlabError, match="token_prior"):
        method.sample(4)


def test_loss_falls_round_trip_and_resume(tmp_path):
    first, last = losses_fall(tiny_recipe(tmp_path, MODEL, METHOD, lr=0.01), tmp_path)
    assert last < 0.85 * first
    recipe = tiny_recipe(tmp_path, MODEL, METHOD)
    x = build(recipe)[1].x[:6]
    outputs = lambda m: torch.cat([m.reconstruct(x).flatten(), m.encode_tokens(x).float().flatten()])  # noqa: E731
    assert_round_trip(recipe, tmp_path, outputs)
    assert_resume_identical(recipe, tmp_path)  # EMA codebook buffers and restarts included
