"""DiT: shapes, adaLN-Zero identity at init, cross-attention and MM-DiT ignore padded text tokens."""

from types import SimpleNamespace

import pytest
import torch

from genlab.errors import GenlabError
from genlab.models.dit import DiT, DiTBlock, DiTConfig, MMDiTBlock, sincos_2d

TEXT_DIM = 12


def text(b: int, length: int, *, real: list[int], seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(length)[None] < torch.tensor(real)[:, None]  # (B, L): the first real[i] tokens
    return SimpleNamespace(
        tokens=torch.randn(b, length, TEXT_DIM, generator=g), mask=mask, pooled=torch.randn(b, TEXT_DIM, generator=g)
    )


def model(mode: str = "cross", **kw) -> DiT:
    cfg = DiTConfig(in_channels=4, image_size=8, num_classes=0, size="micro", text_dim=TEXT_DIM, text_mode=mode, **kw)
    torch.manual_seed(0)
    return DiT(cfg)


def randomize_(m: torch.nn.Module) -> torch.nn.Module:
    """Replace the zero initialisation so every path through the network is active."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m


@pytest.mark.parametrize("mode", ["cross", "mmdit"])
def test_text_dit_shapes_and_zero_output_at_init(mode):
    m = model(mode)
    x, t = torch.randn(3, 4, 8, 8), torch.rand(3)
    out = m(x, t, text(3, 5, real=[5, 2, 1]))
    assert out.shape == x.shape
    assert torch.equal(out, torch.zeros_like(out))  # zeroed output layer: a fresh DiT predicts 0
    assert any(isinstance(b, MMDiTBlock if mode == "mmdit" else DiTBlock) for b in m.blocks)


def test_class_conditional_dit_shapes_and_patch_sizes():
    for patch, size in [(1, 8), (2, 8), (4, 16)]:
        m = randomize_(DiT(DiTConfig(in_channels=1, image_size=size, num_classes=10, size="micro", patch_size=patch)))
        x = torch.randn(2, 1, size, size)
        out = m(x, torch.rand(2), torch.tensor([3, 10]))  # 10 = the null class
        assert out.shape == x.shape
        assert not torch.allclose(out[0], out[1])


def test_adaln_zero_block_is_identity_at_init():
    m = model("cross")
    block = m.blocks[0]
    h, c = torch.randn(2, 16, 64), torch.randn(2, 64)
    ctx, mask = torch.randn(2, 5, 64), torch.tensor([[True] * 5, [True, False, False, False, False]])
    assert torch.equal(block(h, c, ctx, mask), h)
    mm = model("mmdit").blocks[0]
    h2, ctx2 = mm(h, c, ctx, mask)
    assert torch.equal(h2, h) and torch.equal(ctx2, ctx)


@pytest.mark.parametrize("mode", ["cross", "mmdit"])
def test_padded_text_tokens_change_nothing(mode):
    m = randomize_(model(mode))
    x, t = torch.randn(2, 4, 8, 8), torch.rand(2)
    a = text(2, 6, real=[6, 3])
    b = text(2, 6, real=[6, 3], seed=5)  # different values everywhere ...
    b.tokens[:, :3], b.tokens[0], b.pooled = a.tokens[:, :3], a.tokens[0], a.pooled  # ... except real tokens
    out_a, out_b = m(x, t, a), m(x, t, b)
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=1e-5)
    c = text(2, 6, real=[6, 3], seed=5)
    c.pooled = a.pooled
    c.tokens[1, 3:] = a.tokens[1, 3:]  # now a real token of sample 1 differs: its output must change
    assert not torch.allclose(m(x, t, c)[1], out_a[1], atol=1e-4)
    assert m(x, t, c).shape == x.shape


def test_text_gradients_reach_every_parameter():
    for mode in ("cross", "mmdit"):
        m = randomize_(model(mode))
        m(torch.randn(2, 4, 8, 8), torch.rand(2), text(2, 4, real=[4, 2])).pow(2).mean().backward()
        missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        # the text stream's last MLP/proj feed nothing in the final MM-DiT block, as in SD3's last block
        assert all(".txt." in n and n.startswith(f"blocks.{len(m.blocks) - 1}.") for n in missing), missing


def test_errors_and_positions():
    with pytest.raises(GenlabError, match="text-conditioned"):
        model("cross")(torch.randn(1, 4, 8, 8), torch.rand(1))
    with pytest.raises(GenlabError, match="preset"):
        model("cross", width=None).__class__(DiTConfig(in_channels=4, image_size=8, size="XXL"))
    with pytest.raises(GenlabError, match="text_mode"):
        model("joint")
    pos = sincos_2d(4, 32)[0]
    assert pos.shape == (16, 32)
    assert torch.cdist(pos, pos).add(torch.eye(16)).min() > 0  # every position has its own code


@pytest.mark.parametrize("mode", ["cross", "mmdit"])
def test_text_positions_make_the_word_order_count(mode):
    """Without positions the DiT reads the text tokens as a set (a permutation changes nothing); with them, the
    same tokens in another order give another output, and prompts longer than the built table still run."""
    x, t = torch.randn(2, 4, 8, 8), torch.rand(2)
    a = text(2, 5, real=[5, 5])
    swapped = SimpleNamespace(tokens=a.tokens[:, [1, 0, 2, 3, 4]], mask=a.mask, pooled=a.pooled)
    plain = randomize_(model(mode))
    torch.testing.assert_close(plain(x, t, swapped), plain(x, t, a), rtol=0, atol=1e-5)
    ordered = randomize_(model(mode, text_positions=True))
    assert not torch.allclose(ordered(x, t, swapped), ordered(x, t, a), atol=1e-4)
    long = text(2, 100, real=[100, 40])
    out = ordered(x, t, long)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert DiTConfig().text_positions is False  # runs saved before the field existed load as they were trained


@pytest.mark.parametrize("mode", ["cross", "mmdit"])
def test_without_the_pooled_vector_only_the_tokens_condition(mode):
    m = randomize_(model(mode, text_pooled=False))
    assert m.pooled_in is None
    x, t = torch.randn(2, 4, 8, 8), torch.rand(2)
    a = text(2, 5, real=[5, 3])
    other_pooled = SimpleNamespace(tokens=a.tokens, mask=a.mask, pooled=torch.randn(2, TEXT_DIM))
    torch.testing.assert_close(m(x, t, other_pooled), m(x, t, a), rtol=0, atol=0)
    other_tokens = text(2, 5, real=[5, 3], seed=3)
    assert not torch.allclose(m(x, t, other_tokens), m(x, t, a), atol=1e-4)
