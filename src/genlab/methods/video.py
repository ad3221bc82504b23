"""Text-to-video by rectified flow over video latents: `latent_flow` with a video DiT (a first step towards
MovieGen's recipe).

`method.autoencoder` names an image `autoencoder` run, which encodes each frame alone (no temporal compression):
z (B, T, c, h, w) = scale·μ(x_f) per frame, or a `video_autoencoder` run (genlab.models.video_autoencoder,
MovieGen's TAE), which encodes the whole video causally, time compressed by its factor f: z (B, T/f, c, h, w) =
scale·μ(x); the DiT then runs on T/f latent frames. The video DiT (genlab.models.video_dit: space-time patches,
factorized or full attention, text cross-attention, adaLN-Zero on t) learns the flow on z exactly as latent_flow
does: logit-normal t (with shift), target eps − z, captions dropped to "" with probability `text_dropout` for
classifier-free guidance. Sampling integrates from noise with guidance and decodes the latents to frames.
`genlab eval` runs the motion checker (genlab.metrics.video) on videos sampled for the test split's captions.

`method.init` (a latent_flow run folder, or shipped:NAME such as shipped:shapes-t2i) starts the video DiT from a
trained text-to-image DiT, as MovieGen and Latte start from their image model: its layers become the spatial
layers (model.positions: image), the temporal ones start at identity, so training begins from frames the image
model can already draw and has to learn time. With `autoencoder: ""` the video run uses that run's autoencoder
(the latent space the image DiT was trained in).

`method.first_frame` > 0 trains image-to-video in the same network: with that probability a training video's first
frame is given (its latent and a mask channel, model.frame_condition), else nothing is (text-to-video). Sampling
with `first_frame=IMAGE` (genlab generate --video --first-frame) gives it; classifier-free guidance drops only the
text, the given frame stays in both halves.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from genlab.constraints import Probability
from genlab.errors import GenlabError
from genlab.methods.flow import FlowMethod
from genlab.methods.latent import LatentFlowConfig, LatentFlowMethod, Prompts, Text
from genlab.models.video_autoencoder import VideoAutoencoder
from genlab.paths import bcast, from_x_eps
from genlab.settings import DEFAULT_SETTINGS, SampleSettings

DEFAULT_VIDEO_PROMPTS = (
    "a red circle moving to the right",
    "a blue square falls",
    "a yellow triangle growing",
    "a white circle turns green",
    "a green square moving to the left while an orange circle rises",
    "a cyan triangle shrinks",
)
EVAL_N = 32  # videos `genlab eval` samples by default


@dataclass
class VideoFlowConfig(LatentFlowConfig):
    kind: str = "video_flow"
    autoencoder: str = "runs/shapes-autoencoder"  # an autoencoder or video_autoencoder run; "": method.init's
    init: str = ""  # a latent_flow run (or shipped:NAME) whose DiT starts the spatial layers; "": random
    first_frame: Probability = 0.0  # training: probability a video's first frame is given (image-to-video)


class VideoCond(NamedTuple):
    """What the video DiT reads besides x_t: the text, and `given` (B, T', c + 1, h, w), the latents of given frames
    and a mask channel (zeros where no frame is given)."""

    text: Text
    given: Tensor


class FirstFrame(NamedTuple):
    """The `cond` of image-to-video sampling (built by `VideoFlowMethod.sample`): the prompts (as for text-to-video)
    and the given first frame's latent z0 (n, c, h, w), encoded once; `keep`: the sampler's first latent frame is
    held on it (`VideoFlowMethod.prediction`), else the network's mask channel alone conditions on it."""

    prompts: object
    latent: Tensor
    keep: bool = True


class VideoFlowMethod(LatentFlowMethod):
    model_kind = "video_dit"
    autoencoder_kinds = "autoencoder|video_autoencoder"
    makes_video = True

    def __init__(self, cfg: VideoFlowConfig, model_cfg, parts: dict):
        parts = self.init_parts(cfg, parts)
        ae = parts["autoencoder"].ae
        frames = model_cfg.frames  # video frames (the data's); the DiT runs on the latent frames
        temporal = isinstance(ae, VideoAutoencoder)
        if temporal and model_cfg.frames is not None:
            model_cfg = dataclasses.replace(model_cfg, frames=ae.cfg.latent_frames(model_cfg.frames))
        model_cfg = dataclasses.replace(model_cfg, frame_condition=cfg.first_frame > 0)
        super().__init__(cfg, model_cfg, parts)
        self.frames, self.temporal = frames, temporal

    def start_from(self, image: LatentFlowMethod) -> None:
        """The image DiT of method.init becomes the spatial layers (the temporal ones start at identity)."""
        self.model.load_image_dit(image.model)

    # -- image-to-video: the given first frame

    @property
    def frame_condition(self) -> bool:
        return self.model.cfg.frame_condition

    def net(self, x_t: Tensor, t: Tensor, label) -> Tensor:
        """As the flow's, with the given frames and mask (a `VideoCond`) beside x_t when the DiT reads them."""
        if not self.frame_condition:
            return super().net(x_t, t, label)
        x_in = torch.cat([self.scale_input(x_t, t), label.given.to(x_t.dtype)], dim=2)
        return self.model(x_in, t, label.text)

    def given_frames(self, z0: Tensor | None, n: int, keep: Tensor | None = None) -> Tensor:
        """The DiT's `given` input (n, T', c + 1, h, w): latent frame 0 = z0 (n, c, h, w) and mask 1 where `keep`
        (n,) bool (all when None), zeros elsewhere and for z0 None."""
        t, c, h, w = self.shape
        given = torch.zeros(n, t, c + 1, h, w, device=self.device)
        if z0 is not None:
            keep = torch.ones(n, dtype=torch.bool, device=self.device) if keep is None else keep
            k = keep.to(z0.dtype).view(-1, 1, 1, 1)
            given[:, 0, :c] = z0 * k
            given[:, 0, c] = k[:, 0]
        return given

    @torch.no_grad()
    def first_latent(self, images: Tensor) -> Tensor:
        """Latent frame 0 of videos starting with `images` (n, C, H, W): a per-frame latent, or the causal video
        autoencoder's first latent frame (which depends on the first frame alone) of the image held still."""
        video = images.to(self.device)[:, None].expand(-1, self.frames, -1, -1, -1)
        return self.to_latent(video)[:, 0]

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        if not self.frame_condition:
            return super().loss(batch, group)
        if "text" not in batch:
            raise GenlabError("method.kind=video_flow needs captioned videos (e.g. data.kind=videos)")
        x = batch["x"]
        z = self.to_latent(x)
        keep = torch.rand(len(z), device=z.device) < self.cfg.first_frame
        label = VideoCond(self.encode_text(batch["text"], x.device), self.given_frames(z[:, 0], len(z), keep))
        return FlowMethod.loss(self, {"x": z, "label": label}, group)

    def _drop_labels(self, label):
        if isinstance(label, VideoCond):  # the text is dropped; a given frame stays
            return VideoCond(super()._drop_labels(label.text), label.given)
        return super()._drop_labels(label)

    @torch.no_grad()
    def sample(self, n: int, *, cond=None, first_frame: Tensor | None = None, keep_first_frame: bool = True, **opts):
        """As latent_flow's; `first_frame` (C, H, W) or (n, C, H, W) in [-1, 1]: image-to-video, every video starts
        from it (needs a run trained with method.first_frame > 0). With `keep_first_frame` the first latent frame
        is also held on the given one at every step (see `prediction`); without, only the network's input says it."""
        if first_frame is not None:
            cond = FirstFrame(cond, self.first_latent(self._first_frames(first_frame, n)), keep_first_frame)
        return super().sample(n, cond=cond, **opts)

    def _first_frames(self, image: Tensor, n: int) -> Tensor:
        """A first frame (C, H, W) or one per video (n, C, H, W), checked, as (n, C, H, W)."""
        if not self.frame_condition:
            raise GenlabError(
                "this video run was not trained to take a first frame: train one with method.first_frame > 0"
            )
        image = image[None] if image.dim() == 3 else image
        if image.shape[1:] != self.image_shape[1:] or len(image) not in (1, n):
            raise GenlabError(
                f"the first frame must be (C, H, W) = {tuple(self.image_shape[1:])} or one per video, "
                f"got {tuple(image.shape)}"
            )
        return image.expand(n, -1, -1, -1)

    def prediction(self, n: int, cond, settings: SampleSettings):
        """As the flow's; for a `FirstFrame` with `keep`, the guided prediction of latent frame 0 is replaced by the
        one whose clean estimate is the given latent z0: ε̂ = (x_t − a(t)·z0) / b(t), prediction from (z0, ε̂). The
        sampler's frame 0 then moves straight to z0 (a deterministic sampler ends on it exactly) while the other
        frames attend to it at every step, as inpainting keeps known pixels (here a known frame)."""
        fn = super().prediction(n, cond, settings)
        if not (isinstance(cond, FirstFrame) and cond.keep):
            return fn
        z0 = cond.latent  # (n, c, h, w)

        def keep_first(x_t: Tensor, t: Tensor) -> Tensor:
            pred = fn(x_t, t)
            first = x_t[:, 0]
            a, b = bcast(self.path.a(t), first), bcast(self.path.b(t), first)
            eps = (first - a * z0) / torch.where(b > 0, b, torch.ones_like(b))
            fixed = from_x_eps(self.path, self.cfg.target, t, z0.to(first.dtype), eps)
            return torch.cat([torch.where(b > 0, fixed, pred[:, 0])[:, None], pred[:, 1:]], dim=1)

        return keep_first

    @torch.no_grad()
    def to_latent(self, x: Tensor) -> Tensor:
        """Videos (B, T, C, H, W) -> latents (B, T, c, h, w) per frame, or (B, T/f, c, h, w) by a video autoencoder."""
        if self.temporal:
            return super().to_latent(x)
        return super().to_latent(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    @torch.no_grad()
    def from_latent(self, z: Tensor) -> Tensor:
        if self.temporal:
            return super().from_latent(z)  # (B, T, C, H, W)
        return super().from_latent(z.flatten(0, 1)).unflatten(0, z.shape[:2])  # (B, T, C, H, W)

    def guidance_inputs(self, n: int, cond, device):
        """As latent_flow; with no prompts, a fixed set of video captions, one per block of rows. With a
        `FirstFrame`, every row (both halves of guidance) reads the given frame."""
        z0 = None
        if isinstance(cond, FirstFrame):
            cond, z0 = cond.prompts, cond.latent
        if cond is None:
            cond = [DEFAULT_VIDEO_PROMPTS[i * len(DEFAULT_VIDEO_PROMPTS) // n] for i in range(n)]
        elif isinstance(cond, Prompts) and cond.positive is None:
            cond = Prompts(
                [DEFAULT_VIDEO_PROMPTS[i * len(DEFAULT_VIDEO_PROMPTS) // n] for i in range(n)], cond.negative
            )
        if not self.frame_condition:
            return super().guidance_inputs(n, cond, device)
        table, idx, null = self.text_rows(n, cond, device)
        given = self.given_frames(z0, n)

        def net(x_t: Tensor, t: Tensor, i: Tensor) -> Tensor:  # x_t holds the n videos once or twice (CFG)
            return self.net(x_t, t, VideoCond(table.take(i), given.repeat(len(x_t) // n, 1, 1, 1, 1)))

        return net, idx, null

    @property
    def image_shape(self) -> tuple[int, ...]:
        cfg = self.autoencoder.cfg
        return (self.frames, cfg.in_channels, cfg.image_size, cfg.image_size)  # (T, C, H, W)

    @torch.no_grad()
    def heldout_metrics(
        self,
        data,
        *,
        seed: int = 0,
        n: int | None = None,
        settings: SampleSettings = DEFAULT_SETTINGS,
        free_first_frame: bool = False,
    ) -> dict[str, float]:
        """The motion checker's scores (motion accuracy, per-frame attribute accuracy, consistency, identity) of
        one video sampled for each of the first n captions of `data`, with the run's sample settings (when every
        caption is in the videos grammar), and 'fd': the Fréchet distance in the shipped video feature net
        (genlab.metrics.video_features) between those videos and data's first n (for 3-channel 32x32 videos).
        A run trained with first frames (method.first_frame > 0) is also scored on image-to-video: the same
        captions with each true video's first frame given and kept (`keep_first_frame`), keys 'i2v_<score>' and
        'i2v_first_frame_psnr' (dB between the generated and the given first frame); with `free_first_frame` also
        with the frame given to the network only ('i2v_free_<score>')."""
        from genlab.data.videos import parse_video_caption
        from genlab.metrics.video import frame_psnr, video_scores
        from genlab.metrics.video_features import load_video_net, video_fd

        captions = list(data.texts[: n or EVAL_N])
        parsed = all(parse_video_caption(c) for c in captions)
        net = load_video_net()
        out = {}
        modes = {"": None}  # prefix: keep_first_frame (None: text to video)
        if self.frame_condition:
            modes.update({"i2v_": True, **({"i2v_free_": False} if free_first_frame else {})})
        for prefix, keep in modes.items():
            gen = torch.Generator().manual_seed(seed)
            x = torch.cat(
                [
                    self.sample(
                        len(part),
                        cond=part,
                        settings=settings,
                        generator=gen,
                        first_frame=data.x[i : i + len(part), 0] if prefix else None,
                        keep_first_frame=bool(keep),
                    ).x.cpu()
                    for i, part in ((i, captions[i : i + 64]) for i in range(0, len(captions), 64))
                ]
            )
            scores = video_scores(x, captions) if parsed else {}
            if x.shape[2:] == (net.cfg.in_channels, net.cfg.image_size, net.cfg.image_size) and len(x) >= 2:
                scores["fd"] = video_fd(data.x[: len(x)], x, net=net)
            if prefix:
                true = data.x[: len(x), :2].float()  # frame_psnr needs two frames; the first one is scored
                scores["first_frame_psnr"] = frame_psnr(x[:, :2].float(), true)[:, 0].mean().item()
            out.update({prefix + k: v for k, v in scores.items()})
        return {**out, "n": len(captions)}
