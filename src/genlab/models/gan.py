"""GAN networks: a DCGAN-style generator, a StyleGAN-style generator and one discriminator.

G(z, y): [z, emb(y)] -> Linear -> 4x4 features -> one stride-2 transposed conv per octave -> tanh image.
Style G: w = MLP([z/rms(z), emb(y)]); a learned constant 4x4 input; after every conv, per-pixel noise and
AdaIN(h, w) = (1 + s(w)) * (h - mu(h)) / sigma(h) + b(w), instance statistics per channel.
D(x, y) = psi(phi(x)) + <emb(y), phi(x)> (projection discriminator), phi = strided convs, flattened.
Built with `cond_dim` (a text GAN) the condition is a vector instead of a label: G reads [z, c] with c (B, cond_dim)
given, and D projects onto W e, e (B, cond_dim), by a bias-free linear map in place of the label embedding.

Stabiliser: spectral normalisation of every discriminator weight (Miyato et al. 2018), W / sigma_max(W)
with sigma_max from one power iteration per training forward. What it controls: each layer is 1-Lipschitz
(LeakyReLU is too), so D's logit cannot grow arbitrarily steep around the data and the gradient G receives
through D stays bounded. What it costs: two matrix-vector products per layer per forward, two buffers per
layer, no second backward pass (an R1 penalty, the method's `r1_gamma`, differentiates through D's input
gradient); on the digits-gan networks (batch 64, one CPU thread) a D step costs 1.26x with spectral norm
and 1.6x with R1. And a weaker D: with the style generator on digits, the spectrally normalised D settled
at D = 1/2 everywhere and G kept one image per class, so recipes/digits-stylegan.yaml turns it off and
uses R1 (gamma = 1), StyleGAN's own choice, which penalises only D's slope at the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from genlab.constraints import OptCount, OptPositiveInt, PositiveInt
from genlab.errors import GenlabError
from genlab.models.layers import group_norm, modulate


@dataclass
class DCGANConfig:
    kind: str = "dcgan"
    in_channels: OptPositiveInt = None  # filled from the dataset
    image_size: OptPositiveInt = None  # filled from the dataset; 4 * 2**k (8, 16, 32, ...)
    num_classes: OptCount = None  # 0 = unconditional; filled from the dataset
    latent_dim: PositiveInt = 64
    channels: PositiveInt = 128  # width at 4x4 in G and D; halved per octave towards the image (at least 16)
    spectral_norm: bool = True  # the stabiliser, on every discriminator layer


@dataclass
class StyleGANConfig:
    kind: str = "stylegan"
    in_channels: OptPositiveInt = None
    image_size: OptPositiveInt = None
    num_classes: OptCount = None
    latent_dim: PositiveInt = 64
    channels: PositiveInt = 128
    spectral_norm: bool = True
    w_dim: PositiveInt = 64  # width of the mapping network and of w
    mapping_depth: PositiveInt = 4
    noise: bool = True  # per-layer noise (random in training, a fixed map when sampling)


def widths(cfg) -> list[int]:
    """Feature width at sizes 4, 8, ..., image_size."""
    for name in ("in_channels", "image_size", "num_classes"):
        if getattr(cfg, name) is None:
            raise GenlabError(f"model.{name} is not set: train through a recipe (it comes from the data)")
    octaves = (cfg.image_size // 4).bit_length() - 1
    if cfg.image_size < 4 or 4 * 2**octaves != cfg.image_size:
        raise GenlabError(
            f"GAN models need image_size = 4 * 2**k (8, 16, 32, ...), got {cfg.image_size}: set data.size"
        )
    return [max(cfg.channels >> i, 16) for i in range(octaves + 1)]


class DCGenerator(nn.Module):
    """[z, emb(y)] (or [z, c]) -> (C0, 4, 4) -> ConvTranspose(4, stride 2) per octave -> 3x3 conv -> tanh."""

    def __init__(self, cfg: DCGANConfig, cond_dim: int = 0):
        super().__init__()
        w = widths(cfg)
        self.embed = nn.Embedding(cfg.num_classes, cfg.latent_dim) if cfg.num_classes else None
        self.stem = nn.Linear(cfg.latent_dim * (2 if self.embed else 1) + cond_dim, w[0] * 16)
        self.norm0 = group_norm(w[0])
        self.ups = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), group_norm(b), nn.ReLU())
            for a, b in zip(w, w[1:])
        )
        self.to_image = nn.Conv2d(w[-1], cfg.in_channels, 3, padding=1)

    def forward(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(cond)], dim=1)  # (B, 2L)
        elif cond is not None:
            z = torch.cat([z, cond], dim=1)  # (B, L + cond_dim)
        h = self.stem(z).view(z.shape[0], -1, 4, 4)  # (B, C0, 4, 4)
        h = F.relu(self.norm0(h))
        for up in self.ups:
            h = up(h)  # (B, C_i, 4 * 2**i, 4 * 2**i)
        return torch.tanh(self.to_image(h))  # (B, C, S, S) in (-1, 1)


class AdaIN(nn.Module):
    """Adaptive instance norm (Karras et al. 2019): (1 + s) * instance_norm(h) + b, (s, b) = Linear(w)."""

    def __init__(self, channels: int, w_dim: int):
        super().__init__()
        self.style = nn.Linear(w_dim, 2 * channels)

    def forward(self, h: Tensor, w: Tensor) -> Tensor:
        return modulate(F.instance_norm(h), self.style(w))  # (B, C, H, W)


class StyleLayer(nn.Module):
    """[nearest x2] -> 3x3 conv -> + strength * noise -> LeakyReLU -> AdaIN(w)."""

    def __init__(self, cin: int, cout: int, w_dim: int, *, size: int, up: bool, noise: bool):
        super().__init__()
        self.up = up
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.noise_strength = nn.Parameter(torch.zeros(cout)) if noise else None
        if noise:  # the map used when sampling, so that decode(z) is a function of z
            self.register_buffer("fixed_noise", torch.randn(1, 1, size, size))
        self.adain = AdaIN(cout, w_dim)

    def forward(self, h: Tensor, w: Tensor) -> Tensor:
        if self.up:
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")  # (B, Cin, 2H, 2W)
        h = self.conv(h)  # (B, Cout, H, W)
        if self.noise_strength is not None:
            noise = torch.randn_like(h[:, :1]) if self.training else self.fixed_noise  # (B or 1, 1, H, W)
            h = h + self.noise_strength.view(1, -1, 1, 1) * noise
        return self.adain(F.leaky_relu(h, 0.2), w)


class StyleGenerator(nn.Module):
    """Mapping MLP z -> w; learned constant 4x4 input; two StyleLayers per size; 1x1 conv -> tanh."""

    def __init__(self, cfg: StyleGANConfig, cond_dim: int = 0):
        super().__init__()
        w = widths(cfg)
        self.embed = nn.Embedding(cfg.num_classes, cfg.latent_dim) if cfg.num_classes else None
        dims = [cfg.latent_dim * (2 if self.embed else 1) + cond_dim] + [cfg.w_dim] * cfg.mapping_depth
        self.mapping = nn.Sequential(*(m for a, b in zip(dims, dims[1:]) for m in (nn.Linear(a, b), nn.LeakyReLU(0.2))))
        self.const = nn.Parameter(torch.randn(1, w[0], 4, 4))
        layers = []
        for i, (a, b) in enumerate(zip([w[0]] + w, w)):
            size = 4 * 2**i
            layers.append(StyleLayer(a, b, cfg.w_dim, size=size, up=i > 0, noise=cfg.noise))
            layers.append(StyleLayer(b, b, cfg.w_dim, size=size, up=False, noise=cfg.noise))
        self.layers = nn.ModuleList(layers)
        self.to_image = nn.Conv2d(w[-1], cfg.in_channels, 1)

    def map(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        """w = MLP([z / rms(z), emb(y)]) (B, w_dim)."""
        z = z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8)  # (B, L), pixel norm
        if self.embed is not None:
            z = torch.cat([z, self.embed(cond)], dim=1)  # (B, 2L)
        elif cond is not None:
            z = torch.cat([z, cond], dim=1)  # (B, L + cond_dim)
        return self.mapping(z)

    def forward(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.synthesize(self.map(z, cond))  # w (B, w_dim)

    def synthesize(self, w: Tensor) -> Tensor:
        """Images (B, C, S, S) in (-1, 1) from styles w (B, w_dim): the synthesis network alone (GANSpace edits w)."""
        h = self.const.expand(w.shape[0], -1, -1, -1)  # (B, C0, 4, 4)
        for layer in self.layers:
            h = layer(h, w)  # (B, C_i, 4 * 2**i, 4 * 2**i)
        return torch.tanh(self.to_image(h))  # (B, C, S, S)


class Discriminator(nn.Module):
    """3x3 conv, then a stride-2 4x4 conv per octave down to 4x4 (LeakyReLU 0.2); logit = psi(phi) + <emb(y), phi>
    (with `cond_dim`: + <W e, phi> for condition vectors e)."""

    def __init__(self, cfg, cond_dim: int = 0):
        super().__init__()
        w = widths(cfg)[::-1]  # widest last
        sn = spectral_norm if cfg.spectral_norm else (lambda m: m)
        self.from_image = sn(nn.Conv2d(cfg.in_channels, w[0], 3, padding=1))
        self.downs = nn.ModuleList(sn(nn.Conv2d(a, b, 4, stride=2, padding=1)) for a, b in zip(w, w[1:]))
        self.head = sn(nn.Linear(w[-1] * 16, 1))
        self.embed = sn(nn.Embedding(cfg.num_classes, w[-1] * 16)) if cfg.num_classes else None
        if cond_dim and self.embed is None:  # W (16 * C0, cond_dim): e -> W e, the label embedding's place
            self.embed = sn(nn.Linear(cond_dim, w[-1] * 16, bias=False))

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        h = F.leaky_relu(self.from_image(x), 0.2)  # (B, C_k, S, S)
        for down in self.downs:
            h = F.leaky_relu(down(h), 0.2)  # halves the size
        phi = h.flatten(1)  # (B, 16 * C0)
        logit = self.head(phi).squeeze(1)  # (B,)
        if self.embed is not None:
            logit = logit + (self.embed(cond) * phi).sum(1)  # projection (Miyato & Koyama 2018)
        return logit


class GAN(nn.Module):
    """The pair the GAN method trains: `generator` (DCGAN or style, by config kind) and `discriminator`; with
    `cond_dim` G reads a condition vector (B, cond_dim) instead of labels, and D one of `disc_cond_dim` (default
    cond_dim) (cfg.num_classes must then be 0)."""

    def __init__(self, cfg: DCGANConfig | StyleGANConfig, cond_dim: int = 0, disc_cond_dim: int | None = None):
        super().__init__()
        if cond_dim and cfg.num_classes:
            raise GenlabError("a GAN reads labels or condition vectors, not both: set model.num_classes to 0")
        self.latent_dim = cfg.latent_dim
        generator = StyleGenerator if cfg.kind == "stylegan" else DCGenerator
        self.generator = generator(cfg, cond_dim)
        self.discriminator = Discriminator(cfg, cond_dim if disc_cond_dim is None else disc_cond_dim)
