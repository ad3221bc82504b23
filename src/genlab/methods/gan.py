"""Generative adversarial networks (Goodfellow et al. 2014), two optimizer groups on the one trainer.

D step ('disc'): maximise E log D(x) + E log(1 - D(G(z))), i.e. minimise softplus(-l_real) + softplus(l_fake)
with D = sigmoid(l); the fake is made without a graph. G step ('gen'), through a frozen D, on l = logit(G(z)):
minimax E log(1 - D) = -softplus(l), whose derivative -sigmoid(l) vanishes when D rejects fakes (l -> -inf);
non-saturating -E log D = softplus(-l), derivative -sigmoid(-l) -> -1 there; hinge -l. Optional R1 penalty
(gamma/2) E |grad_x l_real|^2. Conditional: G(z, y), D(x, y) on the batch's labels.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.constraints import NonNegFloat
from genlab.errors import GenlabError
from genlab.methods.base import Method, randn
from genlab.models import build_model, data_shape
from genlab.settings import DEFAULT_SETTINGS, Callback, Samples, SampleSettings


@dataclass
class GANConfig:
    kind: str = "gan"
    loss: Literal["non_saturating", "minimax", "hinge"] = "non_saturating"
    r1_gamma: NonNegFloat = 0.0  # weight of the R1 penalty on real data (Mescheder et al. 2018); 0 disables


def disc_loss(kind: str, real: Tensor, fake: Tensor) -> Tensor:
    """D's loss from logits on real and fake images."""
    return disc_term(kind, real, real=True).mean() + disc_term(kind, fake, real=False).mean()


def disc_term(kind: str, logits: Tensor, *, real: bool) -> Tensor:
    """D's loss per sample (B,) on logits it should call real (-log D) or fake (-log(1 - D)); hinge: relu(1 -/+ l)."""
    sign = -1 if real else 1
    if kind == "hinge":
        return F.relu(1 + sign * logits)
    return F.softplus(sign * logits)


def gen_loss(kind: str, fake: Tensor) -> Tensor:
    """G's loss from D's logits on fakes."""
    if kind == "minimax":
        return -F.softplus(fake).mean()  # log(1 - sigmoid(l))
    if kind == "hinge":
        return -fake.mean()
    return F.softplus(-fake).mean()  # -log sigmoid(l)


@contextmanager
def frozen(module: nn.Module):
    """Run `module` without recording its parameters: gradients flow through it but never into it."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


class GANMethod(Method):
    sampled_by = "the generator (one pass)"
    has_latent = True

    def __init__(self, cfg: GANConfig, model_cfg):
        super().__init__()
        if model_cfg.kind not in ("dcgan", "stylegan"):
            raise GenlabError(f"method.kind=gan needs model.kind dcgan or stylegan, got {model_cfg.kind!r}")
        self.cfg = cfg
        self.nets = build_model(model_cfg)
        self.shape = data_shape(model_cfg)
        self.num_classes = model_cfg.num_classes or 0
        self.latent_shape = (model_cfg.latent_dim,)

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"disc": list(self.nets.discriminator.parameters()), "gen": list(self.nets.generator.parameters())}

    def loss(self, batch: dict, group: str) -> tuple[Tensor, dict]:
        x = batch["x"]
        label = batch.get("label") if self.num_classes else None
        z = self.sample_latent(x.shape[0])
        if group == "disc":
            return self._disc_loss(x, z, label)
        if group == "gen":
            with frozen(self.nets.discriminator) as disc:
                fake = disc(self.nets.generator(z, label), label)  # (B,) logits
            loss = gen_loss(self.cfg.loss, fake)
            return loss, {"loss/gen": loss.detach()}
        raise GenlabError(f"the GAN method has optimizer groups 'disc' and 'gen', not {group!r}")

    def _disc_loss(self, x: Tensor, z: Tensor, label: Tensor | None) -> tuple[Tensor, dict]:
        with torch.no_grad():
            fake_x = self.nets.generator(z, label)  # (B, C, H, W), no graph into G
        disc = self.nets.discriminator
        x = x.detach().requires_grad_(self.cfg.r1_gamma > 0)
        real, fake = disc(x, label), disc(fake_x, label)  # (B,) logits each
        loss = disc_loss(self.cfg.loss, real, fake)
        info = {
            "loss/disc": loss.detach(),
            "d_real": torch.sigmoid(real).mean().detach(),
            "d_fake": torch.sigmoid(fake).mean().detach(),
        }
        if self.cfg.r1_gamma > 0:
            penalty = r1_penalty(real, x)
            loss = loss + 0.5 * self.cfg.r1_gamma * penalty
            info["r1"] = penalty.detach()
        return loss, info

    # -- the latent interface (shared with the VAE): z ~ sample_latent, x = decode(z, label)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return randn((n, *self.latent_shape), generator=generator, device=self.device)

    def decode(self, z: Tensor, cond: Tensor | None = None, *, settings: SampleSettings = DEFAULT_SETTINGS) -> Tensor:
        """Images in [-1, 1] (n, C, H, W) for latents z (n, latent_dim)."""
        label = cond
        if self.num_classes and label is None:
            raise GenlabError("this GAN is class-conditional: pass a label")
        if not self.num_classes and label is not None:
            raise GenlabError("this GAN is unconditional: drop the label")
        return self.nets.generator(z, None if label is None else label.to(z.device))

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
        """n images from G (one network evaluation); a conditional G without labels draws them uniformly."""
        z = self.sample_latent(n, generator)
        if self.num_classes and cond is None:
            where = generator.device if generator is not None else z.device
            cond = torch.randint(self.num_classes, (n,), generator=generator, device=where).to(z.device)
        return Samples(self.decode(z, cond), 1, self.sampled_by)


def r1_penalty(logits: Tensor, x: Tensor) -> Tensor:
    """E |grad_x logit(x)|^2 on real images, differentiable (create_graph) so D can minimise it."""
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)  # (B, C, H, W)
    return grad.pow(2).flatten(1).sum(1).mean()
