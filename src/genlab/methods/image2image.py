"""Trained conditional image-to-image: SR3 / Palette as a flow on any Gaussian path, and its regression baseline.

A clean image y (B, C, S, S) in [-1, 1] is degraded to the task's source s, and the network reads an input
image u made from s as extra channels beside x_t (the U-Net's `cond_channels`):
    superres  s = downsample(y, f)  (B, C, S/f, S/f);   u = bicubic upsample(s)  (B, C, S, S)    (SR3)
    colorize  s = grey(y)  (B, 1, S, S);                u = s
    inpaint   m = 1 in a box of random size and place (0 = kept);  s = (1 − m)·y;  u = [s, m]  (B, C + 1, S, S)
    outpaint  m = 1 around a square window of random size and place;  s and u as for inpaint    (Palette)
Both methods model y as b + r, where b is the input brought to the output's space (the bicubic upsample, the grey
image on every channel, the masked image) and r what the network makes (`predict: residual`, the default, as in
residual super-resolution models such as SRDiff, Li et al. 2022), or b = 0 (`predict: image`, SR3's own choice):
a small CPU budget then need not learn to copy the input through the network.
paired_flow (Saharia et al. 2021 SR3, 2022 Palette): the flow/diffusion loss of genlab.methods.flow on r with the
network v(r_t, t, u); `translate` integrates the ODE from fresh noise, so outputs differ per draw. Mask tasks take
the loss on the made pixels only, see the kept pixels of x_t as their known values (Palette), and composite
(1 − m)·s + m·ŷ, so the kept pixels are the input's exactly; colorize outputs keep the input's luminance.
regression: the same U-Net as ŷ = b + net(0, t = 0, u) fitted with ‖ŷ − y‖² — an estimate of the posterior mean
E[y | s], which maximises PSNR and gives up sharpness and diversity: the baseline row of Palette's tables.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from torch import Tensor

from genlab.constraints import Range, require
from genlab.edit import check_images
from genlab.edit.degrade import downsample, grey, upsample
from genlab.errors import GenlabError
from genlab.methods.base import ODE_SETTINGS, Method
from genlab.methods.flow import FlowConfig, FlowMethod
from genlab.models import build_model, data_shape
from genlab.paths import bcast, from_x_eps, loss_weight, sample_time
from genlab.settings import DEFAULT_SETTINGS, Callback, Samples, SampleSettings

TASKS = ("superres", "colorize", "inpaint", "outpaint")
MASK_TASKS = ("inpaint", "outpaint")
Share = Annotated[float, Range(gt=0, le=1)]  # a share of the image side, (0, 1]


@dataclass
class TaskConfig:
    """The task fields both methods share (their rules live here once)."""

    task: Literal["superres", "colorize", "inpaint", "outpaint"] = "superres"
    factor: Annotated[int, Range(2)] = 4  # superres: the low-res side is image_size / factor
    box: tuple[Share, Share] = (0.25, 0.5)  # inpaint: each side of the made box, as a share of the image side
    window: tuple[Share, Share] = (0.4, 0.7)  # outpaint: the side of the kept square window, as a share
    predict: Literal["residual", "image"] = "residual"  # what the network makes: y − b (b the input as an image) or y

    def __post_init__(self) -> None:
        require(self.box[0] <= self.box[1], "box", f"must be [smallest, largest], got {list(self.box)}")
        require(self.window[0] <= self.window[1], "window", f"must be [smallest, largest], got {list(self.window)}")


@dataclass
class PairedFlowConfig(TaskConfig, FlowConfig):
    kind: str = "paired_flow"


@dataclass
class RegressionConfig(TaskConfig):
    kind: str = "regression"


def _uniform(shape: tuple[int, ...], *, generator: torch.Generator | None, device) -> Tensor:
    """U[0, 1) draws from `generator` on its own device (global RNG when None), moved to `device`."""
    where = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=where).to(device)


def random_boxes(n: int, size: int, sides: tuple[float, float], *, square: bool, generator, device) -> Tensor:
    """(n, 1, size, size) float masks, 1 inside one box per image: each side a uniform share in `sides` of `size`
    (one side for both when `square`), the position uniform over the places where the box fits."""
    u = _uniform((n, 4), generator=generator, device=device)  # (n, 4): height, width, top, left
    lo, hi = sides
    hw = ((lo + (hi - lo) * u[:, :2]) * size).round().clamp(1, size).long()  # (n, 2)
    if square:
        hw = hw[:, :1].expand(n, 2)
    corner = (u[:, 2:] * (size - hw + 1)).floor().long()  # (n, 2) top, left
    pos = torch.arange(size, device=device)
    inside = (pos >= corner[..., None]) & (pos < (corner + hw)[..., None])  # (n, 2, size) rows, columns
    return (inside[:, 0, :, None] & inside[:, 1, None, :]).float()[:, None]  # (n, 1, size, size)


class ImageTask:
    """One task's degradation, network input and output compositing, for data of shape (C, S, S)."""

    def __init__(self, cfg: TaskConfig, shape: tuple[int, ...]):
        if len(shape) != 3:
            raise GenlabError(f"method.task={cfg.task} needs image data, got data of shape {shape}")
        self.name, self.cfg = cfg.task, cfg
        self.channels, self.size = shape[0], shape[-1]
        if self.name == "superres" and self.size % cfg.factor:
            raise GenlabError(f"method.factor={cfg.factor} must divide the image size {self.size}")
        if self.name == "colorize" and self.channels != 3:
            raise GenlabError(f"method.task=colorize needs RGB data, got {self.channels}-channel images")

    @property
    def cond_channels(self) -> int:
        """Channels of the network's input image u."""
        return {"superres": self.channels, "colorize": 1}.get(self.name, self.channels + 1)

    @property
    def source_shape(self) -> tuple[int, int, int]:
        """(C', H', W') of one source image `translate` takes."""
        if self.name == "superres":
            low = self.size // self.cfg.factor
            return (self.channels, low, low)
        return (1 if self.name == "colorize" else self.channels, self.size, self.size)

    def masks(self, n: int, *, generator: torch.Generator | None, device) -> Tensor:
        """(n, 1, S, S) random masks, 1 = make: a box (inpaint) or the border around a window (outpaint)."""
        if self.name == "inpaint":
            return random_boxes(n, self.size, self.cfg.box, square=False, generator=generator, device=device)
        window = random_boxes(n, self.size, self.cfg.window, square=True, generator=generator, device=device)
        return 1 - window

    def degrade(self, y: Tensor, *, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """{"source": s} (+ {"mask": m}) made from clean images y (B, C, S, S) (see the module docstring)."""
        if self.name == "superres":
            return {"source": downsample(y, self.cfg.factor)}
        if self.name == "colorize":
            return {"source": grey(y)}
        m = self.masks(len(y), generator=generator, device=y.device).to(y.dtype)
        return {"source": y * (1 - m), "mask": m}

    def check(self, source: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """(source, mask expanded to the batch) if they fit the task, else a GenlabError that says what to do."""
        check_images(source, self.source_shape, what=f"the {self.name} input", wants="takes {}")
        if self.name not in MASK_TASKS:
            if mask is not None:
                raise GenlabError(f"--task {self.name} takes no mask: drop --mask")
            return source, None
        if mask is None:
            raise GenlabError(f"--task {self.name} needs --mask M.png (white = make, black = keep)")
        from genlab.edit import check_mask  # here: genlab.edit imports the methods package

        mask = check_mask(mask, source).to(source.device, source.dtype)
        if len(mask) not in (1, len(source)):
            raise GenlabError(f"give one mask or one per image: {len(mask)} masks for {len(source)} images")
        return source, mask.expand(len(source), -1, -1, -1)

    def condition(self, source: Tensor, mask: Tensor | None) -> Tensor:
        """The network's input image u (B, cond_channels, S, S) from a checked source (and mask)."""
        if self.name == "superres":
            return upsample(source, self.size)
        if self.name == "colorize":
            return source
        return torch.cat([source * (1 - mask), mask], dim=1)

    def base(self, source: Tensor, mask: Tensor | None) -> Tensor:
        """b (B, C, S, S): the input in the output's space (upsampled, grey on every channel, masked), or 0 when the
        network predicts the image itself."""
        if self.cfg.predict == "image":
            return source.new_zeros(len(source), self.channels, self.size, self.size)
        if self.name == "superres":
            return upsample(source, self.size)
        if self.name == "colorize":
            return source.expand(-1, self.channels, -1, -1)
        return source * (1 - mask)

    def known_state(self, x_t: Tensor, image: Tensor) -> Tensor:
        """Mask tasks: x_t (B, C, S, S) with the kept pixels set to what the flow makes there, read from the input
        image u = [s, m] (0 for a residual, s for an image); other tasks: x_t."""
        if self.name not in MASK_TASKS:
            return x_t
        keep = 1 - image[:, -1:]  # (B, 1, S, S)
        known = 0 if self.cfg.predict == "residual" else image[:, :-1]
        return keep * known + (1 - keep) * x_t

    def composite(self, out: Tensor, source: Tensor, mask: Tensor | None) -> Tensor:
        """What the input fixes, restored in the output: mask tasks keep the source's pixels (mask 0) exactly (soft
        masks blend); colorize keeps the grey input's luminance (only the chroma is made, as in Lab-space
        colorization), up to the clamp to [-1, 1]; superres returns `out`."""
        if self.name == "colorize":
            return (out - grey(out) + source).clamp(-1, 1)
        if mask is None:
            return out
        keep = 1 - mask
        return torch.where(keep == 1, source, keep * source + mask * out)

    def error(self, sq: Tensor, mask: Tensor | None) -> Tensor:
        """Per-image mean of squared errors sq (B, C, S, S): over the made pixels for mask tasks, else all."""
        if mask is None:
            return sq.flatten(1).mean(1)
        return (sq * mask).flatten(1).sum(1) / (mask.flatten(1).sum(1) * sq.shape[1]).clamp_min(1)


def conditional_model(model_cfg, task: ImageTask):
    """`model_cfg` with `cond_channels` set to what the task feeds (0 in a recipe means: filled in here)."""
    if model_cfg.kind != "unet":
        raise GenlabError(f"method.task={task.name} needs model.kind: unet (it reads the input as extra channels)")
    need = task.cond_channels
    if model_cfg.cond_channels not in (0, need):
        raise GenlabError(f"model.cond_channels={model_cfg.cond_channels} but {task.name} feeds {need}: drop the key")
    return dataclasses.replace(model_cfg, cond_channels=need)


def _image_shape(model_cfg) -> tuple[int, ...]:
    for name in ("in_channels", "image_size"):
        if getattr(model_cfg, name, None) is None:
            raise GenlabError(f"model.{name} is not set: set it in the recipe or let the dataset fill it")
    return data_shape(model_cfg)


class ImageToImage:
    """What both methods share: the task's degradation, and no samples from nothing."""

    task: ImageTask

    def degrade(self, x: Tensor, *, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        return self.task.degrade(x.to(self.device), generator=generator)

    def refuse_sampling(self):
        Method.sample(self, 0)  # the contract's refusal for image-to-image methods, which says what to use


class PairedFlowMethod(ImageToImage, FlowMethod):
    likelihood = None
    has_latent = False
    sample_settings = ODE_SETTINGS - {"guidance_scale", "guidance_interval"}  # the input image is never dropped: no CFG
    sample_latent = Method.sample_latent
    decode = Method.decode
    log_likelihood = Method.log_likelihood

    def __init__(self, cfg: PairedFlowConfig, model_cfg):
        task = ImageTask(cfg, _image_shape(model_cfg))
        super().__init__(cfg, conditional_model(model_cfg, task))
        self.task, self.image_task, self.num_classes = task, cfg.task, 0

    def net(self, x_t: Tensor, t: Tensor, image: Tensor) -> Tensor:
        """The prediction of `target` at (x_t, t) given the input image u (B, cond_channels, S, S). Mask tasks see
        the kept pixels of x_t as the known clean values (Palette), in training and sampling alike: the made
        region is all the state there is, and its prediction never depends on an untrained kept-region path."""
        a, b = self.path.a(t), self.path.b(t)
        c_in = torch.rsqrt(a**2 * self.cfg.sigma_data**2 + b**2)
        return self.model(self.task.known_state(x_t, image) * bcast(c_in, x_t), t, None, image=image)

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        y = batch["x"]
        given = self.task.degrade(y)  # global RNG: the trainer seeds it per micro-batch
        mask = given.get("mask")
        image = self.task.condition(given["source"], mask)
        x = y - self.task.base(given["source"], mask)  # what the flow makes (residual or image)
        t = sample_time(self.cfg.time, x.shape[0], device=x.device).to(x.dtype)
        eps = torch.randn_like(x)
        x_t = bcast(self.path.a(t), x) * x + bcast(self.path.b(t), x) * eps
        target = from_x_eps(self.path, self.cfg.target, t, x, eps)
        mse = self.task.error((self.net(x_t, t, image) - target).pow(2), mask)
        w = loss_weight(self.cfg.loss_weight, self.path, self.cfg.target, t, sigma_data=self.cfg.sigma_data)
        loss = (w * mse).mean()
        return loss, {"loss": loss.detach()}

    def finish(self, x: Tensor) -> Tensor:
        """The sampler's output as it is: `translate` adds the base and clamps (a residual spans [-2, 2])."""
        return x

    def guidance_inputs(self, n: int, cond, device):
        """`cond` is the input image u itself; no guidance (the network never saw it dropped)."""
        return self.net, cond.to(device), None

    @torch.no_grad()
    def sample(self, n: int, *, cond=None, **opts) -> Samples:
        """n outputs for the input images `cond` (n, cond_channels, S, S) (see FlowMethod.sample for `opts`)."""
        if not torch.is_tensor(cond) or cond.dim() != 4 or len(cond) != n:
            self.refuse_sampling()
        return super().sample(n, cond=cond, **opts)

    @torch.no_grad()
    def translate(
        self,
        source: Tensor,
        *,
        mask: Tensor | None = None,
        settings: SampleSettings = DEFAULT_SETTINGS,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
    ) -> Samples:
        source, mask = self.task.check(source.to(self.device), mask)
        image = self.task.condition(source, mask)
        out = self.sample(len(source), cond=image, settings=settings, generator=generator, callback=callback)
        y = (self.task.base(source, mask) + out.x).clamp(-1, 1)
        return Samples(self.task.composite(y, source, mask), out.nfe, out.sampler)


class RegressionMethod(ImageToImage, Method):
    sampled_by = "one network pass"

    def __init__(self, cfg: RegressionConfig, model_cfg):
        super().__init__()
        self.cfg = cfg
        self.task = ImageTask(cfg, _image_shape(model_cfg))
        self.model = build_model(conditional_model(model_cfg, self.task))
        self.shape = data_shape(model_cfg)
        self.image_task = cfg.task

    def predict(self, source: Tensor, mask: Tensor | None) -> Tensor:
        """ŷ = b + net(x = 0, t = 0, u) (B, C, S, S) for checked sources: no noise, no time, not clamped."""
        image = self.task.condition(source, mask)
        zeros = image.new_zeros(len(image), *self.shape)
        return self.task.base(source, mask) + self.model(zeros, image.new_zeros(len(image)), None, image=image)

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        y = batch["x"]
        given = self.task.degrade(y)
        mask = given.get("mask")
        pred = self.predict(given["source"], mask)
        loss = self.task.error((pred - y).pow(2), mask).mean()
        return loss, {"loss": loss.detach()}

    def sample(self, n: int, **opts) -> Samples:
        self.refuse_sampling()

    @torch.no_grad()
    def translate(
        self,
        source: Tensor,
        *,
        mask: Tensor | None = None,
        settings: SampleSettings = DEFAULT_SETTINGS,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
    ) -> Samples:
        """The one deterministic output per source (settings and generator are not read)."""
        source, mask = self.task.check(source.to(self.device), mask)
        out = self.predict(source, mask).clamp(-1, 1)
        return Samples(self.task.composite(out, source, mask), 1, self.sampled_by)
