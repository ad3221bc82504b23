"""Adapters trained on a frozen text-to-image DiT: GLIGEN grounded boxes and IP-Adapter image prompts.

Both hold a `latent_flow` run as a frozen part (`method.base`, by default the checkpoint shipped with genlab; its
weights are saved with the adapter run, as a student saves its teacher) and train only their own layers, which the
method attaches to the base's DiT blocks (`DiTBlock.after_attention` / `cross_extras`) for the duration of a call.
The loss is the base's own latent rectified-flow loss, caption dropout included.

GLIGEN (Li et al. 2023): boxes b_j = (x0, y0, x1, y1) in [0, 1] with phrases p_j become grounding tokens
g_j = MLP([Fourier(b_j), pooled text(p_j)]) (B, M, W), padded and masked. After each block's self-attention a gated
self-attention over image and grounding tokens adds h += tanh(γ)·proj(SelfAttn(LN([h; g]))[:, :N]) with γ = 0 at
the start, so training starts from the base model exactly; a row without boxes is left unchanged. Training boxes are
read from the training images by the procedural detector (8-connected components of named colours: exact on the
rendered shapes), each with the phrase "a COLOUR KIND". Scheduled sampling: grounding acts while t >= 1 − fraction.

IP-Adapter (Ye et al. 2023): a frozen CLIP image embedding e (B, E) (`method.image_encoder`: a clip run or a
captioner run's tower) -> K tokens LN(Linear(e)) (B, K, W); decoupled cross-attention in each block adds
scale·W_out·Attn(q, k'(tokens), v'(tokens)) to the text cross-attention's update, with the block's own frozen query
and output projection and new k', v' (k' starts as the text key projection, v' at zero: the start is a no-op).
The image embedding is zeroed with probability `image_dropout` in training; guidance's unconditional half reads the
zero embedding, so classifier-free guidance pushes towards the image. Scale 0 is the base model exactly.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.constraints import NonEmpty, NonNegFloat, PositiveFloat, PositiveInt, Probability
from genlab.errors import GenlabError
from genlab.methods.base import ODE_SETTINGS, Method, randn
from genlab.models.dit import DiTBlock, heads_merge, heads_split, key_mask
from genlab.samplers import guided
from genlab.settings import DEFAULT_SETTINGS, Callback, Samples, SampleSettings

Box = tuple[str, tuple[float, float, float, float]]  # (phrase, (x0, y0, x1, y1)) in [0, 1], y down


def part_folder(name: str) -> str:
    """The run folder a part names: a path, or "shipped:NAME" for a checkpoint shipped in the package."""
    from genlab.checkpoint import run_folder  # genlab.checkpoint imports the method registry

    return str(run_folder(name))


# ----------------------------------------------------------------------------- boxes


def parse_boxes(text: str) -> list[Box]:
    """'PHRASE:x0,y0,x1,y1;PHRASE:...' (coordinates in [0, 1], x0 < x1, y0 < y1, y down) -> boxes."""
    example = 'e.g. --boxes "a red circle:0.1,0.1,0.45,0.45;a blue square:0.55,0.5,0.9,0.9"'
    boxes = []
    for item in (s.strip() for s in text.split(";")):
        if not item:
            continue
        phrase, sep, coords = item.rpartition(":")
        if not sep or not phrase.strip():
            raise GenlabError(f"--boxes item {item!r} is not PHRASE:x0,y0,x1,y1; {example}")
        try:
            values = tuple(float(v) for v in coords.split(","))
        except ValueError:
            raise GenlabError(f"--boxes item {item!r}: the coordinates must be four numbers; {example}") from None
        boxes.append((phrase.strip(), check_box(values, item)))
    if not boxes:
        raise GenlabError(f"--boxes is empty; {example}")
    return boxes


def check_box(values, where: str) -> tuple[float, float, float, float]:
    values = tuple(float(v) for v in values)
    if len(values) != 4:
        raise GenlabError(f"box {where!r}: give four coordinates x0,y0,x1,y1, got {len(values)}")
    x0, y0, x1, y1 = values
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise GenlabError(f"box {where!r}: coordinates must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")
    return values


def image_objects(image: np.ndarray) -> list[tuple[str, str, tuple[float, float, float, float], np.ndarray]]:
    """(colour, kind, box in [0, 1], boolean mask (H, W)) of each object of one uint8 (H, W, 3) shapes image, largest
    first: the objects of `genlab.metrics.geneval.detect_objects`, with their boxes."""
    from genlab.metrics.geneval import object_masks

    side = image.shape[0]
    found = []
    for d, mask in object_masks(image):
        ys, xs = np.nonzero(mask)
        box = (xs.min() / side, ys.min() / side, (xs.max() + 1) / side, (ys.max() + 1) / side)
        found.append((d.colour, d.kind, tuple(float(v) for v in box), mask))
    return found


def fourier(boxes: Tensor, freqs: int) -> Tensor:
    """(..., 4) coordinates -> (..., 8·freqs) features sin/cos(2^k·π·c), k < freqs (GLIGEN's box encoding)."""
    scales = math.pi * 2.0 ** torch.arange(freqs, device=boxes.device, dtype=boxes.dtype)  # (F,)
    ang = boxes[..., None] * scales  # (..., 4, F)
    return torch.cat([ang.sin(), ang.cos()], dim=-1).flatten(-2)


# ----------------------------------------------------------------------------- layers


class GatedSelfAttention(nn.Module):
    """h + tanh(k·γ)·proj(SelfAttn(LN([h; g]))[:, :N]) on the rows where `active`; γ starts at 0 (k: gate_scale)."""

    def __init__(self, width: int, heads: int, gate_scale: float = 1.0):
        super().__init__()
        self.heads, self.gate_scale = heads, gate_scale
        self.norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.gate = nn.Parameter(torch.zeros(()))
        self.context: tuple[Tensor, Tensor] | None = None  # (grounding tokens (B, M, W), mask (B, M)) during a call

    def forward(self, h: Tensor) -> Tensor:
        g, gmask = self.context
        n = h.shape[1]
        x = self.norm(torch.cat([h, g.to(h.dtype)], dim=1))  # (B, N + M, W)
        q, k, v = (heads_split(z, self.heads) for z in self.qkv(x).chunk(3, dim=-1))  # (B, nh, N + M, d)
        keys = torch.cat([gmask.new_ones(h.shape[0], n), gmask], dim=1)  # image tokens always attend
        out = self.proj(heads_merge(F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask(keys))))[:, :n]
        active = gmask.any(dim=1).to(h.dtype)[:, None, None]  # (B, 1, 1): rows without boxes stay the base's
        return h + torch.tanh(self.gate_scale * self.gate) * active * out


