"""Gaussian mixture fitted by expectation-maximisation: the classical baseline (Dempster, Laird & Rubin 1977).

p(x | y) = Σ_k π_{y,k} N(x; μ_k, Σ_k) over the K components of class y (one mixture per class, or one for all),
p(x) = Σ_y p(y) p(x | y). E-step: responsibilities r_nk ∝ π_k N(x_n; μ_k, Σ_k) within x_n's class; the batch
statistics Σ_n r_nk, Σ_n r_nk x_n, Σ_n r_nk x_n x_nᵀ (diagonal: x_n²) are summed by the trainer over micro-batches
and processes; M-step: running statistics s ← (1 − ρ)s + ρ·ŝ with ρ = the trainer's learning rate, then
π, μ, Σ from s (+ min_variance on the diagonal). ρ = 1 on the full data set is classical EM; ρ < 1 on
mini-batches is online EM (Cappé & Moulines 2009).

Initialisation (the first update), a function of the global batch only, so that it is identical on every rank
and for any split into micro-batches and processes: each point x goes to bucket h(x) mod B of its class, h an
integer hash of x on the 8-bit grid (vectors: on a 2⁻¹⁶ grid), and the statistics are per-bucket counts and sums
(additive); k-means++ (Arthur & Vassilvitskii 2007) over the bucket means, weighted by their counts, with a
fixed generator, picks each class's K means; every component starts with its class's covariance and the weight
of the buckets nearest to it. EM proper starts at the second update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from genlab.constraints import PositiveFloat, PositiveInt
from genlab.errors import GenlabError
from genlab.methods.base import Method, no_options
from genlab.methods.discretized import discretized_gaussian_log_prob
from genlab.models import data_shape
from genlab.settings import DEFAULT_SETTINGS, Callback, Samples, SampleSettings

COVARIANCES = ("diag", "full")


@dataclass
class GMMConfig:
    kind: str = "gmm"
    components: PositiveInt = 10  # K, per class when per_class and the data is labelled
    covariance: Literal["diag", "full"] = "diag"  # COVARIANCES
    per_class: bool = True  # one mixture per class (conditional sampling) when the data has labels
    min_variance: PositiveFloat = 1e-3  # added to every variance (keeps constant pixels finite)


class GMMMethod(Method):
    sampled_by = "ancestral sampling (closed form)"

    def __init__(self, cfg: GMMConfig, model_cfg):
        super().__init__()
        if model_cfg.kind != "none":
            raise GenlabError(f"method.kind=gmm has no network: set model.kind: none (got {model_cfg.kind!r})")
        if cfg.covariance not in COVARIANCES or cfg.components < 1 or cfg.min_variance <= 0:
            raise GenlabError("method: gmm needs covariance diag|full, components >= 1 and min_variance > 0")
        self.cfg = cfg
        self.shape = data_shape(model_cfg)
        self.is_image = len(self.shape) == 3
        self.num_classes = model_cfg.num_classes or 0
        groups = self.num_classes if cfg.per_class and self.num_classes else 1
        n, d, k = groups * cfg.components, math.prod(self.shape), cfg.components
        second = (n, d, d) if cfg.covariance == "full" else (n, d)
        # an exact image likelihood needs per-dimension bins: only the diagonal mixture has it
        self.likelihood = "exact" if cfg.covariance == "diag" or not self.is_image else None
        f64 = {"dtype": torch.float64}
        self.register_buffer("initialized", torch.zeros((), **f64))
        self.register_buffer("class_log_prior", torch.full((groups,), -math.log(groups), **f64))
        self.register_buffer("log_weights", torch.full((groups, k), -math.log(k), **f64))
        self.register_buffer("means", torch.zeros(n, d, **f64))
        eye = torch.eye(d, **f64).expand(n, d, d) if cfg.covariance == "full" else torch.ones(n, d, **f64)
        self.register_buffer("covariances", eye.clone())  # (n, d) variances or (n, d, d) matrices
        for name, shape in (("s_count", (groups,)), ("s0", (n,)), ("s1", (n, d)), ("s2", second)):
            self.register_buffer(name, torch.zeros(shape, **f64))  # running normalised statistics

    def optimizer_groups(self) -> dict:
        """No gradients: the trainer calls statistics() and update() instead (see methods.base)."""
        return {}

    # -- densities

    def _groups(self, label: Tensor | None, b: int, device) -> Tensor:
        if label is None or len(self.s_count) == 1:
            return torch.zeros(b, dtype=torch.long, device=device)
        return label.to(device)

    def component_log_prob(self, x: Tensor) -> Tensor:
        """log N(x_n; μ_k, Σ_k), (B, n_components); x is (B, D) float64."""
        if self.cfg.covariance == "diag":  # Σ_d (x − μ)²/v expanded into matrix products (float64)
            inv = 1.0 / self.covariances  # (n, D)
            quad = x**2 @ inv.T - 2 * x @ (self.means * inv).T + (self.means**2 * inv).sum(1)  # (B, n)
            const = torch.log(self.covariances).sum(1) + x.shape[1] * math.log(2 * math.pi)  # (n,)
            return -0.5 * (quad + const)
        diff = x[:, None, :] - self.means[None]  # (B, n, D)
        chol = torch.linalg.cholesky(self.covariances)  # (n, D, D)
        sol = torch.linalg.solve_triangular(chol[None], diff[..., None], upper=False)[..., 0]  # (B, n, D)
        log_det = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # (n,)
        return -0.5 * (sol.pow(2).sum(-1) + log_det + x.shape[1] * math.log(2 * math.pi))

    def _joint(self, comp: Tensor, label: Tensor | None) -> Tensor:
        """log π_{y,k} + comp per component, −inf outside the point's class; y = None mixes classes by p(y)."""
        k = self.cfg.components
        if label is None:
            return comp + (self.log_weights + self.class_log_prior[:, None]).flatten()[None]
        owner = torch.arange(comp.shape[1], device=comp.device) // k  # class of each component
        mine = owner[None] == self._groups(label, comp.shape[0], comp.device)[:, None]  # (B, n)
        return torch.where(mine, comp + self.log_weights.flatten()[None], torch.full_like(comp, -math.inf))

    @torch.no_grad()
    def log_likelihood(self, x: Tensor, cond: Tensor | None = None, *, stats: dict | None = None, **opts) -> Tensor:
        """log p(x | y) (log p(x) for cond None) in nats, (B,): images the exact mass of the 8-bit bins."""
        no_options(self, opts)
        label = cond
        if self.likelihood is None:
            raise GenlabError("a full-covariance GMM has no exact 8-bit image likelihood: use covariance: diag")
        x = x.flatten(1).double().to(self.means.device)
        if self.is_image:
            log_scale = 0.5 * torch.log(self.covariances)[None]  # (1, n, D)
            comp = discretized_gaussian_log_prob(x[:, None], self.means[None], log_scale).sum(-1)  # (B, n)
        else:
            comp = self.component_log_prob(x)
        return torch.logsumexp(self._joint(comp, label), dim=1)

    # -- EM on the trainer: statistics() per micro-batch, summed, then update()

    @torch.no_grad()
    def statistics(self, batch: dict) -> dict[str, Tensor]:
        """E-step sums over the batch (before the first update: the bucket sums that seed the mixture)."""
        x = batch["x"].flatten(1).double()
        label = batch.get("label")
        groups = self._groups(label, len(x), x.device)
        joint = self._joint(self.component_log_prob(x), label)  # (B, n)
        out = {
            "n": torch.tensor(float(len(x)), dtype=x.dtype, device=x.device),
            "s_count": torch.nn.functional.one_hot(groups, len(self.s_count)).sum(0).double(),
            "log_lik": torch.logsumexp(joint, dim=1).sum(),
        }
        if not self.initialized:
            return {**out, **self._seed_statistics(x, groups)}
        resp = torch.softmax(joint, dim=1)
        second = torch.einsum("bn,bd,be->nde", resp, x, x) if self.cfg.covariance == "full" else resp.T @ x**2
        return {**out, "s0": resp.sum(0), "s1": resp.T @ x, "s2": second}

    def _buckets(self) -> int:
        """Hash buckets per class: about 4M numbers of bucket sums in all, between 256 and 8192 per class."""
        return max(256, min(8192, 2**22 // (len(self.s_count) * self.means.shape[1])))

    def _seed_statistics(self, x: Tensor, groups: Tensor) -> dict[str, Tensor]:
        """Per-(class, bucket) counts and sums of x, and per-class second moments (all additive)."""
        grid = (x + 1) * 127.5 if self.is_image else x * 2.0**16
        coef = torch.randint(1, 2**31 - 1, (x.shape[1],), generator=torch.Generator().manual_seed(0))
        h = (grid.round().long() * coef.to(x.device)).sum(1)  # exact integer arithmetic (wraps identically)
        nb = self._buckets()
        slot = groups * nb + torch.remainder(h, 2**31 - 1) % nb  # (B,)
        onehot = torch.nn.functional.one_hot(slot, len(self.s_count) * nb).to(x.dtype)  # (B, G·nb)
        member = torch.nn.functional.one_hot(groups, len(self.s_count)).to(x.dtype)  # (B, G)
        second = torch.einsum("bg,bd,be->gde", member, x, x) if self.cfg.covariance == "full" else member.T @ x**2
        return {"b_count": onehot.sum(0), "b_sum": onehot.T @ x, "c_sum": member.T @ x, "c_sq": second}

    @torch.no_grad()
    def update(self, stats: dict[str, Tensor], *, rate: float) -> dict[str, float]:
        """M-step from running statistics s ← (1 − ρ)s + ρ·stats/n; ρ = rate (the first update seeds instead)."""
        if not 0 < rate <= 1:
            raise GenlabError(
                f"gmm: train.lr is the EM step size and must be in (0, 1], got {rate}: use "
                "lr: 1.0 (classical EM) with schedule: constant and warmup_steps: 0"
            )
        n = float(stats["n"])
        if self.initialized:
            for name in ("s_count", "s0", "s1", "s2"):
                getattr(self, name).mul_(1 - rate).add_(stats[name].to(self.s0) / n, alpha=rate)
        else:
            self._seed(stats, n)
        self._m_step()
        self.initialized.fill_(1.0)
        return {"loss": -float(stats["log_lik"]) / (n * self.means.shape[1])}

    def _seed(self, stats: dict[str, Tensor], n: float) -> None:
        """Running statistics of the seeded mixture: k-means++ means over the bucket means, class covariances."""
        k, nb, d = self.cfg.components, self._buckets(), self.means.shape[1]
        gen = torch.Generator().manual_seed(0)
        counts = stats["b_count"].double().cpu().view(-1, nb)  # (G, nb)
        sums = stats["b_sum"].double().cpu().view(-1, nb, d)
        self.s_count.copy_(stats["s_count"].to(self.s0) / n)
        for g in range(len(self.s_count)):
            total = float(stats["s_count"][g])
            if total == 0:
                continue
            live = counts[g] > 0
            w, pts = counts[g][live], sums[g][live] / counts[g][live][:, None]  # (P,), (P, D)
            seeds = pts[torch.multinomial(w, 1, generator=gen)]  # (1, D)
            for _ in range(k - 1):
                d2 = torch.cdist(pts, seeds).min(1).values ** 2 + 1e-12  # (P,)
                seeds = torch.cat([seeds, pts[torch.multinomial(w * d2, 1, generator=gen)]])
            share = torch.zeros(k, dtype=torch.float64).index_add_(0, torch.cdist(pts, seeds).argmin(1), w)
            mean = stats["c_sum"][g].to(self.s0) / total
            second = stats["c_sq"][g].to(self.s0) / total  # E[x²] (diag) or E[x xᵀ] (full)
            cov = second - (mean[:, None] * mean[None] if self.cfg.covariance == "full" else mean**2)
            s0 = (share / total * self.s_count[g].cpu()).to(self.s0)  # (K,)
            mu = seeds.to(self.s0)  # (K, D)
            outer = mu[:, :, None] * mu[:, None] if self.cfg.covariance == "full" else mu**2
            rows = slice(g * k, (g + 1) * k)
            self.s0[rows] = s0
            self.s1[rows] = s0[:, None] * mu
            self.s2[rows] = s0.view(-1, *[1] * (outer.dim() - 1)) * (cov[None] + outer)

    def _m_step(self) -> None:
        """π, μ, Σ from the running statistics; components that own no data keep their parameters."""
        tiny = 1e-12
        s0 = self.s0.clamp_min(tiny)
        self.class_log_prior.copy_(torch.log(self.s_count.clamp_min(tiny) / self.s_count.sum()))
        w = s0.view_as(self.log_weights)
        self.log_weights.copy_(torch.log(w / w.sum(1, keepdim=True)))
        means = self.s1 / s0[:, None]  # (n, D)
        if self.cfg.covariance == "diag":
            cov = (self.s2 / s0[:, None] - means**2).clamp_min(0) + self.cfg.min_variance
        else:
            eye = torch.eye(means.shape[1], dtype=means.dtype, device=means.device)
            cov = self.s2 / s0[:, None, None] - means[:, :, None] * means[:, None, :] + self.cfg.min_variance * eye
        alive = self.s0 > tiny
        self.means[alive] = means[alive]
        self.covariances[alive] = cov[alive]

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
        """Class (from p(y) when label is None), then component, then x ~ N(μ_k, Σ_k); no network (0 NFE)."""
        where = {"generator": generator, "device": generator.device if generator is not None else self.means.device}
        label = cond
        if label is None:
            groups = torch.multinomial(
                self.class_log_prior.exp().to(where["device"]), n, replacement=True, generator=generator
            )
        else:
            groups = self._groups(label, n, where["device"])
        comp = torch.multinomial(self.log_weights.exp().to(where["device"])[groups], 1, generator=generator)[:, 0]
        comp = (groups * self.cfg.components + comp).to(self.means.device)
        eps = torch.randn(n, self.means.shape[1], dtype=torch.float64, **where).to(self.means.device)
        if self.cfg.covariance == "diag":
            x = self.means[comp] + self.covariances[comp].sqrt() * eps
        else:
            x = self.means[comp] + (torch.linalg.cholesky(self.covariances)[comp] @ eps[:, :, None])[:, :, 0]
        x = x.float().view(n, *self.shape)
        return Samples(x.clamp(-1, 1) if self.is_image else x, 0, self.sampled_by)
