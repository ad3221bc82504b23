"""Diffusion and flow matching on any Gaussian path, with any prediction target.

Training (CFM / L_simple generalised): t ~ time distribution, eps ~ N(0, I),
x_t = a·x + b·eps, loss = w(t)·‖net(c_in·x_t, t, label) − (c·x + d·eps)‖², with labels replaced by
the null class with probability `label_dropout` (classifier-free guidance training, Ho & Salimans
2022). c_in(t) = 1/√(a²σ_data² + b²) keeps the network input at unit scale on every path (EDM).
Sampling integrates the probability-flow ODE (or DDIM/ancestral) from the EMA weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from genlab.constraints import PositiveFloat, Probability
from genlab.errors import GenlabError
from genlab.likelihood import dequantize, log_likelihood
from genlab.methods.base import ODE_SETTINGS, Method, drop_labels, randn
from genlab.models import build_model, data_shape
from genlab.paths import TimeSampling, bcast, from_x_eps, get_path, loss_weight, sample_time, to_x_eps
from genlab.samplers import guided, sample
from genlab.settings import DEFAULT_SETTINGS, Callback, Samples, SampleSettings, StepInfo


@dataclass
class FlowConfig:
    kind: str = "flow"
    path: Literal["rectified", "vp_cosine", "vp_ddpm", "ve"] = "rectified"  # genlab.paths.PATHS
    target: Literal["x", "eps", "v", "flow"] = "flow"  # genlab.paths.TARGETS
    time: TimeSampling = field(default_factory=TimeSampling)
    loss_weight: Literal["uniform", "min_snr", "edm"] = "uniform"
    label_dropout: Probability = 0.1
    sigma_data: PositiveFloat = 0.5


class FlowMethod(Method):
    likelihood = "exact"
    sample_settings = ODE_SETTINGS
    has_latent = True

    def __init__(self, cfg: FlowConfig, model_cfg):
        super().__init__()
        self.cfg = cfg
        self.path = get_path(cfg.path)
        self.path.coefficients(torch.zeros(1), cfg.target)  # validates the target name early
        self.model = build_model(model_cfg)
        self.shape = data_shape(model_cfg)
        self.num_classes = model_cfg.num_classes or 0

    def net(self, x_t: Tensor, t: Tensor, label: Tensor | None) -> Tensor:
        """The raw prediction of `target` at (x_t, t)."""
        return self.model(self.scale_input(x_t, t), t, label)

    def scale_input(self, x_t: Tensor, t: Tensor) -> Tensor:
        """x_t scaled to unit variance for the network: x_t / sqrt(a(t)²·σ_data² + b(t)²)."""
        a, b = self.path.a(t), self.path.b(t)
        return x_t * bcast(torch.rsqrt(a**2 * self.cfg.sigma_data**2 + b**2), x_t)

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        x = batch["x"]
        t = sample_time(self.cfg.time, x.shape[0], device=x.device).to(x.dtype)
        eps = torch.randn_like(x)
        x_t = bcast(self.path.a(t), x) * x + bcast(self.path.b(t), x) * eps
        target = from_x_eps(self.path, self.cfg.target, t, x, eps)
        label = self._drop_labels(batch.get("label"))
        mse = (self.net(x_t, t, label) - target).pow(2).flatten(1).mean(1)
        w = loss_weight(self.cfg.loss_weight, self.path, self.cfg.target, t, sigma_data=self.cfg.sigma_data)
        loss = (w * mse).mean()
        return loss, {"loss": loss.detach()}

    def _drop_labels(self, label: Tensor | None) -> Tensor | None:
        """CFG label dropout (subclasses conditioned on other things, such as text, override this)."""
        return drop_labels(label, self.num_classes, self.cfg.label_dropout)

    # -- sampling

    def guidance_inputs(self, n: int, cond, device) -> tuple[Callable, Tensor | None, Tensor | None]:
        """(net(x_t, t, c), c, null c) for classifier-free guidance of n samples conditioned on `cond` (labels)."""
        if cond is None:
            return self.net, None, None
        if not self.num_classes:
            raise GenlabError("this run is unconditional: drop the label")
        label = torch.as_tensor(cond, device=device)
        return self.net, label, torch.full_like(label, self.num_classes)

    def prediction(self, n: int, cond, settings: SampleSettings) -> Callable:
        """`fn(x_t, t)` -> the (classifier-free guided) prediction of `target` for n samples conditioned on `cond`:
        what every sampler integrates (editing loops call it directly)."""
        net, c, null = self.guidance_inputs(n, cond, self.device)
        return guided(net, c, scale=settings.guidance_scale, null_cond=null, interval=settings.interval)

    def finish(self, x: Tensor) -> Tensor:
        """The sampler's output as data: images clamped to [-1, 1], vectors as they are (a latent method decodes)."""
        return x.clamp(-1, 1) if x.dim() == 4 else x

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        cond=None,
        settings: SampleSettings = DEFAULT_SETTINGS,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
        noise: Tensor | None = None,
        wrap: Callable[[Callable], Callable] | None = None,
        init: Tensor | None = None,
        strength: float = 1.0,
    ) -> Samples:
        """n samples from the initial `noise` (n, *shape) if given (latent interpolation), else fresh noise.
        `wrap` maps the (CFG-guided) prediction callable to another one, e.g. classifier guidance. With `init`
        (n, *shape) in the sampler's space (SDEdit), the integration starts at t = strength from
        a(strength)·init + b(strength)·noise and every step of the grid lies in [0, strength]."""
        device = self.device
        noise = randn((n, *self.shape), generator=generator, device=device) if noise is None else noise.to(device)
        start, grid_opts = None, {}
        if init is not None:
            s = torch.full((1,), float(strength), dtype=torch.float64)
            start = self.path.a(s).item() * init.to(device, noise.dtype) + self.path.b(s).item() * noise
            grid_opts["t_max"] = float(strength)
        fn = self.prediction(n, cond, settings)
        fn = fn if wrap is None else wrap(fn)
        return self.integrate(fn, noise, settings, generator, callback, start=start, **grid_opts)

    def integrate(
        self,
        fn: Callable,
        noise: Tensor,
        settings: SampleSettings,
        generator: torch.Generator | None,
        callback: Callback | None,
        **opts,
    ) -> Samples:
        """Run the sampler of `settings` on the prediction `fn(x_t, t)` from `noise` along this method's path (the
        callback sees each step), then `finish` the result; `opts` go to `genlab.samplers.sample` (start, t_max)."""
        if callback is not None:
            fn = with_callback(fn, callback, path=self.path, target=self.cfg.target)
        stats: dict = {}
        x = sample(
            fn,
            noise,
            sampler=settings.sampler,
            steps=settings.steps,
            path=self.path,
            target=self.cfg.target,
            grid=settings.grid,
            stats=stats,
            eta=settings.eta,
            generator=generator,
            **opts,
        )
        return Samples(self.finish(x), stats["nfe"])

    def to_state(self, x: Tensor) -> Tensor:
        """Data as the sampler's state (a latent method encodes it): the space `init` lives in."""
        return x

    @property
    def image_shape(self) -> tuple[int, ...]:
        """The shape of one sample as data (the sampler's state shape unless a latent method decodes it)."""
        return tuple(self.shape)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """The initial noise of n samples: the latent of a deterministic sampler."""
        return randn((n, *self.shape), generator=generator, device=self.device)

    def decode(self, z: Tensor, cond=None, *, settings: SampleSettings = DEFAULT_SETTINGS) -> Tensor:
        return self.sample(len(z), cond=cond, settings=settings, noise=z).x

    def log_likelihood(
        self,
        x: Tensor,
        cond: Tensor | None = None,
        *,
        seed: int = 0,
        stats: dict | None = None,
        **opts,
    ) -> Tensor:
        """log p(x) (nats, (B,)) through the probability-flow ODE of the unguided model (genlab.likelihood;
        opts: solver, steps, divergence, probes, ...). Unconditional (null class) unless `cond` is given.
        Images: x plus uniform noise over its 8-bit bin (one seeded draw), + D·log(2/255)."""
        device = self.device
        x = x.to(device)
        label = None if cond is None else cond.to(device)

        def fn(x_t: Tensor, t: Tensor) -> Tensor:  # x_t holds k copies of the batch, stacked
            return self.net(x_t, t, None if label is None else label.repeat(len(x_t) // len(label)))

        offset = 0.0
        if x.dim() == 4:
            x, offset = dequantize(x, generator=torch.Generator().manual_seed(seed))
            if stats is not None:
                stats["dequantization"] = "uniform over the 8-bit bin (width 2/255), one draw, + D·log(2/255)"
        return offset + log_likelihood(fn, x, path=self.path, target=self.cfg.target, seed=seed, stats=stats, **opts)


def with_callback(fn: Callable, callback: Callback, *, path, target: str) -> Callable:
    """`fn(x_t, t)` that also reports each evaluation to `callback` as a StepInfo (x̂ from the prediction)."""
    count = 0

    def reporting(x_t: Tensor, t: Tensor) -> Tensor:
        nonlocal count
        pred = fn(x_t, t)
        x_hat = to_x_eps(path, target, x_t, t, pred)[0]
        callback(StepInfo(step=count, total=None, t=float(t.reshape(-1)[0]), x_t=x_t, x_hat=x_hat))
        count += 1
        return pred

    return reporting