class ImageCrossAttention(nn.Module):
    """The decoupled image cross-attention of one block: scale·W_out·Attn(q, k'(c), v'(c)) for image tokens c."""

    def __init__(self, block: DiTBlock):
        super().__init__()
        width = block.cross.q.in_features
        self.heads = block.heads
        self.k = nn.Linear(width, width)
        self.v = nn.Linear(width, width)
        with torch.no_grad():  # k' starts as the text key projection, v' at zero (the start is a no-op)
            self.k.weight.copy_(block.cross.kv.weight[:width])
            self.k.bias.copy_(block.cross.kv.bias[:width])
        nn.init.zeros_(self.v.weight)
        nn.init.zeros_(self.v.bias)
        self.context: tuple[Tensor, float] | None = None  # (image tokens (B, K, W), scale) during a call

    def forward(self, block: DiTBlock, h: Tensor) -> Tensor:
        tokens, scale = self.context
        tokens = tokens.to(h.dtype)
        q = heads_split(block.cross.q(block.cross.norm(h)), self.heads)  # (B, nh, N, d): the text query
        k, v = heads_split(self.k(tokens), self.heads), heads_split(self.v(tokens), self.heads)  # (B, nh, K, d)
        out = heads_merge(F.scaled_dot_product_attention(q, k, v))  # (B, N, W)
        return scale * F.linear(out, block.cross.out.weight)  # the output projection is linear: W(a + b) = Wa + Wb


# ----------------------------------------------------------------------------- methods


@dataclass
class GligenConfig:
    kind: str = "gligen"
    base: Annotated[str, NonEmpty()] = "shipped:shapes-t2i"  # a latent_flow run folder, or shipped:NAME
    frozen: dict = field(default_factory=dict)  # the base's recipe, recorded when the run is created
    max_boxes: PositiveInt = 4  # grounding tokens per image
    fourier_freqs: PositiveInt = 8  # frequencies per box coordinate
    gate_scale: PositiveFloat = 10.0  # the gate is tanh(k·γ): k times γ's learning rate (1: the paper's tanh(γ))
    grounding_fraction: Probability = 1.0  # sampling: grounding acts for this share of the time (from t = 1)
    ground_unconditional: bool = True  # sampling: guidance's unconditional half is grounded too


