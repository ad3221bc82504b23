"""Causal video KL autoencoder that compresses time as well as space (MovieGen's TAE, laptop scale).

Videos x (B, T, C, H, W) -> (mean, log σ²) of a diagonal Gaussian q(z|x) over (B, T/f, latent_channels, S/2^k, S/2^k)
with f = `temporal_factor`. The network is the image autoencoder (genlab.models.autoencoder: its ConvBlock, head and
level layout) "inflated" as MovieGen does: after every 2-D residual block (applied to each frame alone) comes a
residual 1-D temporal convolution over each pixel's frames. Time is halved log2(f) times, by a stride-2 temporal
conv at the deepest spatial downsamplings, and doubled back in the decoder by a temporal conv that writes two
frames per input frame (depth to time).

Causality: every temporal conv pads on the left only (with copies of the first frame, as MAGVIT-v2 does) and
norms are per frame (GroupNorm over one frame's channels and pixels), so latent frame j depends only on input
frames < (j + 1)·f, and reconstructed frame t only on latent frames <= t // f (so on input frames of its own
group and earlier ones). T must be a multiple of f (a GenlabError says so otherwise); no frame is padded.
Initialisation: the temporal residual branches output zero, the downsampler averages its group's frames and the
upsampler repeats each latent frame, so training starts from a per-frame autoencoder.
`scale_factor` (a buffer, saved with the weights) is 1/std of the latent means on training videos, as in the image
autoencoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.constraints import OptPositiveInt, PositiveInt, require
from genlab.errors import GenlabError
from genlab.models.autoencoder import ConvBlock, _head, _norm


@dataclass
class VideoAutoencoderConfig:
    kind: str = "video_autoencoder"
    in_channels: OptPositiveInt = None  # filled from the dataset
    image_size: OptPositiveInt = None  # frame side, filled from the dataset
    frames: OptPositiveInt = None  # filled from the dataset
    channels: tuple[PositiveInt, ...] = (8, 32, 32)  # width per level; len - 1 spatial downsamplings (32 -> 8)
    latent_channels: PositiveInt = 4
    temporal_factor: PositiveInt = 2  # 1, 2, 4, ...: frames per latent frame (one halving per spatial level)
    temporal_kernel: PositiveInt = 3  # taps of every temporal conv (causal: the current and past frames)

    def __post_init__(self) -> None:
        require(len(self.channels) >= 1, "channels", "must list at least one width")
        f = self.temporal_factor
        require(f & (f - 1) == 0, "temporal_factor", "must be a power of 2 (1, 2, 4, ...)")
        require(self.temporal_kernel >= 2, "temporal_kernel", "must be at least 2 (a frame and its predecessor)")

    @property
    def temporal_levels(self) -> int:
        """How many times time is halved."""
        return self.temporal_factor.bit_length() - 1

    def latent_frames(self, frames: int) -> int:
        """T' = T / temporal_factor; a GenlabError when T is not a multiple."""
        if frames % self.temporal_factor:
            raise GenlabError(
                f"videos of {frames} frames do not split into groups of model.temporal_factor="
                f"{self.temporal_factor}: set data.frames to a multiple of it"
            )
        return frames // self.temporal_factor

    def latent_shape(self) -> tuple[int, int, int, int]:
        """(T', latent_channels, h, w) of one video."""
        factor = 2 ** (len(self.channels) - 1)
        side = self.image_size // factor
        return (self.latent_frames(self.frames), self.latent_channels, side, side)


def frames_to_pixels(x: Tensor) -> Tensor:
    """(B, T, C, H, W) -> (B·H·W, C, T): one sequence per pixel, for a 1-D conv over time."""
    b, t, c, h, w = x.shape
    return x.permute(0, 3, 4, 2, 1).reshape(b * h * w, c, t)


def pixels_to_frames(y: Tensor, b: int, h: int, w: int) -> Tensor:
    """(B·H·W, C, T) -> (B, T, C, H, W), the inverse of frames_to_pixels."""
    return y.view(b, h, w, y.shape[1], y.shape[2]).permute(0, 4, 3, 1, 2)


