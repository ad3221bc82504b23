"""Residual MLP denoiser for vector data (2D toy distributions, small embeddings).

h_0 = W_in x;  h_{l+1} = h_l + W_2 SiLU(W_1 modulate(LayerNorm(h_l), emb));  out = W_out SiLU(LN(h_L)).
emb = MLP(sinusoid(1000 t)) + class_table[cond] drives every block's (scale, shift).
W_out starts at zero, so an untrained model predicts 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn
from torch.nn import functional as F

from genlab.constraints import Count, Fraction, OptCount, OptPositiveInt, PositiveInt, require
from genlab.errors import GenlabError
from genlab.models.layers import ConditionEmbedding, modulate, zero_init_


@dataclass
class MLPConfig:
    kind: str = "mlp"
    dim: OptPositiveInt = None  # data dimension, filled from the dataset
    num_classes: OptCount = None  # 0 = unconditional; filled from the dataset
    hidden: PositiveInt = 256
    depth: Count = 4  # residual blocks
    time_embed: PositiveInt = 64  # sinusoidal feature size (even: cos and sin halves)
    mlp_ratio: PositiveInt = 2  # block inner width = hidden * mlp_ratio
    dropout: Fraction = 0.0

    def __post_init__(self) -> None:
        require(self.time_embed % 2 == 0, "time_embed", f"must be even (cos and sin halves), got {self.time_embed}")


class MLPBlock(nn.Module):
    def __init__(self, hidden: int, inner: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False)
        self.emb = nn.Linear(hidden, 2 * hidden)
        self.fc1 = nn.Linear(hidden, inner)
        self.fc2 = nn.Linear(inner, hidden)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        u = modulate(self.norm(h), self.emb(emb))  # (B, hidden)
        u = self.fc2(self.dropout(F.silu(self.fc1(u))))  # (B, hidden)
        return h + u  # (B, hidden)


class MLP(nn.Module):
    def __init__(self, cfg: MLPConfig):
        super().__init__()
        for name in ("dim", "num_classes"):
            if getattr(cfg, name) is None:
                raise GenlabError(f"model.{name} is not set: set it in the recipe or let the dataset fill it")
        self.cfg = cfg
        self.embed = ConditionEmbedding(cfg.time_embed, cfg.hidden, cfg.num_classes)
        self.inp = nn.Linear(cfg.dim, cfg.hidden)
        inner = cfg.hidden * cfg.mlp_ratio
        self.blocks = nn.ModuleList(MLPBlock(cfg.hidden, inner, cfg.dropout) for _ in range(cfg.depth))
        self.out_norm = nn.LayerNorm(cfg.hidden)
        self.out = nn.Linear(cfg.hidden, cfg.dim)
        self.init_weights()

    def init_weights(self) -> None:
        """PyTorch defaults for Linear layers; small class table; zero output layer."""
        if self.embed.classes is not None:
            nn.init.normal_(self.embed.classes.weight, std=0.02)
        zero_init_(self.out)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        emb = F.silu(self.embed(t, cond))  # (B, hidden)
        h = self.inp(x)  # (B, hidden)
        for block in self.blocks:
            h = block(h, emb)  # (B, hidden)
        return self.out(F.silu(self.out_norm(h)))  # (B, dim)