@dataclass
class IPAdapterConfig:
    kind: str = "ip_adapter"
    base: Annotated[str, NonEmpty()] = "shipped:shapes-t2i"  # a latent_flow run folder, or shipped:NAME
    image_encoder: Annotated[str, NonEmpty()] = "shipped:shapes-captioner"  # a clip run, or a captioner's tower
    frozen: dict = field(default_factory=dict)  # the parts' recipes, recorded when the run is created
    tokens: PositiveInt = 4  # image tokens K
    image_dropout: Probability = 0.1  # the image embedding is zeroed (classifier-free guidance training)
    image_scale: NonNegFloat = 1.0  # default weight of the image attention when sampling


class AdapterMethod(Method):
    """What GLIGEN and IP-Adapter share: the frozen base, attaching layers, guided sampling with per-row inputs."""

    likelihood = None
    takes_prompts = True
    sample_settings = ODE_SETTINGS

    def __init__(self, cfg, model_cfg, parts: dict):
        super().__init__()
        base = parts["base"]
        if not getattr(base, "takes_prompts", False) or not all(isinstance(b, DiTBlock) for b in base.model.blocks):
            raise GenlabError(f"method.base={cfg.base} must be a latent_flow run with a cross-attention DiT")
        if any(b.cross is None for b in base.model.blocks):
            raise GenlabError(f"method.base={cfg.base}: its DiT reads no text (model.text_mode cross needed)")
        self.cfg = cfg
        self.base = base.requires_grad_(False).eval()
        self.width = base.model.blocks[0].qkv.in_features

    def train(self, mode: bool = True):
        super().train(mode)
        self.base.eval()
        return self

    @property
    def image_shape(self) -> tuple[int, ...]:
        return self.base.image_shape

    # what each subclass provides: its layers, hooked into the blocks, and the context of given rows
    def hooks(self) -> Iterator[tuple[list, nn.Module]]:
        raise NotImplementedError

    @contextlib.contextmanager
    def attached(self, contexts: list | None):
        """The base's blocks with this adapter's layers attached (the i-th reading contexts[i]) inside the `with`
        statement, detached after it; contexts None: the base model as it is."""
        if contexts is None:
            yield
            return
        hooks = list(self.hooks())
        try:
            for (where, layer), ctx in zip(hooks, contexts):
                layer.context = ctx
                where.append(layer)
            yield
        finally:
            for where, layer in hooks:
                if layer in where:
                    where.remove(layer)
                layer.context = None

    def sample_with(
        self,
        n: int,
        cond,
        settings: SampleSettings,
        generator: torch.Generator | None,
        callback: Callback | None,
        noise: Tensor | None,
        contexts: Callable[[Tensor, Tensor, Tensor], list | None],
    ) -> Samples:
        """n samples of the base with the adapter: `contexts(sample_rows, unconditional (bool rows), t)` gives the
        layers' contexts of a network call over rows of samples (None: no adapter in that call)."""
        base, device = self.base, self.device
        net, c, null = base.guidance_inputs(n, cond, device)
        null = torch.full_like(c, n) if null is None else null

        def model(x_t: Tensor, t: Tensor, rows: Tensor) -> Tensor:  # rows < n: sample rows; >= n: its null half
            who, uncond = rows % n, rows >= n
            with self.attached(contexts(who, uncond, t)):
                return net(x_t, t, torch.where(uncond, null[who], c[who]))

        idx = torch.arange(n, device=device)
        fn = guided(model, idx, scale=settings.guidance_scale, null_cond=idx + n, interval=settings.interval)
        noise = randn((n, *base.shape), generator=generator, device=device) if noise is None else noise.to(device)
        return base.integrate(fn, noise, settings, generator, callback)


