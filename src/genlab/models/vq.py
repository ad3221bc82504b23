"""VQ-VAE networks: conv encoder -> nearest-codebook quantizer -> conv decoder.

Quantizer (van den Oord et al. 2017, Neural Discrete Representation Learning): k = argmin_j ‖z − e_j‖²,
z_q = e_k, forward value z_q with the straight-through gradient z + sg(z_q − z). Loss
‖sg(z) − e_k‖² (codebook) + β‖z − sg(e_k)‖² (commitment); with `ema` the codebook is instead
N_j ← γN_j + (1−γ)n_j, m_j ← γm_j + (1−γ)Σ_{k=j} z, e_j = m_j / N_j (Laplace-smoothed N_j).
Codes whose running usage falls below `restart_threshold` are restarted at random batch encodings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.errors import GenlabError


@dataclass
class VQConfig:
    kind: str = "vq"
    in_channels: int | None = None
    image_size: int | None = None
    num_classes: int | None = None  # unused (the tokenizer is unconditional)
    channels: int = 64
    downsample: int = 1  # number of stride-2 stages: tokens are image_size / 2**downsample per side
    num_res_blocks: int = 1
    codebook_size: int = 64
    code_dim: int = 16


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


def conv_stack(cfg: VQConfig, *, decoder: bool) -> nn.Sequential:
    c = cfg.channels
    res = [ResBlock(c) for _ in range(cfg.num_res_blocks)]
    if not decoder:
        down = [m for _ in range(cfg.downsample) for m in (nn.Conv2d(c, c, 4, stride=2, padding=1), nn.ReLU())]
        return nn.Sequential(nn.Conv2d(cfg.in_channels, c, 3, padding=1), nn.ReLU(), *down, *res, nn.ReLU(),
                             nn.Conv2d(c, cfg.code_dim, 1))
    up = [m for _ in range(cfg.downsample) for m in (nn.ReLU(), nn.ConvTranspose2d(c, c, 4, stride=2, padding=1))]
    return nn.Sequential(nn.Conv2d(cfg.code_dim, c, 3, padding=1), *res, *up, nn.ReLU(),
                         nn.Conv2d(c, cfg.in_channels, 3, padding=1))


def codebook_stats(codes: Tensor, size: int) -> dict[str, Tensor]:
    """Fraction of the codebook used by `codes` and the perplexity exp(H) of their histogram."""
    counts = torch.bincount(codes.flatten(), minlength=size).float()
    p = counts / counts.sum().clamp_min(1)
    entropy = -(p * p.clamp_min(1e-12).log()).sum()
    return {"codebook_usage": (counts > 0).float().mean(), "perplexity": entropy.exp()}


def _all_reduce(*tensors: Tensor) -> None:
    if dist.is_available() and dist.is_initialized():
        for t in tensors:
            dist.all_reduce(t)


class Quantizer(nn.Module):
    def __init__(self, size: int, dim: int, *, ema: bool = True, decay: float = 0.99, eps: float = 1e-5,
                 restart_threshold: float = 0.05, usage_decay: float = 0.9):
        super().__init__()
        self.size, self.ema, self.decay, self.eps = size, ema, decay, eps
        self.restart_threshold, self.usage_decay = restart_threshold, usage_decay
        init = torch.randn(size, dim) / dim**0.5
        if ema:
            self.register_buffer("codebook", init)
            self.register_buffer("cluster_size", torch.ones(size))
            self.register_buffer("embed_sum", init.clone())
        else:
            self.codebook = nn.Parameter(init)
        self.register_buffer("usage", torch.zeros(size))  # running count per code and batch; 0: codes the first
        # training batch leaves unused restart at its encodings at once (a data-dependent initialisation)

    def nearest(self, z: Tensor) -> Tensor:
        """z (N, D) -> index of the nearest code (N,)."""
        e = self.codebook
        d = z.pow(2).sum(1, keepdim=True) - 2 * z @ e.t() + e.pow(2).sum(1)[None]
        return d.argmin(1)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """z (B, D, h, w) -> (z_q with straight-through gradient, codes (B, h, w), losses and stats)."""
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        if self.training:
            self.restart_dead(flat.detach())
        codes = self.nearest(flat.detach())
        if self.training and self.ema:
            self.ema_update(flat.detach(), codes)
        z_q = self.codebook[codes].view(b, h, w, d).permute(0, 3, 1, 2)
        commit = F.mse_loss(z, z_q.detach())
        codebook = F.mse_loss(z_q, z.detach()) if not self.ema else z.new_zeros(())
        stats = {"commitment": commit, "codebook_loss": codebook, **codebook_stats(codes, self.size)}
        return z + (z_q - z).detach(), codes.view(b, h, w), stats

    @torch.no_grad()
    def ema_update(self, z: Tensor, codes: Tensor) -> None:
        onehot = F.one_hot(codes, self.size).to(z.dtype)  # (N, K)
        counts, sums = onehot.sum(0), onehot.t() @ z
        _all_reduce(counts, sums)
        self.cluster_size.lerp_(counts, 1 - self.decay)
        self.embed_sum.lerp_(sums, 1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.size * self.eps) * n
        self.codebook.copy_(self.embed_sum / smoothed[:, None])

    @torch.no_grad()
    def restart_dead(self, z: Tensor) -> None:
        """Track per-code usage; move codes used less than `restart_threshold` per batch to random encodings."""
        counts = torch.bincount(self.nearest(z), minlength=self.size).to(z.dtype)
        _all_reduce(counts)
        self.usage.lerp_(counts, 1 - self.usage_decay)
        dead = self.usage < self.restart_threshold
        if not dead.any():
            return
        pick = z[torch.randint(len(z), (int(dead.sum()),), device=z.device)]
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(pick, 0)  # every rank restarts to the same encodings
        self.codebook.data[dead] = pick
        self.usage[dead] = 1.0
        if self.ema:
            self.cluster_size[dead] = 1.0
            self.embed_sum[dead] = pick


class VQAutoencoder(nn.Module):
    """encode(x) -> z (B, code_dim, h, w); quantizer; decode(z_q) -> x̂ (B, C, H, W)."""

    def __init__(self, cfg: VQConfig, *, ema: bool = True, decay: float = 0.99, restart_threshold: float = 0.05):
        super().__init__()
        if cfg.image_size % 2**cfg.downsample:
            raise GenlabError(f"model: image_size {cfg.image_size} is not divisible by 2**downsample; "
                              "lower model.downsample or set data.size")
        self.cfg = cfg
        self.encoder = conv_stack(cfg, decoder=False)
        self.quantizer = Quantizer(cfg.codebook_size, cfg.code_dim, ema=ema, decay=decay,
                                   restart_threshold=restart_threshold)
        self.decoder = conv_stack(cfg, decoder=True)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """(reconstruction, codes, quantizer losses and stats)."""
        z_q, codes, stats = self.quantizer(self.encoder(x))
        return self.decoder(z_q), codes, stats
