"""CycleGAN (Zhu et al. 2017): unpaired translation between image domains A and B by cycle consistency.

Two generators G: A -> B and F: B -> A (pix2pix U-Nets, models.patchgan) and two unconditional PatchGANs, D_B on
B and D_A on A, with the least-squares GAN loss (Mao et al. 2017), as the paper does. 'gen' group (G and F):
    L = (D_B(G(a)) − 1)² + (D_A(F(b)) − 1)²                                  (means over patches)
      + λ (|F(G(a)) − a| + |G(F(b)) − b|)                                    cycle, λ = 10 (paper eq. 2)
      + λ_id λ (|G(b) − b| + |F(a) − a|)                                     identity, λ_id = 0.5 (paper sec. 5.2)
'disc' group (D_A and D_B): ½[(D(real) − 1)² + D(fake)²] for each, where the fakes come from an image history
of the last `history` = 50 fakes per discriminator (Shrivastava et al. 2017): once it is full, each new fake is
shown with probability ½, otherwise a stored one is shown and the new one takes its place. The history is kept in
module buffers (saved in checkpoints) and its coin flips come from torch's global generator, which the trainer
seeds per step, so `genlab train --resume` continues bit-identically. With several processes each keeps its own
history, as in the reference implementation (the resumed one is rank 0's).
Data: `data.kind unpaired` (batches carry "x" from A and "y" from B; see genlab.data.unpaired for the domains).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from genlab.constraints import Count, NonNegFloat
from genlab.data.base import Dataset
from genlab.errors import GenlabError
from genlab.methods.base import Method
from genlab.methods.gan import frozen
from genlab.methods.pix2pix import adversarial_d_loss, adversarial_g_loss
from genlab.metrics.image import psnr
from genlab.models.patchgan import PatchGAN
from genlab.settings import DEFAULT_SETTINGS, Samples, SampleSettings


@dataclass
class CycleGANConfig:
    kind: str = "cyclegan"
    cycle_weight: NonNegFloat = 10.0  # λ
    identity_weight: NonNegFloat = 0.5  # λ_id, a fraction of λ; 0 disables the identity loss
    history: Count = 50  # fakes kept per discriminator; 0: D sees only the newest fakes
    classifier_steps: Count = 200  # training steps of the held-out domain classifier (heldout_metrics); 0: none


class HistoryBuffer(nn.Module):
    """The last `size` fakes shown to a discriminator (see the module docstring), as buffers."""

    def __init__(self, size: int, shape: tuple[int, ...]):
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, *shape))  # (size, C, H, W)
        self.register_buffer("count", torch.zeros((), dtype=torch.long))  # how many slots are filled

    @torch.no_grad()
    def query(self, fakes: Tensor) -> Tensor:
        """The fakes (B, C, H, W) D is shown: while filling, the new ones (stored); once full, each is swapped with
        probability ½ for a uniformly chosen stored fake, which it replaces in the history."""
        if self.size == 0:
            return fakes
        coins = torch.rand(len(fakes)).tolist()  # global CPU generator: the same draws on any device
        slots = torch.randint(self.size, (len(fakes),)).tolist()
        shown = []
        for fake, coin, slot in zip(fakes, coins, slots):
            filled = int(self.count)
            if filled < self.size:
                self.images[filled] = fake
                self.count += 1
                shown.append(fake)
            elif coin < 0.5:
                shown.append(self.images[slot].to(fake.dtype, copy=True))  # a copy: the slot is overwritten next
                self.images[slot] = fake
            else:
                shown.append(fake)
        return torch.stack(shown)  # (B, C, H, W)


def l1(x: Tensor, y: Tensor) -> Tensor:
    return (x - y).abs().mean()


class CycleGANMethod(Method):
    sampled_by = "translating an input image (one U-Net pass)"
    image_task = "translate"

    def __init__(self, cfg: CycleGANConfig, model_cfg):
        super().__init__()
        if model_cfg.kind != "patchgan":
            raise GenlabError(f"method.kind=cyclegan needs model.kind=patchgan, got {model_cfg.kind!r}")
        self.cfg = cfg
        self.shape = (model_cfg.in_channels, model_cfg.image_size, model_cfg.image_size)
        self.ab = PatchGAN(model_cfg, conditional=False)  # generator G: A -> B, discriminator D_B on B
        self.ba = PatchGAN(model_cfg, conditional=False)  # generator F: B -> A, discriminator D_A on A
        self.history_a = HistoryBuffer(cfg.history, self.shape)  # fakes F(b) shown to D_A
        self.history_b = HistoryBuffer(cfg.history, self.shape)  # fakes G(a) shown to D_B

    @property
    def image_shape(self) -> tuple[int, ...]:
        """The shape of one output image (C, H, W)."""
        return self.shape

    @property
    def source_shape(self) -> tuple[int, ...]:
        """The shape of one input image (C, H, W) (a grey image (1, H, W) is also taken)."""
        return self.shape

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        """G and F first (the reference order), then both discriminators on fakes of the updated generators."""
        return {
            "gen": [*self.ab.generator.parameters(), *self.ba.generator.parameters()],
            "disc": [*self.ab.discriminator.parameters(), *self.ba.discriminator.parameters()],
        }

    def loss(self, batch: dict, group: str) -> tuple[Tensor, dict]:
        if batch.get("y") is None:
            raise GenlabError("cyclegan trains on two unpaired domains: use data.kind unpaired (batches with 'y')")
        a, b = batch["x"], batch["y"]  # (B, C, H, W) each
        if group == "gen":
            terms = self.generator_terms(a, b)
            cfg = self.cfg
            loss = (
                terms["gan"]
                + cfg.cycle_weight * terms["cycle"]
                + cfg.identity_weight * cfg.cycle_weight * terms["identity"]
            )
            return loss, {"loss/gen": loss.detach(), **{k: v.detach() for k, v in terms.items()}}
        if group != "disc":
            raise GenlabError(f"cyclegan has optimizer groups 'gen' and 'disc', not {group!r}")
        with torch.no_grad():
            fake_b, fake_a = self.ab.generator(a), self.ba.generator(b)
        fake_b, fake_a = self.history_b.query(fake_b), self.history_a.query(fake_a)
        d_b = adversarial_d_loss("lsgan", self.ab.discriminator(b), self.ab.discriminator(fake_b))
        d_a = adversarial_d_loss("lsgan", self.ba.discriminator(a), self.ba.discriminator(fake_a))
        loss = d_a + d_b
        return loss, {"loss/disc": loss.detach(), "d_a": d_a.detach(), "d_b": d_b.detach()}

    def generator_terms(self, a: Tensor, b: Tensor) -> dict[str, Tensor]:
        """The unweighted terms of G and F's loss: 'gan' (both directions), 'cycle' and 'identity' (L1 means)."""
        g, f = self.ab.generator, self.ba.generator
        fake_b, fake_a = g(a), f(b)  # (B, C, H, W) each
        with frozen(self.ab.discriminator) as d_b, frozen(self.ba.discriminator) as d_a:
            gan = adversarial_g_loss("lsgan", d_b(fake_b)) + adversarial_g_loss("lsgan", d_a(fake_a))
        terms = {"gan": gan, "cycle": l1(f(fake_b), a) + l1(g(fake_a), b)}
        terms["identity"] = l1(g(b), b) + l1(f(a), a) if self.cfg.identity_weight > 0 else gan.new_zeros(())
        return terms

    # -- image-to-image: A -> B by G

    def degrade(self, x: Tensor, *, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """{"source": x}: an image of domain A is the input itself (unpaired: there is no degradation to undo)."""
        return {"source": x}

    def _check(self, source: Tensor) -> Tensor:
        c, h, w = self.shape
        if source.dim() != 4 or source.shape[1] not in (1, c) or tuple(source.shape[2:]) != (h, w):
            raise GenlabError(
                f"translate needs images (B, {c}, {h}, {w}) in [-1, 1], got {tuple(source.shape)}: pass --resize"
            )
        return source.to(self.device).expand(-1, c, -1, -1)  # a grey image as R = G = B

    @torch.no_grad()
    def translate(
        self,
        source: Tensor,
        *,
        mask: Tensor | None = None,
        settings: SampleSettings = DEFAULT_SETTINGS,
        generator: torch.Generator | None = None,
    ) -> Samples:
        """G(a): images of domain B (B, C, H, W) for images a of domain A; dropout (if any) from `generator`."""
        if mask is not None:
            raise GenlabError("translate takes no mask: drop --mask")
        return Samples(self.ab.generator(self._check(source), generator=generator), 1, self.sampled_by)

    @torch.no_grad()
    def translate_back(self, source: Tensor, *, generator: torch.Generator | None = None) -> Samples:
        """F(b): images of domain A for images b of domain B."""
        return Samples(self.ba.generator(self._check(source), generator=generator), 1, self.sampled_by)

    @torch.no_grad()
    def preview(self, batch: dict, *, generator: torch.Generator | None = None) -> Tensor:
        """Per row: a | G(a) | F(G(a)) | b | F(b) | G(F(b)), as (B, 6, C, H, W)."""
        a, b = batch["x"], batch["y"]
        g = lambda x: self.translate(x, generator=generator).x  # noqa: E731
        f = lambda x: self.translate_back(x, generator=generator).x  # noqa: E731
        fake_b, fake_a = g(a), f(b)
        return torch.stack([a, fake_b, f(fake_b), b, fake_a, g(fake_a)], 1)

    def heldout_metrics(self, data, *, seed: int = 0, n: int | None = None, settings=None) -> dict[str, float]:
        """The default translation metrics of G (psnr_db / ssim against the input a: there is no paired truth), with
        FD measured against real B instead (see `fd_to_domain`), plus cycle PSNR A->B->A and B->A->B and a
        domain-classifier score of G(a) and F(b) (see `domain_scores`)."""
        if data.y is None:
            raise GenlabError("cyclegan is measured on two unpaired domains: use data.kind unpaired")
        out = {**super().heldout_metrics(data, seed=seed, n=n), "psnr_reference": "the input a (unpaired: no truth)"}
        n = min(n or 256, len(data))
        pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
        gen = torch.Generator().manual_seed(seed)
        a, b = data.x[pick].to(self.device), data.y[pick].to(self.device)
        fake_b, fake_a = self.translate(a, generator=gen).x, self.translate_back(b, generator=gen).x
        out["cycle_psnr_aba_db"] = float(psnr(self.translate_back(fake_b, generator=gen).x, a).mean())
        out["cycle_psnr_bab_db"] = float(psnr(self.translate(fake_a, generator=gen).x, b).mean())
        out.update(fd_to_domain(fake_b.cpu(), a.cpu(), b.cpu(), data.y, seed=seed))
        if self.cfg.classifier_steps:
            out.update(domain_scores(a, b, fake_b, fake_a, steps=self.cfg.classifier_steps, seed=seed))
        return out


def fd_to_domain(fake_b: Tensor, a: Tensor, b: Tensor, domain_b: Tensor, *, seed: int) -> dict:
    """{'fd': FD(G(a), b), 'fd_floor': FD(other held-out b, b), 'fd_input': FD(a, b), 'fd_features'} in genlab's
    photo-patch network (8x8 pixels while that asset is missing): how close the translations come to real B, beside
    real B's own floor and the untranslated inputs. b must be `domain_b`'s rows randperm(seed)[:n] (the floor
    takes the next n)."""
    from genlab.metrics.features import pixel_feature_net
    from genlab.metrics.image2image import fd_metrics, photo_feature_net

    try:
        net = photo_feature_net()
    except GenlabError:
        net = pixel_feature_net(b.shape[1], b.shape[-1])
    reference = Dataset(x=domain_b, name="photos")
    return {
        **fd_metrics(fake_b, b, reference, seed=seed, feature_net=net),
        "fd_input": fd_metrics(a, b, reference, seed=seed, feature_net=net)["fd"],
    }


def domain_classifier(channels: int) -> nn.Sequential:
    """A small CNN: images (B, C, H, W) -> (B,) logits of 'domain B' (against 'domain A')."""
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 1),
        nn.Flatten(0),
    )


