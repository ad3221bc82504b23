"""pix2pix networks (Isola et al. 2017): a U-Net generator and a PatchGAN discriminator.

Generator: an encoder of `depth` stride-2 4x4 convs (LeakyReLU 0.2 before each but the first; widths c, 2c, 4c,
8c, 8c, ...) down to S / 2**depth, and a mirrored decoder of stride-2 4x4 transposed convs (ReLU before each),
each output concatenated with the encoder features of the same size (the skips carry the input's edges straight to
the output), then tanh. Noise: no z (pix2pix found G learns to ignore it); dropout with p = 0.5 on the innermost
`dropout_levels` decoder levels, applied in training AND when translating, so outputs of one input differ
(slightly, as the paper reports). Its masks are drawn from the caller's generator: seeded outputs repeat exactly.
Normalisation: GroupNorm (per image) in place of the paper's batch norm, whose statistics would tie the images of
a batch together; none on the outermost encoder level or at the 1x1 bottleneck (as in the paper).

PatchGAN D(x) (conditional: D([source, x]), input concatenated): `disc_layers` stride-2 4x4 convs (width doubling,
capped at 8c), one stride-1 4x4 conv (GroupNorm, LeakyReLU), and a stride-1 4x4 conv to one logit per patch.
Receptive field, by r <- 2r + 2 per stride-2 layer from the last two layers' 7 pixels: 7, 16, 34, 70, 142, 286 for
0..5 stride-2 layers, so pix2pix's 70x70 D on 256-pixel images is disc_layers = 3 (0.27 of the side) and its
286x286 "ImageGAN" is 5. Scaled to 32x32 patches, the default disc_layers = 1 judges 16x16 pixel patches (half the
side; a 14x14 map of logits): 7 pixels (disc_layers = 0, 0.22 of the side) is closer to the paper's ratio, but it
runs every conv at full resolution (4x the cost) and judges colour from too little context to tell a blue sky from
a grey wall, and 34 (disc_layers = 2) already sees the whole image, which the paper found to give no gain.
(The field counts the convolutions; GroupNorm's per-image statistics, like the paper's batch statistics, reach
every pixel weakly.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.constraints import Count, Fraction, OptPositiveInt, PositiveInt
from genlab.errors import GenlabError
from genlab.models.layers import group_norm


@dataclass
class PatchGANConfig:
    kind: str = "patchgan"
    in_channels: OptPositiveInt = None  # the translated images' channels: filled from the dataset
    image_size: OptPositiveInt = None  # filled from the dataset; divisible by 2**depth
    channels: PositiveInt = 32  # G's first encoder width (pix2pix: 64), doubling per level up to 8x
    depth: PositiveInt = 5  # G's stride-2 levels: 32 -> 1 pixel at 5 (pix2pix: 256 -> 1 at 8)
    dropout: Fraction = 0.5  # on the innermost decoder levels, in training and when translating (the noise)
    dropout_levels: Count = 3  # decoder levels with dropout, innermost first (pix2pix: 3)
    disc_channels: PositiveInt = 32  # D's first width (pix2pix: 64), doubling per layer up to 8x
    disc_layers: Count = 1  # D's stride-2 convs: receptive field 7, 16, 34, 70 px for 0, 1, 2, 3


def dropout_mask(shape: tuple[int, ...], p: float, *, generator: torch.Generator | None, device, dtype) -> Tensor:
    """Inverted-dropout mask keep / (1 - p), keep ~ Bernoulli(1 - p), drawn from `generator` on its own device
    (global RNG when None) and moved to `device`: the same seed gives the same mask on any device."""
    where = generator.device if generator is not None else device
    keep = torch.rand(shape, generator=generator, device=where) >= p
    return keep.to(device=device, dtype=dtype) / (1.0 - p)


class UNetGenerator(nn.Module):
    """source (B, in_channels, S, S) -> image (B, out_channels, S, S) in (-1, 1); see the module docstring."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        channels: int = 32,
        depth: int = 5,
        dropout: float = 0.5,
        dropout_levels: int = 3,
    ):
        super().__init__()
        widths = [channels * min(2**i, 8) for i in range(depth)]  # encoder output width per level
        self.depth, self.dropout, self.dropout_levels = depth, dropout, dropout_levels
        self.downs = nn.ModuleList(
            nn.Conv2d(a, b, 4, stride=2, padding=1) for a, b in zip([in_channels] + widths, widths)
        )
        self.down_norms = nn.ModuleList(
            group_norm(w) if 0 < i < depth - 1 else nn.Identity() for i, w in enumerate(widths)
        )
        ups, up_norms = [], []
        for i in reversed(range(depth)):  # innermost first; level i maps to the size of encoder level i - 1
            cin = widths[i] * (1 if i == depth - 1 else 2)  # the bottleneck, else [decoder, skip] concatenated
            cout = widths[i - 1] if i > 0 else out_channels
            ups.append(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1))
            up_norms.append(group_norm(cout) if i > 0 else nn.Identity())
        self.ups, self.up_norms = nn.ModuleList(ups), nn.ModuleList(up_norms)
        self.init_weights()

    def init_weights(self) -> None:
        """pix2pix's initialisation: conv weights N(0, 0.02), biases 0 (norms keep weight 1, bias 0)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, source: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        size = source.shape[-1]
        if source.shape[-2] != size or size % 2**self.depth:
            raise GenlabError(
                f"the U-Net generator needs square images with a side divisible by 2**depth = {2**self.depth}, "
                f"got {tuple(source.shape[-2:])}: set model.depth or data.size"
            )
        skips, h = [], source
        for i, (down, norm) in enumerate(zip(self.downs, self.down_norms)):
            h = norm(down(h if i == 0 else F.leaky_relu(h, 0.2)))  # (B, w_i, S / 2**(i+1), ...)
            skips.append(h)
        for j, (up, norm) in enumerate(zip(self.ups, self.up_norms)):
            level = self.depth - 1 - j
            if j > 0:
                h = torch.cat([h, skips[level]], dim=1)  # (B, 2 w_level, S / 2**(level+1), ...)
            h = norm(up(F.relu(h)))  # (B, w_{level-1}, S / 2**level, ...)
            if j < self.dropout_levels and level > 0 and self.dropout > 0:
                h = h * dropout_mask(h.shape, self.dropout, generator=generator, device=h.device, dtype=h.dtype)
        return torch.tanh(h)  # (B, out_channels, S, S)


class PatchDiscriminator(nn.Module):
    """image (B, C, S, S) [and source (B, C', S, S)] -> patch logits (B, 1, h, w); see the module docstring."""

    def __init__(self, in_channels: int, *, source_channels: int = 0, channels: int = 32, layers: int = 1):
        super().__init__()
        self.source_channels = source_channels
        widths = [channels * min(2**i, 8) for i in range(layers + 1)]  # stride-2 convs, then the stride-1 conv
        mods: list[nn.Module] = []
        cin = in_channels + source_channels
        for i, w in enumerate(widths):
            stride = 2 if i < layers else 1
            mods += [nn.Conv2d(cin, w, 4, stride=stride, padding=1), group_norm(w) if i else nn.Identity()]
            mods.append(nn.LeakyReLU(0.2))
            cin = w
        mods.append(nn.Conv2d(cin, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*mods)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor, source: Tensor | None = None) -> Tensor:
        if (source is not None) != (self.source_channels > 0):
            raise GenlabError("a conditional PatchGAN needs the source image, an unconditional one takes none")
        h = x if source is None else torch.cat([source.to(x.dtype), x], dim=1)  # (B, C' + C, S, S)
        return self.net(h)  # (B, 1, h, w)

    @property
    def receptive_field(self) -> int:
        """Side in input pixels of the square each logit sees: r <- (r - 1) * stride + kernel from the last layer."""
        r = 1
        for m in reversed([m for m in self.net if isinstance(m, nn.Conv2d)]):
            r = (r - 1) * m.stride[0] + m.kernel_size[0]
        return r


class PatchGAN(nn.Module):
    """A pix2pix pair: `generator` source -> image and `discriminator` on images (conditioned on the source when
    `conditional`). `source_channels` defaults to the image channels (same-domain translation)."""

    def __init__(self, cfg: PatchGANConfig, *, source_channels: int | None = None, conditional: bool = True):
        super().__init__()
        for name in ("in_channels", "image_size"):
            if getattr(cfg, name) is None:
                raise GenlabError(f"model.{name} is not set: train through a recipe (it comes from the data)")
        if cfg.image_size % 2**cfg.depth:
            raise GenlabError(
                f"model.depth={cfg.depth} halves the image {cfg.depth} times, but data.size={cfg.image_size} is not "
                f"divisible by {2**cfg.depth}: lower model.depth"
            )
        source = cfg.in_channels if source_channels is None else source_channels
        self.generator = UNetGenerator(
            source,
            cfg.in_channels,
            channels=cfg.channels,
            depth=cfg.depth,
            dropout=cfg.dropout,
            dropout_levels=cfg.dropout_levels,
        )
        self.discriminator = PatchDiscriminator(
            cfg.in_channels,
            source_channels=source if conditional else 0,
            channels=cfg.disc_channels,
            layers=cfg.disc_layers,
        )


__all__ = ["PatchDiscriminator", "PatchGAN", "PatchGANConfig", "UNetGenerator", "dropout_mask"]