class CausalTemporalConv(nn.Module):
    """A 1-D conv over each pixel's frames, padded on the left with copies of the first frame.
    Stride 1: output frame t reads input frames t − k + 1 .. t. Stride s: output j reads frames < (j + 1)·s."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, *, stride: int = 1):
        super().__init__()
        if kernel < stride:
            raise GenlabError(f"a temporal conv of stride {stride} needs at least {stride} taps, got {kernel}")
        self.conv = nn.Conv1d(in_ch, out_ch, kernel, stride=stride)
        self.pad = kernel - stride

    def forward(self, x: Tensor) -> Tensor:
        b, _, _, h, w = x.shape
        seq = frames_to_pixels(x)  # (B·H·W, C, T)
        if self.pad:
            seq = torch.cat([seq[..., :1].expand(-1, -1, self.pad), seq], dim=-1)  # replicate the first frame
        return pixels_to_frames(self.conv(seq), b, h, w)  # (B, T / stride, out_ch, H, W)


class PerFrame(nn.Module):
    """A 2-D module applied to every frame alone: (B, T, C, H, W) -> (B, T, C', H', W')."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x.flatten(0, 1)).unflatten(0, x.shape[:2])


class TemporalBlock(nn.Module):
    """x + causal_conv(SiLU(GN(x))), GN per frame; the conv starts at zero (the block starts as the identity)."""

    def __init__(self, ch: int, kernel: int):
        super().__init__()
        self.norm = PerFrame(_norm(ch))
        self.conv = CausalTemporalConv(ch, ch, kernel)
        nn.init.zeros_(self.conv.conv.weight)
        nn.init.zeros_(self.conv.conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(F.silu(self.norm(x)))


class TemporalDown(nn.Module):
    """Halves time with a stride-2 causal conv; starts as the mean of each pair of frames."""

    def __init__(self, ch: int, kernel: int):
        super().__init__()
        self.conv = CausalTemporalConv(ch, ch, kernel, stride=2)
        with torch.no_grad():
            self.conv.conv.weight.zero_()
            self.conv.conv.bias.zero_()
            eye = torch.eye(ch)
            self.conv.conv.weight[:, :, -1] = 0.5 * eye  # output j reads frames .., 2j, 2j + 1 (the last two taps)
            self.conv.conv.weight[:, :, -2] = 0.5 * eye

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)  # (B, T / 2, C, H, W)


class TemporalUp(nn.Module):
    """Doubles time: a causal conv to 2·C channels, split into two frames per input frame (depth to time), so output
    frames 2j and 2j + 1 read input frames <= j; starts as repeating each frame."""

    def __init__(self, ch: int, kernel: int):
        super().__init__()
        self.conv = CausalTemporalConv(ch, 2 * ch, kernel)
        with torch.no_grad():
            self.conv.conv.weight.zero_()
            self.conv.conv.bias.zero_()
            eye = torch.eye(ch)
            self.conv.conv.weight[:ch, :, -1] = eye
            self.conv.conv.weight[ch:, :, -1] = eye

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)  # (B, T, 2C, H, W)
        return y.unflatten(2, (2, -1)).flatten(1, 2)  # (B, 2T, C, H, W): frame 2j from the first half of j's channels


class VideoAutoencoder(nn.Module):
    def __init__(self, cfg: VideoAutoencoderConfig):
        super().__init__()
        if cfg.in_channels is None or cfg.image_size is None or cfg.frames is None:
            raise GenlabError("model.kind=video_autoencoder needs video data (data.kind videos) to fill its shape")
        levels = len(cfg.channels)
        factor = 2 ** (levels - 1)
        if cfg.image_size % factor:
            raise GenlabError(f"model.image_size={cfg.image_size} must be divisible by {factor}: use fewer channels")
        if cfg.temporal_levels > levels - 1:
            raise GenlabError(
                f"model.temporal_factor={cfg.temporal_factor} needs {cfg.temporal_levels} spatial downsamplings to "
                f"halve time at, model.channels has {levels - 1}: add levels or lower temporal_factor"
            )
        cfg.latent_frames(cfg.frames)  # T must be a multiple of the factor
        self.cfg = cfg
        ch, k = cfg.channels, cfg.temporal_kernel
        halve = set(range(levels - 1 - cfg.temporal_levels, levels - 1))  # encoder levels that halve time

        enc: list[nn.Module] = [PerFrame(nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1))]
        for i in range(levels):
            enc += [PerFrame(ConvBlock(ch[max(i - 1, 0)], ch[i])), TemporalBlock(ch[i], k)]
            if i < levels - 1:
                enc.append(PerFrame(nn.Conv2d(ch[i], ch[i], 3, stride=2, padding=1)))
                if i in halve:
                    enc.append(TemporalDown(ch[i], k))
        enc += [PerFrame(ConvBlock(ch[-1], ch[-1])), TemporalBlock(ch[-1], k)]
        enc.append(PerFrame(_head(ch[-1], 2 * cfg.latent_channels)))
        self.encoder = nn.Sequential(*enc)

        dec: list[nn.Module] = [PerFrame(nn.Conv2d(cfg.latent_channels, ch[-1], 3, padding=1))]
        dec += [PerFrame(ConvBlock(ch[-1], ch[-1])), TemporalBlock(ch[-1], k)]
        for i in reversed(range(levels)):
            dec += [PerFrame(ConvBlock(ch[min(i + 1, levels - 1)], ch[i])), TemporalBlock(ch[i], k)]
            if i > 0:
                up = nn.Sequential(nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(ch[i], ch[i], 3, padding=1))
                dec.append(PerFrame(up))
                if i - 1 in halve:
                    dec.append(TemporalUp(ch[i], k))
        dec.append(PerFrame(_head(ch[0], cfg.in_channels)))
        self.decoder = nn.Sequential(*dec)
        self.register_buffer("scale_factor", torch.ones(()))
        nn.init.constant_(self.encoder[-1].module[-1].bias[cfg.latent_channels :], -6.0)  # log σ² starts at -6

    def _check(self, x: Tensor) -> None:
        c, s = self.cfg.in_channels, self.cfg.image_size
        if x.dim() != 5 or x.shape[2:] != (c, s, s):
            raise GenlabError(f"the video autoencoder takes videos (B, T, {c}, {s}, {s}), got {tuple(x.shape)}")
        self.cfg.latent_frames(x.shape[1])

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, logvar) of q(z|x) for videos x (B, T, C, H, W), each (B, T/f, latent_channels, h, w); logvar
        clamped to [-30, 20]."""
        self._check(x)
        mean, logvar = self.encoder(x).chunk(2, dim=2)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: Tensor) -> Tensor:
        """Latents (B, T', c, h, w) -> videos (B, T'·f, C, S, S), unbounded (trained towards [-1, 1])."""
        if z.dim() != 5 or z.shape[2] != self.cfg.latent_channels:
            raise GenlabError(
                f"the video decoder takes latents (B, T', {self.cfg.latent_channels}, h, w), got {tuple(z.shape)}"
            )
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction through the posterior mean."""
        return self.decode(self.encode(x)[0])


__all__ = ["CausalTemporalConv", "VideoAutoencoder", "VideoAutoencoderConfig"]