def domain_scores(a: Tensor, b: Tensor, fake_b: Tensor, fake_a: Tensor, *, steps: int, seed: int) -> dict:
    """A domain classifier fitted (`steps` Adam steps, batch 64, seeded) on the first half of held-out real a (label
    0) and b (label 1), scored on the second half: its accuracy on real images ('domain_accuracy', the ceiling),
    and the fraction of translations it puts in their target domain: 'g_ab_in_b' for G(a), 'f_ba_in_a' for F(b)
    (real images of that domain: 'domain_accuracy'; a perfect translator reaches it, an identity scores ~0).
    It runs on the CPU (a few hundred small images), so the score is the same whatever device made the fakes."""
    a, b, fake_b, fake_a = (t.detach().float().cpu() for t in (a, b, fake_b, fake_a))
    half = min(len(a), len(b)) // 2
    if half < 2:
        return {}
    fit = torch.cat([a[:half], b[:half]])  # (2h, C, H, W)
    label = torch.cat([torch.zeros(half), torch.ones(half)])
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(seed)
        net = domain_classifier(a.shape[1])
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        for _ in range(steps):
            idx = torch.randint(len(fit), (min(64, len(fit)),), generator=gen)
            loss = nn.functional.binary_cross_entropy_with_logits(net(fit[idx]), label[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        is_b = lambda x: (net(x[half : 2 * half]) > 0).float()  # noqa: E731
        real = torch.cat([1 - is_b(a), is_b(b)])
        return {
            "domain_accuracy": float(real.mean()),
            "g_ab_in_b": float(is_b(fake_b).mean()),
            "f_ba_in_a": float((1 - is_b(fake_a)).mean()),
            "domain_classifier": f"small CNN, {steps} steps on {2 * half} held-out real images, scored on {2 * half}",
        }
