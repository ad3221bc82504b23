"""Latent rectified flow conditioned on text, with classifier-free guidance (the SD3 recipe, small).

z = scale_factor·μ(x) from a frozen KL autoencoder; the flow method's loss on z (x_t = (1−t)·z + t·eps,
target eps − z, logit-normal t with shift) with a DiT reading text tokens (cross-attention or MM-DiT)
and the pooled text; captions are replaced by the null text encode([""]) with probability `text_dropout`.
Sampling integrates from noise with guidance uncond + s·(cond − uncond) (one batched call) and decodes
D(z / scale_factor). The autoencoder (and a genlab-trained CLIP text encoder, `clip:RUN`) are frozen parts: the
run layer loads them when the run is created and their weights are saved with this run (the folder is
self-contained; retraining that CLIP later changes nothing here). The packaged MiniLM is named, not copied.
A density of the latent z is not a likelihood of the image x, so this method declares none.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
from dataclasses import dataclass, field
from typing import Annotated, Literal, NamedTuple

import torch
from torch import Tensor

from genlab.constraints import Pattern, PositiveFloat, Probability
from genlab.errors import GenlabError
from genlab.methods.flow import FlowMethod
from genlab.paths import TimeSampling

DEFAULT_PROMPTS = (
    "a red circle",
    "a blue square",
    "a yellow triangle",
    "a large white circle",
    "a red circle above a blue square",
    "a green square to the left of an orange circle",
    "a small cyan circle",
    "a magenta triangle below a white square",
)


@dataclass
class LatentFlowConfig:
    kind: str = "latent_flow"
    autoencoder: str = "runs/shapes-autoencoder"  # run folder of a trained `autoencoder` method; "": method.init's
    # a genlab.text encoder name: minilm | clip:RUN (copied into this run)
    text_encoder: Annotated[str, Pattern(r"[a-z0-9_]+|clip:.+", "an encoder name: 'minilm' or 'clip:RUN'")] = "minilm"
    init: str = ""  # a latent_flow run (or shipped:NAME) whose DiT this one starts from (fine-tuning); "": random
    # True: method.init's DiT may have fewer blocks than model.depth; its blocks are spread over the deeper DiT
    # (block i at i·depth // theirs) and the others start as the identity (adaLN-Zero), so the grown DiT begins
    # computing exactly what init's did (depth up-scaling)
    grow: bool = False
    frozen: dict = field(default_factory=dict)  # recipes of the frozen parts, recorded when the run is created
    text_dropout: Probability = 0.1  # probability a caption becomes the null text "" (CFG training)
    path: Literal["rectified", "vp_cosine", "vp_ddpm", "ve"] = "rectified"
    target: Literal["x", "eps", "v", "flow"] = "flow"
    time: TimeSampling = field(default_factory=lambda: TimeSampling(kind="logit_normal"))
    loss_weight: Literal["uniform", "min_snr", "edm"] = "uniform"
    sigma_data: PositiveFloat = 1.0  # latents are scaled to unit std


class Text(NamedTuple):
    """Encoded captions as the DiT reads them: tokens (B, L, D), mask (B, L) bool, pooled (B, D)."""

    tokens: Tensor
    mask: Tensor
    pooled: Tensor

    def pad_to(self, length: int) -> Text:
        extra = length - self.tokens.shape[1]
        if extra <= 0:
            return self
        tokens = torch.nn.functional.pad(self.tokens, (0, 0, 0, extra))
        return Text(tokens, torch.nn.functional.pad(self.mask, (0, extra), value=False), self.pooled)

    def take(self, idx: Tensor) -> Text:
        return Text(self.tokens[idx], self.mask[idx], self.pooled[idx])


class Prompts(NamedTuple):
    """The `cond` of a text-to-image sample with negative prompts: row i is guided by positive[i] against
    negative[i] (eps(neg) + s·(eps(pos) − eps(neg))) instead of against the null text ""; a negative "" is
    plain classifier-free guidance."""

    positive: list[str]
    negative: list[str]


def stack_text(parts: list[Text]) -> Text:
    length = max(p.tokens.shape[1] for p in parts)
    parts = [p.pad_to(length) for p in parts]
    return Text(*(torch.cat(fields) for fields in zip(*parts)))


def grown(theirs: dict, have: int, want: int, ours: dict) -> dict:
    """State dict `theirs` of a DiT with `have` blocks as one with `want`: block i becomes block i·want // have,
    every other block keeps its entry of `ours` (a freshly initialised DiT, whose blocks are the identity)."""
    if want < have:
        raise GenlabError(f"method.grow: method.init's DiT has {have} blocks, more than model.depth={want}")
    place = {str(i): str(i * want // have) for i in range(have)}
    out = {k: v for k, v in ours.items() if k.startswith("blocks.")}
    for key, value in theirs.items():
        head, _, rest = key.partition(".")
        if head == "blocks":
            index, _, rest = rest.partition(".")
            key = f"blocks.{place[index]}.{rest}"
        out[key] = value
    return out


@functools.lru_cache(maxsize=4)
def text_encoder(name: str):
    """The frozen packaged encoder `name`, built once per process (its weights are never part of a checkpoint)."""
    from genlab.text import build_text_encoder

    return build_text_encoder(name).eval().requires_grad_(False)


class LatentFlowMethod(FlowMethod):
    likelihood = None  # a density of latents is not an image likelihood
    takes_prompts = True
    model_kind = "dit"  # the denoiser it needs (genlab.methods.video: "video_dit")
    autoencoder_kinds = "autoencoder"  # the method kinds `autoencoder` may name ("|"-separated)

    @classmethod
    def frozen_parts(cls, cfg: LatentFlowConfig) -> dict[str, tuple[str, str]]:
        from genlab.methods.adapters import part_folder

        if not cfg.autoencoder and not cfg.init:
            raise GenlabError('method.autoencoder is "": name an autoencoder run, or a method.init run to take its own')
        parts = {"autoencoder": (cfg.autoencoder, cls.autoencoder_kinds)} if cfg.autoencoder else {}
        kind, _, run = cfg.text_encoder.partition(":")
        if kind == "clip":
            parts["text_encoder"] = (run, "clip")
        if cfg.init:
            parts["init"] = (part_folder(cfg.init), "latent_flow")
        return parts

    @staticmethod
    def init_parts(cfg: LatentFlowConfig, parts: dict) -> dict:
        """`parts` with method.init's autoencoder when method.autoencoder is "" (the latent space its DiT was trained
        in); a GenlabError when the init run reads text with another encoder."""
        image = parts.get("init")
        if image is None:
            return parts
        if image.cfg.text_encoder != cfg.text_encoder:
            raise GenlabError(
                f"method.init={cfg.init} reads text with {image.cfg.text_encoder!r}, this recipe with "
                f"{cfg.text_encoder!r}: use its text_encoder"
            )
        if cfg.autoencoder:
            return parts
        return {**parts, "autoencoder": types.SimpleNamespace(ae=image.autoencoder)}

    def __init__(self, cfg: LatentFlowConfig, model_cfg, parts: dict):
        if model_cfg.kind != self.model_kind:
            raise GenlabError(f"method.kind={cfg.kind} needs model.kind={self.model_kind}, got {model_cfg.kind!r}")
        parts = self.init_parts(cfg, parts)
        ae = parts["autoencoder"].ae
        *_, c, h, _ = ae.cfg.latent_shape()  # (c, h, w); a video autoencoder's (T', c, h, w)
        clip = parts.get("text_encoder")
        if clip is None:
            encoder = text_encoder(cfg.text_encoder)
        else:
            from genlab.text.clip import ClipTextEncoder

            encoder = ClipTextEncoder(clip, name=cfg.text_encoder)
        super().__init__(
            cfg, dataclasses.replace(model_cfg, in_channels=c, image_size=h, num_classes=0, text_dim=encoder.dim)
        )
        self.autoencoder = ae.requires_grad_(False).eval()
        if clip is not None:  # saved with this run: a later retraining of that CLIP changes nothing here
            clip.requires_grad_(False).eval()
        self.text_clip = clip
        object.__setattr__(self, "text_encoder", encoder)  # held outside the module tree (see text.base)
        image = parts.get("init")
        if image is not None:
            # the autoencoder runs' recorded recipes, not their weights: a saved run rebuilds both parts from its
            # records with placeholder weights before its checkpoint is read
            theirs, ours = (json.dumps(c.frozen.get("autoencoder"), sort_keys=True) for c in (image.cfg, cfg))
            if cfg.autoencoder and theirs != ours:
                raise GenlabError(
                    f"method.init={cfg.init} was trained on another autoencoder's latents than method.autoencoder="
                    f'{cfg.autoencoder}: set method.autoencoder: "" to use its own'
                )
            with torch.no_grad():
                self.start_from(image)

    def start_from(self, image: LatentFlowMethod) -> None:
        """Copy the DiT of method.init's run (fine-tuning; with method.grow into a deeper DiT); a GenlabError unless
        the two DiTs have the same layers (with method.grow: the same layers apart from the number of blocks)."""
        theirs, ours = image.model.state_dict(), self.model.state_dict()
        if self.cfg.grow:
            theirs = grown(theirs, len(image.model.blocks), len(self.model.blocks), ours)
        if {k: v.shape for k, v in theirs.items()} != {k: v.shape for k, v in ours.items()}:
            grow = "" if self.cfg.grow else " (or method.grow: true to start a deeper one from it)"
            raise GenlabError(
                f"method.init={self.cfg.init} has another DiT than this recipe's model section: copy its model "
                f"section{grow}"
            )
        self.model.load_state_dict(theirs)

    def train(self, mode: bool = True):
        super().train(mode)
        self.autoencoder.eval()
        if self.text_clip is not None:
            self.text_clip.eval()
        return self

    # -- text

    def encode_text(self, texts: list[str], device) -> Text:
        emb = self.text_encoder.encode(list(texts))
        return Text(emb.tokens.to(device), emb.mask.to(device), emb.pooled.to(device))

    def null_text(self, n: int, device) -> Text:
        """encode([""]) repeated n times: the unconditional input of classifier-free guidance."""
        return self.encode_text([""], device).take(torch.zeros(n, dtype=torch.long, device=device))

    def _drop_labels(self, text: Text) -> Text:
        """Each caption becomes the null text with probability `text_dropout`."""
        n = text.tokens.shape[0]
        drop = torch.rand(n, device=text.tokens.device) < self.cfg.text_dropout  # (B,)
        both = stack_text([text, self.null_text(1, text.tokens.device)])  # rows 0..n-1 captions, row n null
        return both.take(torch.where(drop, n, torch.arange(n, device=drop.device)))

    # -- latents

    @torch.no_grad()
    def to_latent(self, x: Tensor) -> Tensor:
        z = self.autoencoder.encode(x)[0].float()  # fp32 under bf16 autocast: the flow's noise and target stay fp32
        return z * self.autoencoder.scale_factor  # (B, c, h, w), unit scale

    @torch.no_grad()
    def from_latent(self, z: Tensor) -> Tensor:
        return self.autoencoder.decode(z / self.autoencoder.scale_factor).clamp(-1, 1)  # (B, C, S, S)

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        if "text" not in batch:
            raise GenlabError("method.kind=latent_flow needs captioned data (e.g. data.kind=shapes)")
        x = batch["x"]
        return super().loss({"x": self.to_latent(x), "label": self.encode_text(batch["text"], x.device)}, group)

    def guidance_inputs(self, n: int, cond, device):
        """(net(x_t, t, rows), rows of the n samples, rows of their unconditional half) over `text_rows`' table."""
        table, idx, null = self.text_rows(n, cond, device)
        return (lambda x_t, t, i: self.net(x_t, t, table.take(i))), idx, null

    def text_rows(self, n: int, cond, device) -> tuple[Text, Tensor, Tensor]:
        """Prompts (n strings; None: a fixed set, one per block of rows) as rows of one text table + the null text:
        the guided network reads row i for sample i and row n for the unconditional half. With `Prompts`, the
        distinct negative prompts follow the positive rows and sample i's guiding half reads its negative's row
        (negative "" is row n, encode([""]): exactly plain CFG). Returns (table, rows, unconditional rows)."""
        negatives = None
        if isinstance(cond, Prompts):
            cond, negatives = cond.positive, list(cond.negative)
            if len(negatives) != n or not all(isinstance(p, str) for p in negatives):
                raise GenlabError(f"give one negative prompt (a string) per image: got {len(negatives)} for n={n}")
        prompts = [DEFAULT_PROMPTS[i * len(DEFAULT_PROMPTS) // n] for i in range(n)] if cond is None else list(cond)
        if len(prompts) != n or not all(isinstance(p, str) for p in prompts):
            raise GenlabError(f"give one prompt (a string) per image: got {len(prompts)} items for n={n}")
        distinct = [""] + sorted({p for p in negatives or [] if p != ""})  # row n + j holds distinct[j]
        parts = [self.encode_text(prompts, device), self.null_text(1, device)]
        if len(distinct) > 1:
            parts.append(self.encode_text(distinct[1:], device))
        table = stack_text(parts)  # rows: prompts, null, other negatives
        idx = torch.arange(n, device=device)
        if negatives is None:
            null = torch.full_like(idx, n)
        else:
            row = {p: n + j for j, p in enumerate(distinct)}
            null = torch.tensor([row[p] for p in negatives], dtype=torch.long, device=device)
        return table, idx, null

    def finish(self, z: Tensor) -> Tensor:
        return self.from_latent(z)

    def to_state(self, x: Tensor) -> Tensor:
        return self.to_latent(x.to(self.device))

    @property
    def image_shape(self) -> tuple[int, ...]:
        cfg = self.autoencoder.cfg
        return (cfg.in_channels, cfg.image_size, cfg.image_size)
