"""VQ-VAE networks: conv encoder -> nearest-codebook quantizer -> conv decoder.

Quantizer (van den Oord et al. 2017, Neural Discrete Representation Learning): k = argmin_j ‖z − e_j‖²,
z_q = e_k, forward value z_q with the straight-through gradient z + sg(z_q − z). Loss
‖sg(z) − e_k‖² (codebook) + β‖z − sg(e_k)‖² (commitment).

With `ema` the codebook follows the statistics of the GLOBAL batch, once per optimizer step: every training
forward adds its micro-batch's n_j = #{k = j}, s_j = Σ_{k=j} z and q_j = Σ_{k=j} z² (per dimension) to
`pending` (fp32, autocast off); the trainer sums them over micro-batches and processes and calls
`apply_statistics` once: N_j ← γN_j + (1−γ)n_j, m_j ← γm_j + (1−γ)s_j, e_j = m_j / N_j (Laplace-smoothed N_j).
So N processes × k micro-batches update the codebook exactly as 1 process × N·k micro-batches.

Dead codes: usage_j ← λ·usage_j + (1−λ)·n_j (codes per global batch); codes with usage below
`restart_threshold` restart by splitting the clusters with the largest within-cluster squared error
W_j = Σ_d (q_jd − s_jd²/n_j) (Linde, Buzo & Gray 1980): the i-th dead code moves to μ_j + σ_j ⊙ r_i with
μ_j = s_j/n_j, σ_j² = q_j/n_j − μ_j², r_i ~ N(0, I) from a generator seeded by the code's index, and W_j halves.
Everything it reads is a global sum, so the restarts are identical on every rank and for any micro-batch split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.constraints import Count, OptCount, OptPositiveInt, PositiveInt
from genlab.errors import GenlabError


@dataclass
class VQConfig:
    kind: str = "vq"
    in_channels: OptPositiveInt = None
    image_size: OptPositiveInt = None
    num_classes: OptCount = None  # unused (the tokenizer is unconditional)
    channels: PositiveInt = 64
    downsample: Count = 1  # number of stride-2 stages: tokens are image_size / 2**downsample per side
    num_res_blocks: Count = 1
    codebook_size: PositiveInt = 64
    code_dim: PositiveInt = 16


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
        return nn.Sequential(
            nn.Conv2d(cfg.in_channels, c, 3, padding=1),
            nn.ReLU(),
            *down,
            *res,
            nn.ReLU(),
            nn.Conv2d(c, cfg.code_dim, 1),
        )
    up = [m for _ in range(cfg.downsample) for m in (nn.ReLU(), nn.ConvTranspose2d(c, c, 4, stride=2, padding=1))]
    return nn.Sequential(
        nn.Conv2d(cfg.code_dim, c, 3, padding=1), *res, *up, nn.ReLU(), nn.Conv2d(c, cfg.in_channels, 3, padding=1)
    )


def codebook_stats(codes: Tensor, size: int) -> dict[str, Tensor]:
    """Fraction of the codebook used by `codes` and the perplexity exp(H) of their histogram."""
    counts = torch.bincount(codes.flatten(), minlength=size).float()
    p = counts / counts.sum().clamp_min(1)
    entropy = -(p * p.clamp_min(1e-12).log()).sum()
    return {"codebook_usage": (counts > 0).float().mean(), "perplexity": entropy.exp()}


class Quantizer(nn.Module):
    def __init__(
        self,
        size: int,
        dim: int,
        *,
        ema: bool = True,
        decay: float = 0.99,
        eps: float = 1e-5,
        restart_threshold: float = 0.05,
        usage_decay: float = 0.9,
    ):
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
        self.register_buffer("usage", torch.zeros(size))  # running count per code and global batch; 0: codes
        # the first training batch leaves unused restart at once (a data-dependent initialisation)
        self.pending: dict[str, Tensor] = {}  # this step's statistics, summed over its training forwards

    def nearest(self, z: Tensor) -> Tensor:
        """z (N, D) -> index of the nearest code (N,), distances in fp32 whatever the autocast dtype."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            z, e = z.float(), self.codebook.float()
            d = z.pow(2).sum(1, keepdim=True) - 2 * z @ e.t() + e.pow(2).sum(1)[None]
            return d.argmin(1)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """z (B, D, h, w) -> (z_q with straight-through gradient, codes (B, h, w), losses and stats)."""
        b, d, h, w = z.shape
        z = z.float()  # the quantizer works in fp32 (its statistics, distances and losses)
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        codes = self.nearest(flat.detach())
        if self.training:
            self.gather(flat.detach(), codes)
        z_q = self.codebook[codes].view(b, h, w, d).permute(0, 3, 1, 2)
        commit = F.mse_loss(z, z_q.detach())
        codebook = F.mse_loss(z_q, z.detach()) if not self.ema else z.new_zeros(())
        stats = {"commitment": commit, "codebook_loss": codebook, **codebook_stats(codes, self.size)}
        return z + (z_q - z).detach(), codes.view(b, h, w), stats

    @torch.no_grad()
    def gather(self, z: Tensor, codes: Tensor) -> None:
        """Add one micro-batch's per-code count n, sum s and sum of squares q (fp32) to `pending`."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            onehot = F.one_hot(codes, self.size).float()  # (N, K)
            z = z.float()
            new = {"count": onehot.sum(0), "sum": onehot.t() @ z, "sq": onehot.t() @ z.pow(2)}
        for k, v in new.items():
            self.pending[k] = self.pending[k] + v if k in self.pending else v

    def take_pending(self) -> dict[str, Tensor]:
        """This step's statistics (then cleared); {} when no training forward ran."""
        out, self.pending = self.pending, {}
        return out

    @torch.no_grad()
    def apply_statistics(self, stats: dict[str, Tensor]) -> int:
        """One update from global-batch statistics: EMA codebook, usage, dead-code restarts. Returns #restarts."""
        counts, sums, sq = (stats[k].to(self.usage) for k in ("count", "sum", "sq"))
        if self.ema:
            self.ema_update(counts, sums)
        self.usage.lerp_(counts, 1 - self.usage_decay)
        return self.restart_dead(counts, sums, sq)

    @torch.no_grad()
    def ema_update(self, counts: Tensor, sums: Tensor) -> None:
        """N ← γN + (1−γ)n, m ← γm + (1−γ)s, e = m / smoothed N (counts (K,), sums (K, D), fp32)."""
        self.cluster_size.lerp_(counts.to(self.cluster_size), 1 - self.decay)
        self.embed_sum.lerp_(sums.to(self.embed_sum), 1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.size * self.eps) * n
        self.codebook.data.copy_(self.embed_sum / smoothed[:, None])

    @torch.no_grad()
    def restart_dead(self, counts: Tensor, sums: Tensor, sq: Tensor) -> int:
        """Codes with running usage below the threshold split the clusters of largest squared error."""
        dead = (self.usage < self.restart_threshold).nonzero().squeeze(1).tolist()
        if not dead or counts.sum() == 0:
            return 0
        n = counts.clamp_min(1)[:, None]
        mean = sums / n
        std = (sq / n - mean.pow(2)).clamp_min(0).sqrt()  # (K, D)
        error = std.pow(2).sum(1) * counts  # within-cluster squared error W_j
        error[counts == 0] = -1.0  # empty clusters cannot be split
        for code in dead:
            j = int(error.argmax())
            r = torch.randn(mean.shape[1], generator=torch.Generator().manual_seed(code)).to(mean)
            self.codebook.data[code] = mean[j] + std[j] * r
            error[j] /= 2
        self.usage[dead] = 1.0
        if self.ema:
            self.cluster_size[dead] = 1.0
            self.embed_sum[dead] = self.codebook.data[dead]
        return len(dead)


class VQAutoencoder(nn.Module):
    """encode(x) -> z (B, code_dim, h, w); quantizer; decode(z_q) -> x̂ (B, C, H, W)."""

    def __init__(self, cfg: VQConfig, *, ema: bool = True, decay: float = 0.99, restart_threshold: float = 0.05):
        super().__init__()
        if cfg.image_size % 2**cfg.downsample:
            raise GenlabError(
                f"model: image_size {cfg.image_size} is not divisible by 2**downsample; "
                "lower model.downsample or set data.size"
            )
        self.cfg = cfg
        self.encoder = conv_stack(cfg, decoder=False)
        self.quantizer = Quantizer(
            cfg.codebook_size, cfg.code_dim, ema=ema, decay=decay, restart_threshold=restart_threshold
        )
        self.decoder = conv_stack(cfg, decoder=True)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """(reconstruction, codes, quantizer losses and stats)."""
        z_q, codes, stats = self.quantizer(self.encoder(x))
        return self.decoder(z_q), codes, stats
