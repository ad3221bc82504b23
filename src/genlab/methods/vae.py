"""Variational autoencoder (Kingma & Welling 2014), β-VAE (Higgins et al. 2017), class-conditional VAE.

q(z|x, y) = N(μ, diag σ²), z = μ + σ·ε (reparameterization), prior N(0, I), decoder p(x|z, y) = N(mean, scale²)
per value; for images it is the *discretized* Gaussian over the 256 8-bit bins (methods.discretized), so the
ELBO = E_q[log p(x|z)] − KL(q‖N(0, I)) is a true lower bound on log P(8-bit image) and bits/dim are honest.
Training minimises (−E_q[log p(x|z)] + β_t·KL)/D with β_t = β·min(1, step / kl_warmup); labels are replaced by
the null class with probability `label_dropout`, so one network also models p(x) (unconditional sampling).
log_likelihood = ELBO (iw_samples = 1) or the importance-weighted bound log 1/K Σ_k p(x, z_k)/q(z_k|x)
(Burda et al. 2016), which rises towards log p(x) as K grows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.constraints import Count, NonNegFloat, PositiveInt, Probability
from genlab.errors import GenlabError
from genlab.methods.base import Method, drop_labels, no_options, randn
from genlab.methods.discretized import discretized_gaussian_log_prob
from genlab.models import build_model, data_shape
from genlab.models.autoencoder import kl_to_standard
from genlab.settings import DEFAULT_SETTINGS, Callback, Samples, SampleSettings

LOG_2PI = math.log(2 * math.pi)


@dataclass
class VAEConfig:
    kind: str = "vae"
    beta: NonNegFloat = 1.0  # weight of the KL term (β-VAE); the reported ELBO always uses β = 1
    kl_warmup: Count = 0  # trainer steps over which β ramps linearly from 0 (0: no warm-up)
    label_dropout: Probability = 0.1  # probability of training on the null class (unconditional model)
    iw_samples: PositiveInt = 1  # K of log_likelihood: 1 = ELBO, > 1 = importance-weighted bound


def gaussian_log_prob(x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """Elementwise log N(x; mean, exp(log_scale)²)."""
    return -0.5 * ((x - mean) * torch.exp(-log_scale)) ** 2 - log_scale - 0.5 * LOG_2PI


class VAEMethod(Method):
    likelihood = "bound"
    sampled_by = "the decoder mean (one pass)"
    has_latent = True

    def __init__(self, cfg: VAEConfig, model_cfg):
        super().__init__()
        if model_cfg.kind not in ("conv_vae", "mlp_vae"):
            raise GenlabError(
                f"method.kind=vae needs model.kind conv_vae (images) or mlp_vae (vectors), got {model_cfg.kind!r}"
            )
        if cfg.beta < 0 or cfg.kl_warmup < 0 or cfg.iw_samples < 1 or not 0 <= cfg.label_dropout < 1:
            raise GenlabError("method: needs beta >= 0, kl_warmup >= 0, iw_samples >= 1, 0 <= label_dropout < 1")
        self.cfg = cfg
        self.model = build_model(model_cfg)
        self.shape = data_shape(model_cfg)
        self.is_image = len(self.shape) == 3
        self.num_classes = model_cfg.num_classes or 0
        self.latent_shape = (model_cfg.latent_dim,)

    # -- the pieces of the bound

    def log_px_given_z(self, x: Tensor, z: Tensor, label: Tensor | None) -> Tensor:
        """log p(x|z, y) per sample (B,): discretized for images, a density for vectors."""
        mean, log_scale = self.model.decode(z, label)
        logp = discretized_gaussian_log_prob if self.is_image else gaussian_log_prob
        return logp(x, mean, log_scale).flatten(1).sum(1)

    def _encode(self, x: Tensor, label: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """(z, mu, logvar) with z = mu + sigma * eps drawn from torch's global generator."""
        mu, logvar = self.model.encode(x, label)
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu), mu, logvar

    def beta(self) -> float:
        """β_t = β·min(1, step / kl_warmup)."""
        ramp = min(1.0, self.step / self.cfg.kl_warmup) if self.cfg.kl_warmup else 1.0
        return self.cfg.beta * ramp

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        x = batch["x"]
        label = drop_labels(batch.get("label"), self.num_classes, self.cfg.label_dropout)
        z, mu, logvar = self._encode(x, label)
        recon, kl = self.log_px_given_z(x, z, label), kl_to_standard(mu, logvar)
        dim = x[0].numel()
        loss = (-recon + self.beta() * kl).mean() / dim
        elbo = (recon - kl).detach()
        logs = {"loss": loss.detach(), "recon": -recon.detach().mean(), "kl": kl.detach().mean(), "elbo": elbo.mean()}
        if self.is_image:
            logs["bits_per_dim"] = -elbo.mean() / (dim * math.log(2))
        return loss, logs

    @torch.no_grad()
    def log_likelihood(self, x: Tensor, cond: Tensor | None = None, *, stats: dict | None = None, **opts) -> Tensor:
        """ELBO (K = 1) or the K-sample importance-weighted bound on log p(x | y), nats, (B,); y = None: log p(x)."""
        no_options(self, opts)
        x, label, k = x.to(self.device), None if cond is None else cond.to(self.device), self.cfg.iw_samples
        if k == 1:
            z, mu, logvar = self._encode(x, label)
            return self.log_px_given_z(x, z, label) - kl_to_standard(mu, logvar)
        xs = x.repeat(k, *([1] * (x.dim() - 1)))  # (K·B, ...), copy k of sample b at row k·B + b
        ls = None if label is None else label.repeat(k)
        z, mu, logvar = self._encode(xs, ls)
        log_q = gaussian_log_prob(z, mu, 0.5 * logvar).sum(1)
        log_prior = gaussian_log_prob(z, torch.zeros_like(z), torch.zeros_like(z)).sum(1)
        log_w = (self.log_px_given_z(xs, z, ls) + log_prior - log_q).view(k, x.shape[0])  # (K, B)
        return torch.logsumexp(log_w, 0) - math.log(k)

    # -- the latent interface (also used by `genlab interpolate`)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """z ~ N(0, I), (n, latent_dim)."""
        return randn((n, *self.latent_shape), generator=generator, device=self.device)

    @torch.no_grad()
    def decode(self, z: Tensor, cond: Tensor | None = None, *, settings: SampleSettings = DEFAULT_SETTINGS) -> Tensor:
        """The decoder mean at z (images clamped to [-1, 1]); cond None = the null class (unconditional)."""
        label = cond
        if label is not None:
            label = label.to(z.device)
        mean, _ = self.model.decode(z, label)
        return mean.clamp(-1, 1) if self.is_image else mean

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        cond: Tensor | None = None,
        settings: SampleSettings = DEFAULT_SETTINGS,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
    ) -> Samples:
        """decode(z) for z ~ N(0, I): the decoder mean, not a draw of pixel noise (1 network evaluation)."""
        return Samples(self.decode(self.sample_latent(n, generator), cond), 1, self.sampled_by)
