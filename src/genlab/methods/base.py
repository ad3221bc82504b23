"""The contract every family implements, so that one trainer, one run layer and one evaluator serve them all.

A method owns its networks and says how they learn (`loss` per optimizer group, which the trainer
steps in turn) and how they sample (`sample(n, cond=..., settings=...) -> Samples`). Randomness comes from
torch's global generator, which the trainer seeds from (seed, step, group, micro-batch) before each loss call.
Everything the trainer, the run layer, the evaluator and the CLI ask of a method is declared here, with a
default: nobody probes a method with `hasattr`. A method builds on frozen parts (a tokenizer, an autoencoder,
a text encoder run) only through `frozen_parts`: the run layer loads them and hands them to the constructor,
so methods never read checkpoints or recipes themselves.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from genlab.errors import GenlabError
from genlab.settings import DEFAULT_SETTINGS, Callback, Samples, SampleSettings

#: the settings every ODE/SDE-sampled family reads
ODE_SETTINGS = frozenset({"sampler", "steps", "grid", "guidance_scale", "guidance_interval", "eta"})
#: the settings autoregressive families read
AR_SETTINGS = frozenset({"temperature", "top_k", "top_p"})


def drop_labels(label: Tensor | None, num_classes: int, p: float) -> Tensor | None:
    """Labels with each replaced by the null class `num_classes` with probability p (global RNG): the label
    dropout of classifier-free guidance training (Ho & Salimans 2022). None for unlabelled data."""
    if label is None or num_classes == 0:
        return None
    drop = torch.rand(label.shape, device=label.device) < p
    return torch.where(drop, torch.full_like(label, num_classes), label)


def randn(shape: tuple[int, ...], *, generator: torch.Generator | None, device) -> Tensor:
    """Standard normal noise drawn from `generator` on the generator's own device, then moved to `device`: a
    CPU generator gives the same noise whether the method runs on the CPU or a GPU."""
    where = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=where).to(device)


class Method(nn.Module):
    #: what `log_likelihood` returns: "exact", "bound" (a lower bound such as the ELBO) or None (undefined)
    likelihood: str | None = None
    #: False for auxiliary methods that make no data (a noisy classifier): the trainer writes no sample grid
    generates: bool = True
    #: the SampleSettings fields `sample` reads; the run layer refuses any other setting a user sets
    sample_settings: frozenset[str] = frozenset()
    #: how `sample` works, in words, when it uses no ODE/SDE sampler ("generator (one pass)")
    sampled_by: str = ""
    #: the trainer's grid shows real images over their `reconstruct`ions (a tokenizer makes no samples)
    shows_reconstructions: bool = False
    #: the method has a Gaussian latent (or initial noise) that `sample_latent` draws and `decode` maps to data
    has_latent: bool = False
    #: classes of a class-conditional method (0: unconditional); `cond` then holds labels in [0, num_classes)
    num_classes: int = 0
    #: the image-to-image task a paired/conditional method was trained for ("superres", "colorize", "inpaint",
    #: "outpaint", "translate"); "" for a method that makes images from noise or labels alone
    image_task: str = ""
    #: a language model: `sample` returns token ids (n, L) and `decode_text` turns them into strings; the trainer writes
    #: samples.txt, `genlab generate-text` and the text evaluator serve it
    makes_text: bool = False
    #: text-to-image: `sample` takes `cond` = a list of n prompts (None: a fixed default set); the run layer,
    #: `genlab generate` and `genlab eval --prompts` serve it
    takes_prompts: bool = False
    #: text-to-video: `sample` returns videos (n, T, C, H, W); the trainer's grid shows one video per row, `genlab eval`
    #: asks the method's `heldout_metrics`, `genlab generate --video` writes a GIF
    makes_video: bool = False
    #: the trainer's step, set before each step (warm-ups such as an adversarial term's start read it)
    step: int = 0

    @classmethod
    def frozen_parts(cls, cfg: Any) -> dict[str, tuple[str, str]]:
        """{name: (run folder, method kind)} of the genlab runs this method builds on, read from its config (kinds
        separated by "|" accept any of them).

        The run layer loads each one when a run is created, hands the methods to the constructor as `parts`, and
        records their recipes in `cfg.frozen[name]`, so that a saved run rebuilds them from its own checkpoint."""
        return {}

    @property
    def device(self) -> torch.device:
        """Where the method's tensors live (its first parameter or buffer)."""
        for t in (*self.parameters(), *self.buffers()):
            return t.device
        return torch.device("cpu")

    @property
    def kind(self) -> str:
        return getattr(getattr(self, "cfg", None), "kind", type(self).__name__)

    # -- learning

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        """{'model': [...]} or several groups (e.g. {'gen': ..., 'disc': ...}), stepped in order.

        {} marks a closed-form method (EM for a mixture): each step the trainer sums `statistics(micro-batch)`
        over micro-batches and processes and calls `update(sums, rate=learning rate)` instead of `loss`."""
        return {"model": [p for p in self.parameters() if p.requires_grad]}

    def statistics(self, batch: dict) -> dict[str, Tensor]:
        """Closed-form methods: additive statistics of one micro-batch (sums, so they add across processes)."""
        raise NotImplementedError

    def update(self, stats: dict[str, Tensor], *, rate: float) -> dict[str, float]:
        """Closed-form methods: update the buffers from the summed statistics (step size `rate`); logs."""
        raise NotImplementedError

    # -- buffers that follow batch statistics in a gradient method (a VQ-VAE's EMA codebook)
    def pending_statistics(self) -> dict[str, Tensor]:
        """Additive statistics this step's training `loss` calls gathered (then cleared); {} for none. The trainer
        sums them over processes and calls `update(sums, rate=lr)` once per optimizer step, after the groups."""
        return {}

    def loss(self, batch: dict, group: str) -> tuple[Tensor, dict]:
        """Scalar loss for `group` on one micro-batch, plus detached scalars to log."""
        raise NotImplementedError

    def after_step(self) -> None:
        """Called once after every optimizer step (with `self.step` still that step's number), identically on every
        process: for state a method derives from its own weights, such as a consistency model's EMA target or
        progressive distillation's teacher of the current round. Default: nothing."""

    def calibrate(self, data: Any) -> None:
        """Set data-dependent buffers (an autoencoder's latent scale) before a checkpoint is saved; default none."""

    # -- sampling

    def sample(
        self,
        n: int,
        *,
        cond: Any = None,
        settings: SampleSettings = DEFAULT_SETTINGS,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
    ) -> Samples:
        """n samples (images in [-1, 1] as (n, C, H, W), vectors as (n, D)) and the NFE they took.

        `cond`: class labels (n,) for class-conditional methods (None: unconditional / the method's choice),
        prompts (a list of n strings) for text-conditional ones."""
        if self.image_task:  # image-to-image methods translate inputs instead
            raise GenlabError(
                f"a {self.kind} run makes no samples from noise, it does {self.image_task}: use "
                f"'genlab edit RUN --task {self.image_task} --image IN.png -o out.png'"
            )
        raise GenlabError(f"a {self.kind} run makes no samples")

    def check_settings(self, names: set[str] | frozenset[str]) -> None:
        """Refuse sample settings the user set that `sample` does not read."""
        unused = sorted(set(names) - self.sample_settings)
        if unused:
            how = f"samples by {self.sampled_by}" if self.sampled_by else "takes no such setting"
            flag = "--" + unused[0].replace("_", "-")
            raise GenlabError(f"{self.kind} {how}: {flag} does not apply (drop it)")

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """The latent (or initial noise) z of n samples (has_latent methods)."""
        raise GenlabError(f"method.kind={self.kind!r} has no latent space: use a GAN, VAE, flow or diffusion run")

    def decode(self, z: Tensor, cond: Any = None, *, settings: SampleSettings = DEFAULT_SETTINGS) -> Tensor:
        """The samples that latents z map to (has_latent methods; deterministic)."""
        raise GenlabError(f"method.kind={self.kind!r} has no latent space: use a GAN, VAE, flow or diffusion run")

    def reconstruct(self, x: Tensor) -> Tensor:
        """x through the method's encoder and decoder (shows_reconstructions methods)."""
        raise GenlabError(f"method.kind={self.kind!r} does not reconstruct its input")

    @torch.no_grad()
    def heldout_metrics(
        self, data: Any, *, seed: int = 0, n: int | None = None, settings: SampleSettings = DEFAULT_SETTINGS
    ) -> dict[str, float]:
        """What `genlab eval` measures on (at most n; None: the method's default number of) held-out items for a
        method that makes no samples (generates=False or shows_reconstructions) or does an `image_task`: the task's
        held-out metrics with the run's sample `settings` (genlab.metrics.image2image), else by default the
        reconstruction PSNR (dB, images in [-1, 1])."""
        if self.image_task:
            from genlab.metrics.image2image import translation_metrics

            return translation_metrics(self, data, seed=seed, n=n or 256, settings=settings)
        if not self.shows_reconstructions:
            return {}
        from genlab.metrics.image import psnr, ssim

        x = data.x[: n or 1000].to(self.device)
        pairs = [(self.reconstruct(c), c) for c in x.split(256)]
        return {
            "psnr_db": float(torch.cat([psnr(r, c) for r, c in pairs]).mean()),
            "ssim": float(torch.cat([ssim(r, c) for r, c in pairs]).mean()) if x.shape[-1] >= 11 else None,
            "n": len(x),
        }

    # -- image-to-image (methods with an `image_task`)

    def degrade(self, x: Tensor, *, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """The task's input made from clean target images x (B, C, H, W) in [-1, 1], as `translate` takes it:
        {"source": ...} plus {"mask": (B, 1, H, W)} for inpainting tasks. Paired training and evaluation use it."""
        raise GenlabError(f"method.kind={self.kind!r} does no image-to-image task")

    def translate(
        self,
        source: Tensor,
        *,
        mask: Tensor | None = None,
        settings: SampleSettings = DEFAULT_SETTINGS,
        generator: torch.Generator | None = None,
    ) -> Samples:
        """One output per source image (B, C', H', W') in [-1, 1] (a low-res, grey or masked image, or an image of
        the other domain), as images (B, C, H, W) in [-1, 1], with the NFE it took. Stochastic methods draw from
        `generator`, so n outputs of one input are `translate(source.repeat(n, 1, 1, 1))`."""
        raise GenlabError(f"method.kind={self.kind!r} does no image-to-image task")

    @torch.no_grad()
    def preview(self, batch: dict, *, generator: torch.Generator | None = None) -> Tensor:
        """The trainer's picture of an `image_task` method: per image of `batch` (its "x" the clean targets), the
        columns input | output | truth as (B, 3, C, H, W) (the input brought to the output's channels and size)."""
        x = batch["x"]
        given = self.degrade(x, generator=generator)
        out = self.translate(given["source"], mask=given.get("mask"), generator=generator).x
        return torch.stack([as_picture(given["source"], out), out, x.to(out.dtype)], 1)

    # -- likelihood

    def log_likelihood(self, x: Tensor, cond: Any = None, *, stats: dict | None = None, **opts: Any) -> Tensor:
        """log p(x) in nats, one value per sample (a lower bound when `likelihood == "bound"`).

        Images (x in [-1, 1] on the 8-bit grid): the log-probability of x's 8-bit bin, so that
        bits/dim = -value / (D·ln 2) compares across families; a continuous density p adds
        D·log(2/255), the bin width of pixel u at x = u/127.5 − 1 (uniform dequantization). Vectors: the log-density.
        `stats`, when a dict, receives how the value was computed (NFE, estimator); `opts` are method options.
        """
        raise GenlabError(f"{self.kind} defines no likelihood")


def as_picture(image: Tensor, like: Tensor) -> Tensor:
    """`image` (B, c, h, w) shown beside `like` (B, C, H, W): grey repeated to C channels, nearest-upsampled."""
    if image.shape[1] != like.shape[1]:
        image = image[:, :1].expand(-1, like.shape[1], -1, -1)  # (B, C, h, w)
    if image.shape[-2:] != like.shape[-2:]:
        image = torch.nn.functional.interpolate(image, size=like.shape[-2:], mode="nearest")  # (B, C, H, W)
    return image.to(like.dtype)


def no_options(method: Method, opts: dict) -> None:
    """For methods whose log_likelihood takes no options."""
    if opts:
        raise GenlabError(f"{method.kind}'s likelihood takes no option {next(iter(opts))!r}; drop it")
