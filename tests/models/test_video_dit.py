"""Video DiT: shapes, adaLN-Zero at init, attention along the right axes, frame-permutation tests, and full
attention with one frame equal to the image DiT with the same weights."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from genlab.errors import GenlabError
from genlab.models import data_shape
from genlab.models.dit import DiT, DiTConfig
from genlab.models.video_dit import VideoDiT, VideoDiTConfig, sincos_1d

TEXT_DIM, FRAMES = 12, 4


def text(b: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return SimpleNamespace(
        tokens=torch.randn(b, 5, TEXT_DIM, generator=g),
        mask=torch.tensor([[True] * 5, [True, True, True, False, False]])[:b],
        pooled=torch.randn(b, TEXT_DIM, generator=g),
    )


def model(attention: str = "factorized", *, frames: int = FRAMES, depth: int = 1, **extra) -> VideoDiT:
    cfg = VideoDiTConfig(
        in_channels=3,
        image_size=8,
        frames=frames,
        width=32,
        depth=depth,
        heads=2,
        text_dim=TEXT_DIM,
        attention=attention,
        **extra,
    )
    torch.manual_seed(0)
    return VideoDiT(cfg)


def randomize_(m: torch.nn.Module, scale: float = 0.1) -> torch.nn.Module:
    """Replace the zero initialisation so every path through the network is active."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(scale * torch.randn_like(p))
    return m


@pytest.mark.parametrize("attention", ["factorized", "full"])
def test_shapes_zero_output_at_init_and_gradients(attention):
    m = model(attention)
    x, t = torch.randn(2, FRAMES, 3, 8, 8), torch.rand(2)
    assert torch.equal(m(x, t, text(2)), torch.zeros_like(x))  # adaLN-Zero: a fresh model outputs 0
    assert data_shape(m.cfg) == (FRAMES, 3, 8, 8)
    randomize_(m)
    m(x, t, text(2)).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
    with pytest.raises(GenlabError, match="text-conditioned"):
        m(x, t)
    with pytest.raises(GenlabError, match="expects x"):
        m(x[:, :2], t, text(2))


def test_spatial_stage_mixes_within_a_frame_and_temporal_stage_along_time():
    """Perturb one token (frame j, patch p): after the spatial block only frame j changes (all of its patches),
    after the temporal block only patch p changes (in every frame)."""
    block = randomize_(model(), scale=0.3).blocks[0].double()
    b, s, w = 1, 16, 32
    h, c, ctx = (torch.randn(shape, dtype=torch.float64) for shape in ((b, FRAMES, s, w), (b, w), (b, 3, w)))
    bumped = h.clone()
    bumped[0, 2, 5] += torch.randn(w, dtype=torch.float64)  # not a constant: LayerNorm would remove it
    with torch.no_grad():
        space = (block.spatial(bumped, c, ctx, None) - block.spatial(h, c, ctx, None)).abs().sum(-1)[0]  # (T, S)
        time = (block.temporal(bumped, c) - block.temporal(h, c)).abs().sum(-1)[0]
    assert (space[2] > 1e-8).all() and space[[0, 1, 3]].abs().max() == 0
    assert (time[:, 5] > 1e-8).all() and time[:, [i for i in range(s) if i != 5]].abs().max() == 0


@pytest.mark.parametrize("attention", ["factorized", "full"])
def test_frame_permutation(attention):
    """Without the temporal position embedding the network is equivariant to permuting frames (attention along
    time has no order); with it, the frame order matters; and a perturbed frame reaches every other frame."""
    m = randomize_(model(attention, depth=2))
    x, t, cond = torch.randn(2, FRAMES, 3, 8, 8), torch.rand(2), text(2)
    perm = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        out = m(x, t, cond)
        assert not torch.allclose(m(x[:, perm], t, cond), out[:, perm], atol=1e-4)
        bumped = x.clone()
        bumped[:, 1] += torch.randn_like(bumped[:, 1])
        moved = (m(bumped, t, cond) - out).abs().flatten(2).sum(-1)  # (B, T)
        assert (moved > 1e-3).all()  # information flows along time to every frame
        m.pos_time.zero_()
        out = m(x, t, cond)
        torch.testing.assert_close(m(x[:, perm], t, cond), out[:, perm], atol=1e-5, rtol=1e-5)