class GligenMethod(AdapterMethod):
    @classmethod
    def frozen_parts(cls, cfg: GligenConfig) -> dict[str, tuple[str, str]]:
        return {"base": (part_folder(cfg.base), "latent_flow")}

    def __init__(self, cfg: GligenConfig, model_cfg, parts: dict):
        super().__init__(cfg, model_cfg, parts)
        width, text_dim = self.width, self.base.text_encoder.dim
        self.grounding = nn.Sequential(  # [Fourier(box), pooled phrase] -> a grounding token
            nn.Linear(8 * cfg.fourier_freqs + text_dim, width),
            nn.SiLU(),
            nn.Linear(width, width),
            nn.SiLU(),
            nn.Linear(width, width),
        )
        self.layers = nn.ModuleList(GatedSelfAttention(width, b.heads, cfg.gate_scale) for b in self.base.model.blocks)
        self._phrases: dict[str, Tensor] = {}  # pooled phrase embeddings, computed once each

    def hooks(self):
        return ((b.after_attention, layer) for b, layer in zip(self.base.model.blocks, self.layers))

    def phrase_embeddings(self, phrases: list[str]) -> Tensor:
        """Pooled text embeddings (P, text_dim) of phrases (the base's frozen encoder), on the method's device."""
        new = sorted({p for p in phrases if p not in self._phrases})
        if new:
            pooled = self.base.encode_text(new, torch.device("cpu")).pooled.float()
            self._phrases.update(zip(new, pooled))
        if not phrases:
            return torch.zeros(0, self.base.text_encoder.dim, device=self.device)
        return torch.stack([self._phrases[p] for p in phrases]).to(self.device)

    def tokens(self, boxes: list[list[Box]]) -> tuple[Tensor, Tensor]:
        """Grounding tokens (B, M, W) and mask (B, M) of per-row box lists (at most max_boxes each)."""
        m = self.cfg.max_boxes
        if any(len(row) > m for row in boxes):
            raise GenlabError(f"at most {m} boxes per image (method.max_boxes): give fewer boxes")
        b, device = len(boxes), self.device
        coords = torch.zeros(b, m, 4, device=device)
        mask = torch.zeros(b, m, dtype=torch.bool, device=device)
        flat = [p for row in boxes for p, _ in row]
        emb = self.phrase_embeddings(flat)  # (P, text_dim)
        text = torch.zeros(b, m, emb.shape[1], device=device)
        k = 0
        for i, row in enumerate(boxes):
            for j, (_, box) in enumerate(row):
                coords[i, j] = torch.tensor(box, device=device)
                text[i, j], mask[i, j] = emb[k], True
                k += 1
        g = self.grounding(torch.cat([fourier(coords, self.cfg.fourier_freqs), text], dim=-1))  # (B, M, W)
        return g * mask[..., None], mask

    def contexts(self, boxes: list[list[Box]]) -> list | None:
        if not any(boxes):
            return None
        g, mask = self.tokens(boxes)
        return [(g, mask)] * len(self.layers)

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        from genlab.data.images import tensor_to_uint8

        images = tensor_to_uint8(batch["x"].detach().float().cpu())  # (B, H, W, 3)
        boxes = [[(f"a {c} {k}", box) for c, k, box, _ in image_objects(im)][: self.cfg.max_boxes] for im in images]
        with self.attached(self.contexts(boxes)):
            loss, logs = self.base.loss(batch, group)
        return loss, {
            **logs,
            "gate": torch.tanh(torch.stack([la.gate_scale * la.gate for la in self.layers])).abs().mean().detach(),
        }

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
        boxes: list | None = None,
        grounding_fraction: float | None = None,
    ) -> Samples:
        """n samples for prompts `cond` with `boxes`: one list of (phrase, (x0, y0, x1, y1)) for every sample, or one
        list per sample; None: the base model."""
        rows = per_sample_boxes(boxes, n)
        fraction = self.cfg.grounding_fraction if grounding_fraction is None else grounding_fraction
        cached = self.contexts(rows)
        if cached is None:
            return self.sample_with(n, cond, settings, generator, callback, noise, lambda *_: None)
        g, mask = cached[0]

        def contexts(who: Tensor, uncond: Tensor, t: Tensor) -> list | None:
            if float(t.max()) < 1 - fraction:  # scheduled sampling: the base alone for the last steps
                return None
            keep = mask[who]  # (B, M)
            if not self.cfg.ground_unconditional:  # the unconditional half reads no boxes: guidance amplifies them
                keep = keep & ~uncond[:, None]
            return [(g[who], keep)] * len(self.layers)

        return self.sample_with(n, cond, settings, generator, callback, noise, contexts)


def per_sample_boxes(boxes, n: int) -> list[list[Box]]:
    """One box list per sample from None, one list for all, or n lists; each box checked."""
    if boxes is None:
        return [[] for _ in range(n)]
    boxes = list(boxes)
    one = not boxes or isinstance(boxes[0][0], str)
    rows = [boxes] * n if one else boxes
    if len(rows) != n:
        raise GenlabError(f"give one list of boxes for all samples or one per sample: got {len(rows)} for n={n}")
    return [[(str(p), check_box(b, str(p))) for p, b in row] for row in rows]


