"""VQ-VAE tokenizer: x -> encoder -> nearest code -> decoder -> x̂ (no prior, so no samples).

loss = ‖x̂ − x‖² + ‖sg(z) − e_k‖² + β‖z − sg(e_k)‖² (the codebook term is replaced by EMA updates when
`ema`), with straight-through gradients from x̂ to the encoder. Logged: reconstruction MSE and PSNR
(x in [-1, 1], peak-to-peak 2), codebook usage (fraction of codes used in the batch) and perplexity.
`encode_tokens` / `decode_tokens` are what a token prior (methods/token_prior.py) trains and samples on.
The codebook's buffers (EMA statistics, usage, dead-code restarts) follow the global batch: `loss` only gathers
the quantizer's statistics, `pending_statistics` hands them to the trainer, which sums them over micro-batches and
processes and calls `update` once per optimizer step (models/vq.py states the maths).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.constraints import NonNegFloat, Probability
from genlab.errors import GenlabError
from genlab.methods.base import Method
from genlab.models.autoencoder import psnr_db
from genlab.models.vq import VQAutoencoder
from genlab.settings import Samples


@dataclass
class VQVAEConfig:
    kind: str = "vqvae"
    beta: NonNegFloat = 0.25  # commitment weight
    ema: bool = True  # EMA codebook updates instead of the codebook loss
    ema_decay: Probability = 0.99
    restart_threshold: NonNegFloat = 0.05  # restart codes whose running count per batch falls below this (0: never)


class VQVAEMethod(Method):
    #: the trainer's end-of-run grid shows rows of real images over their reconstructions (`sample` has no prior)
    shows_reconstructions = True

    def __init__(self, cfg: VQVAEConfig, model_cfg):
        super().__init__()
        if model_cfg.kind != "vq":
            raise GenlabError(f"method.kind=vqvae needs model.kind=vq, got {model_cfg.kind!r}")
        self.cfg = cfg
        self.model = VQAutoencoder(model_cfg, ema=cfg.ema, decay=cfg.ema_decay, restart_threshold=cfg.restart_threshold)

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        x = batch["x"]
        x_hat, _, vq = self.model(x)
        mse = F.mse_loss(x_hat, x)
        loss = mse + vq["codebook_loss"] + self.cfg.beta * vq["commitment"]
        logs = {"loss": loss, "recon_mse": mse, "psnr": psnr_db(mse), **vq}
        return loss, {k: v.detach() for k, v in logs.items()}

    def pending_statistics(self) -> dict[str, Tensor]:
        """Per-code count, sum and sum of squares gathered by this step's training forwards (then cleared)."""
        return self.model.quantizer.take_pending()

    @torch.no_grad()
    def update(self, stats: dict[str, Tensor], *, rate: float) -> dict[str, float]:
        """One codebook update from the global batch's statistics (`rate` unused: the EMA has its own decay)."""
        return {"codes_restarted": float(self.model.quantizer.apply_statistics(stats))}

    @torch.no_grad()
    def encode_tokens(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> codes (B, h, w) int64."""
        z = self.model.encoder(x)
        b, d, h, w = z.shape
        return self.model.quantizer.nearest(z.permute(0, 2, 3, 1).reshape(-1, d)).view(b, h, w)

    @torch.no_grad()
    def decode_tokens(self, tokens: Tensor) -> Tensor:
        """Codes (B, h, w) int64 -> images (B, C, H, W) clamped to [-1, 1]."""
        z_q = self.model.quantizer.codebook[tokens].permute(0, 3, 1, 2)
        return self.model.decoder(z_q).clamp(-1, 1)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decode_tokens(self.encode_tokens(x))

    def sample(self, n: int, **_) -> Samples:
        raise GenlabError(
            "a vqvae run is a tokenizer without a prior: train method.kind=token_prior with "
            "method.tokenizer=RUN to sample (recipes/digits-vq-prior.yaml)"
        )