def test_full_attention_with_one_frame_is_the_image_dit():
    """One frame, full attention, the same weights and positions: exactly the image DiT (patchify, blocks, head)."""
    video = randomize_(model("full", frames=1, depth=2))
    image = DiT(DiTConfig(in_channels=3, image_size=8, num_classes=0, width=32, depth=2, heads=2, text_dim=TEXT_DIM))
    state = {k.replace(".block.", "."): v for k, v in video.state_dict().items()}
    image.load_state_dict(state)
    image.pos = video.positions()[:, 0]  # (1, S, W)
    x, t, cond = torch.randn(2, 3, 8, 8), torch.rand(2), text(2)
    with torch.no_grad():
        torch.testing.assert_close(video(x[:, None], t, cond)[:, 0], image(x, t, cond), atol=1e-5, rtol=1e-5)


def test_positions_are_distinct_in_space_and_time():
    m = model()
    pos = m.positions()[0].flatten(0, 1)  # (T·S, W)
    dist = torch.cdist(pos, pos) + torch.eye(len(pos)) * 1e3
    assert dist.min() > 1e-3
    assert sincos_1d(5, 7).shape == (5, 7)


def image_positions_model(*, frame_condition: bool = False, depth: int = 2) -> VideoDiT:
    return model(depth=depth, positions="image", frame_condition=frame_condition)


def test_started_from_an_image_dit_every_frame_is_the_image_dit():
    """positions=image + load_image_dit: with the temporal blocks at identity and no frame given, each frame's
    output is exactly the image DiT's on that frame (the given-frame channels start with no effect)."""
    image = DiT(DiTConfig(in_channels=3, image_size=8, num_classes=0, width=32, depth=2, heads=2, text_dim=TEXT_DIM))
    randomize_(image)
    video = image_positions_model(frame_condition=True)
    video.load_image_dit(image)
    x, t, cond = torch.randn(2, FRAMES, 3, 8, 8), torch.rand(2), text(2)
    given = torch.randn(2, FRAMES, 4, 8, 8)  # any latents and mask: their patch weights start at zero
    with torch.no_grad():
        out = video(torch.cat([x, given], dim=2), t, cond)
        for f in range(FRAMES):
            torch.testing.assert_close(out[:, f], image(x[:, f], t, cond), atol=1e-5, rtol=1e-5)
    with pytest.raises(GenlabError, match="expects x"):
        video(x, t, cond)  # a frame-conditioned DiT reads 2C + 1 channels


def test_image_positions_give_frame_order_to_the_temporal_blocks_only():
    """With positions=image the tokens carry the same 2-D positions in every frame; the temporal blocks see the
    frame index (order matters), and without it the network is equivariant to permuting frames."""
    m = randomize_(image_positions_model())
    pos = m.positions()[0]  # (T, S, W)
    assert torch.equal(pos[0], pos[-1])
    x, t, cond = torch.randn(2, FRAMES, 3, 8, 8), torch.rand(2), text(2)
    perm = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        out = m(x, t, cond)
        assert not torch.allclose(m(x[:, perm], t, cond), out[:, perm], atol=1e-4)
        m.pos_time.zero_()
        out = m(x, t, cond)
        torch.testing.assert_close(m(x[:, perm], t, cond), out[:, perm], atol=1e-5, rtol=1e-5)
    # the temporal block adds the positions for its own input only: h + f(h + p), not h + p + f(h + p)
    block = m.blocks[0]
    h, c = torch.randn(1, FRAMES, 16, 32), torch.randn(1, 32)
    for p in block.time.ada.parameters():
        torch.nn.init.zeros_(p)  # f = 0: the block is the identity, whatever the positions
    with torch.no_grad():
        torch.testing.assert_close(block.temporal(h, c, sincos_1d(FRAMES, 32)[None, :, None]), h)


def test_image_dit_start_errors():
    image = DiT(DiTConfig(in_channels=3, image_size=8, num_classes=0, width=32, depth=2, heads=2, text_dim=TEXT_DIM))
    with pytest.raises(GenlabError, match="positions=image"):
        model(depth=2).load_image_dit(image)  # split positions: the image DiT's blocks would see other positions
    with pytest.raises(GenlabError, match="differs"):
        image_positions_model(depth=1).load_image_dit(image)
    for other in ({"text_pooled": False}, {"text_positions": True}):  # text read in a way the video DiT does not
        cfg = DiTConfig(in_channels=3, image_size=8, num_classes=0, width=32, depth=2, heads=2, text_dim=TEXT_DIM)
        with pytest.raises(GenlabError, match="text_pooled true"):
            image_positions_model().load_image_dit(DiT(dataclasses.replace(cfg, **other)))
    with pytest.raises(GenlabError, match="factorized"):
        VideoDiT(
            VideoDiTConfig(
                in_channels=3, image_size=8, frames=2, width=32, depth=1, heads=2, attention="full", positions="image"
            )
        )