class IPAdapterMethod(AdapterMethod):
    @classmethod
    def frozen_parts(cls, cfg: IPAdapterConfig) -> dict[str, tuple[str, str]]:
        return {
            "base": (part_folder(cfg.base), "latent_flow"),
            "image_encoder": (part_folder(cfg.image_encoder), "clip|captioner"),
        }

    def __init__(self, cfg: IPAdapterConfig, model_cfg, parts: dict):
        super().__init__(cfg, model_cfg, parts)
        enc = parts["image_encoder"]
        clip = enc.encoder if enc.kind == "captioner" else enc
        self.image_encoder = clip.requires_grad_(False).eval()
        dim = clip.model.cfg.width
        self.project = nn.Linear(dim, cfg.tokens * self.width)  # e (B, E) -> K tokens
        self.project_norm = nn.LayerNorm(self.width)
        self.layers = nn.ModuleList(ImageCrossAttention(b) for b in self.base.model.blocks)

    def train(self, mode: bool = True):
        super().train(mode)
        self.image_encoder.eval()
        return self

    def hooks(self):
        return ((b.cross_extras, layer) for b, layer in zip(self.base.model.blocks, self.layers))

    @torch.no_grad()
    def embed(self, images: Tensor) -> Tensor:
        """Unit CLIP image embeddings (B, E) of images (B, C, H, W) in [-1, 1] (resized to the encoder's size)."""
        size = self.image_encoder.model.cfg.image_size
        x = images.to(self.device, torch.float32)
        if x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return self.image_encoder.embed_images(x).float()

    def image_tokens(self, emb: Tensor) -> Tensor:
        """Image tokens (B, K, W) of embeddings (B, E) (zero rows: the null image)."""
        return self.project_norm(self.project(emb).unflatten(-1, (self.cfg.tokens, self.width)))

    def loss(self, batch: dict, group: str = "model") -> tuple[Tensor, dict]:
        emb = self.embed(batch["x"])
        keep = torch.rand(len(emb), device=emb.device) >= self.cfg.image_dropout
        tokens = self.image_tokens(emb * keep[:, None].to(emb.dtype))
        with self.attached([(tokens, 1.0)] * len(self.layers)):
            return self.base.loss(batch, group)

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
        image: Tensor | None = None,
        image_scale: float | None = None,
    ) -> Samples:
        """n samples for prompts `cond` and the image prompt `image` ((C, H, W) for all samples or (n, C, H, W), in
        [-1, 1]) at `image_scale` (default method.image_scale); no image or scale 0: the base model exactly."""
        scale = self.cfg.image_scale if image_scale is None else float(image_scale)
        if scale < 0:
            raise GenlabError(f"--image-scale must be >= 0, got {scale}")
        if image is None or scale == 0:
            return self.sample_with(n, cond, settings, generator, callback, noise, lambda *_: None)
        images = image[None] if image.dim() == 3 else image
        if len(images) not in (1, n):
            raise GenlabError(f"give one image prompt for all samples or one per sample: got {len(images)} for n={n}")
        emb = self.embed(images).expand(n, -1)  # (n, E)
        both = self.image_tokens(torch.cat([emb, torch.zeros_like(emb[:1])]))  # rows: samples, then the null image

        def contexts(who: Tensor, uncond: Tensor, t: Tensor) -> list:
            return [(both[torch.where(uncond, n, who)], scale)] * len(self.layers)

        return self.sample_with(n, cond, settings, generator, callback, noise, contexts)


def require_adapter(method: Method, flag: str) -> None:
    """A GenlabError that says which run to train unless `method` is the adapter that `flag` needs."""
    wanted, cls, name = ("a gligen", GligenMethod, "shapes-gligen")
    if flag != "--boxes":
        wanted, cls, name = ("an ip_adapter", IPAdapterMethod, "shapes-ip-adapter")
    if not isinstance(method, cls):
        raise GenlabError(
            f"{flag} needs {wanted} run, not a {method.kind!r} run: genlab train recipes/{name}.yaml, "
            f"then --run runs/{name}"
        )


def adapter_options(method: Method, *, boxes=None, image=None, image_scale=None) -> dict:
    """The sample() options of an adapter run, refused with what to use when the run is not that adapter."""
    opts = {}
    if boxes is not None:
        require_adapter(method, "--boxes")
        opts["boxes"] = boxes
    if image is not None or image_scale is not None:
        require_adapter(method, "--image-prompt")
        if image is None:
            raise GenlabError("--image-scale weighs an image prompt: give --image-prompt IMAGE too")
        opts.update(image=image, image_scale=image_scale)
    return opts


def adapter_inputs(method: Method, boxes, image_prompt: str | None, image_scale: float | None) -> dict:
    """`adapter_options` from --boxes (text, or parsed boxes) and the --image-prompt file (read at the run's size)."""
    image = None
    if image_prompt is not None:
        from genlab.data.images import load_images

        require_adapter(method, "--image-prompt")
        image = load_images([image_prompt], channels=3, size=method.image_shape[-1])[0]  # (3, S, S)
    parsed = parse_boxes(boxes) if isinstance(boxes, str) else boxes
    return adapter_options(method, boxes=parsed, image=image, image_scale=image_scale)
