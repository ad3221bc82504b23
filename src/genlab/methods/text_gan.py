"""Text-conditional GAN: conditioning augmentation (StackGAN, Zhang et al. 2017) and a matching-aware projection
discriminator (GAN-CLS, Reed et al. 2016), on the GAN networks of genlab.models.gan.

Text: e = pooled / |pooled| (B, E), the frozen packaged encoder's sentence vector (MiniLM: E = 384) at unit norm,
as a one-hot label is for the class-conditional GAN.
Conditioning augmentation: (mu, log sigma^2) = Linear(sqrt(E) e) (B, 2K), e read at unit RMS so that mu starts
at the scale of the noise, not E^-1/2 below it; c = mu + sigma * eps, eps ~ N(0, I) (B, K):
G sees a neighbourhood of each caption rather than one point, so few distinct captions still cover a smooth
conditioning manifold; G's loss adds kl_weight * KL(N(mu, sigma^2) || N(0, I)),
KL = 1/2 sum_k (mu_k^2 + sigma_k^2 - 1 - log sigma_k^2) per caption, averaged over the batch.
G(z, c): the DCGAN or style generator reading [z, c]. D(x, e) = psi(phi(x)) + <phi(x), W e> (projection,
spectral norm on W as on every D layer).
Matching-aware D loss: (real, its caption) is real; (fake, caption) and (real, another caption) are fake,
  L_D = -log D(x, e) - (1 - w) log(1 - D(G(z, c), e)) - w log(1 - D(x, e'))
with w = mismatch_weight (Reed et al.: 1/2). e' comes from `mismatched`: a permutation of the batch's captions
under which no image keeps its own caption nor an identical string (captions repeat in procedural data); a row
that cannot be re-paired (one caption holds more than half the batch) is left out of the mismatch term.
G's loss: the GAN's (non-saturating by default) on D(G(z, c), e), plus the KL term. No guidance, one pass per sample.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import genlab.methods.latent as latent
from genlab.constraints import NonNegFloat, Pattern, PositiveInt, Probability
from genlab.errors import GenlabError
from genlab.methods.base import Method, randn
from genlab.methods.gan import disc_term, frozen, gen_loss, r1_penalty
from genlab.models import data_shape
from genlab.models.gan import GAN
from genlab.settings import DEFAULT_SETTINGS, Callback, Samples, SampleSettings


@dataclass
class TextGANConfig:
    kind: str = "text_gan"
    # a packaged genlab.text encoder (its pooled sentence vector conditions G and D)
    text_encoder: Annotated[str, Pattern(r"[a-z0-9_]+", "a packaged encoder name such as 'minilm'")] = "minilm"
    loss: Literal["non_saturating", "minimax", "hinge"] = "non_saturating"
    cond_dim: PositiveInt = 128  # K, the width of the augmented condition c
    # weight of KL(N(mu, sigma^2) || N(0, I)) (nats per caption) in G's loss; StackGAN's 1 on the per-dimension
    # mean is 1/K here
    kl_weight: NonNegFloat = 0.01
    mismatch_weight: Probability = 0.5  # w: share of D's fake term given to (real image, mismatched caption)
    r1_gamma: NonNegFloat = 0.0  # R1 on (real, matching caption); 0 disables


class ConditioningAugmentation(nn.Module):
    """e (B, E) -> (mu, log sigma^2) (B, K) each by one linear map."""

    def __init__(self, text_dim: int, cond_dim: int):
        super().__init__()
        self.proj = nn.Linear(text_dim, 2 * cond_dim)

    def forward(self, e: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.proj(e).chunk(2, dim=1)  # (B, K) each
        return mu, logvar.clamp(-10, 10)  # sigma in [e^-5, e^5]: exp never overflows


def augmentation_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per row (B,) in nats."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)


def mismatched(texts: list[str], generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """A permutation perm (B,) of the batch's rows and ok (B,) bool, ok[i] = texts[perm[i]] != texts[i].

    The rows in random order are grouped by caption (groups in random order), and each takes the caption m places
    further round that cycle, m = the largest group: two rows m apart never share a group when 2m <= B, so then
    every row gets another caption (ok all True); else the rows that could not are marked not ok."""
    n = len(texts)
    groups: dict[str, list[int]] = {}
    for i in torch.randperm(n, generator=generator).tolist():
        groups.setdefault(texts[i], []).append(i)
    keys = list(groups)
    cycle = [i for k in torch.randperm(len(keys), generator=generator).tolist() for i in groups[keys[k]]]
    shift = max(len(g) for g in groups.values())
    perm = [0] * n
    for pos, i in enumerate(cycle):
        perm[i] = cycle[(pos + shift) % n]
    ok = [texts[p] != t for p, t in zip(perm, texts)]
    return torch.tensor(perm, dtype=torch.long), torch.tensor(ok, dtype=torch.bool)


class TextGANMethod(Method):
    sampled_by = "the generator (one pass)"
    takes_prompts = True

    def __init__(self, cfg: TextGANConfig, model_cfg):
        super().__init__()
        if model_cfg.kind not in ("dcgan", "stylegan"):
            raise GenlabError(f"method.kind=text_gan needs model.kind dcgan or stylegan, got {model_cfg.kind!r}")
        encoder = latent.text_encoder(cfg.text_encoder)  # frozen, shared, never in the checkpoint
        self.cfg = cfg
        model_cfg = dataclasses.replace(model_cfg, num_classes=0)  # captions, not labels, condition it
        self.nets = GAN(model_cfg, cond_dim=cfg.cond_dim, disc_cond_dim=encoder.dim)  # G reads c, D projects on e
        self.augment = ConditioningAugmentation(encoder.dim, cfg.cond_dim)
        self.shape = data_shape(model_cfg)
        self.latent_shape = (model_cfg.latent_dim,)
        object.__setattr__(self, "text_encoder", encoder)  # held outside the module tree (see text.base)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return self.shape

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        gen = [*self.nets.generator.parameters(), *self.augment.parameters()]
        return {"disc": list(self.nets.discriminator.parameters()), "gen": gen}

    # -- text

    def embed_text(self, texts: list[str], device) -> Tensor:
        """e (B, E): the encoder's pooled vectors at unit L2 norm."""
        return F.normalize(self.text_encoder.encode(list(texts)).pooled.to(device), dim=1)

    def condition(self, e: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(c, mu, logvar), c = mu + sigma * eps (B, K) with eps from `generator` (None: the global RNG)."""
        mu, logvar = self.augment(e * e.shape[1] ** 0.5)  # unit-norm e read at unit RMS
        eps = randn(tuple(mu.shape), generator=generator, device=mu.device).to(mu.dtype)
        return mu + (0.5 * logvar).exp() * eps, mu, logvar

    # -- learning

    def loss(self, batch: dict, group: str) -> tuple[Tensor, dict]:
        if "text" not in batch:
            raise GenlabError("method.kind=text_gan needs captioned data (e.g. data.kind=shapes)")
        x, texts = batch["x"], batch["text"]
        e = self.embed_text(texts, x.device)  # (B, E)
        z = randn((x.shape[0], *self.latent_shape), generator=None, device=x.device)  # (B, L)
        if group == "disc":
            return self._disc_loss(x, z, e, texts)
        if group == "gen":
            c, mu, logvar = self.condition(e)
            with frozen(self.nets.discriminator) as disc:
                fake = disc(self.nets.generator(z, c), e)  # (B,) logits
            adversarial = gen_loss(self.cfg.loss, fake)
            kl = augmentation_kl(mu, logvar).mean()
            loss = adversarial + self.cfg.kl_weight * kl
            return loss, {"loss/gen": loss.detach(), "gen_adv": adversarial.detach(), "kl": kl.detach()}
        raise GenlabError(f"the text GAN method has optimizer groups 'disc' and 'gen', not {group!r}")

    def _disc_loss(self, x: Tensor, z: Tensor, e: Tensor, texts: list[str]) -> tuple[Tensor, dict]:
        with torch.no_grad():
            fake_x = self.nets.generator(z, self.condition(e)[0])  # (B, C, H, W), no graph into G
        disc, kind, w = self.nets.discriminator, self.cfg.loss, self.cfg.mismatch_weight
        perm, ok = mismatched(texts)
        perm, ok = perm.to(x.device), ok.to(x.device)
        x = x.detach().requires_grad_(self.cfg.r1_gamma > 0)
        real, fake = disc(x, e), disc(fake_x, e)  # (B,) logits each
        # real images with another caption (B',); with none to re-pair the fake term takes the whole weight
        wrong = disc(x[ok], e[perm[ok]]) if ok.any() else fake
        loss = (
            disc_term(kind, real, real=True).mean()
            + (1 - w) * disc_term(kind, fake, real=False).mean()
            + w * disc_term(kind, wrong, real=False).mean()
        )
        info = {
            "loss/disc": loss.detach(),
            "d_real": torch.sigmoid(real).mean().detach(),
            "d_fake": torch.sigmoid(fake).mean().detach(),
            "d_mismatch": torch.sigmoid(wrong).mean().detach(),
        }
        if self.cfg.r1_gamma > 0:
            penalty = r1_penalty(real, x)
            loss = loss + 0.5 * self.cfg.r1_gamma * penalty
            info["r1"] = penalty.detach()
        return loss, info

    # -- sampling

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        cond: list[str] | None = None,
        settings: SampleSettings = DEFAULT_SETTINGS,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
    ) -> Samples:
        """n images (n, C, H, W) in [-1, 1] for n prompts (None: latent.DEFAULT_PROMPTS in blocks), one G pass;
        z and the augmentation noise come from `generator`."""
        if isinstance(cond, latent.Prompts):
            raise GenlabError(
                "a text_gan run has no classifier-free guidance, through which negative prompts act: drop --negative"
            )
        prompts = latent.DEFAULT_PROMPTS
        texts = [prompts[i * len(prompts) // n] for i in range(n)] if cond is None else list(cond)
        if len(texts) != n or not all(isinstance(t, str) for t in texts):
            raise GenlabError(f"give one prompt (a string) per image: got {len(texts)} items for n={n}")
        z = randn((n, *self.latent_shape), generator=generator, device=self.device)  # (n, L)
        c = self.condition(self.embed_text(texts, self.device), generator)[0]  # (n, K)
        return Samples(self.nets.generator(z, c), 1, self.sampled_by)
