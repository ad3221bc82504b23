"""Textual inversion (Gal et al. 2022): a new word for a concept, learned from a few images by a frozen model.

A placeholder token "<c>" gets one input embedding v (in_dim,): the word-embedding row the text encoder reads
in its place (genlab.text.base). Everything else is frozen (text encoder, DiT, autoencoder); only v is trained,
by Adam on the run's own flow loss on the concept images' latents z = E(x) (rectified path, the run's time law):

    L(v) = E_{x, t, eps, p} w(t)·‖net(x_t, t, enc_v(p(<c>))) − target(z, eps)‖²,   x_t = a(t)·z + b(t)·eps

with p a caption template ("<c>", "a <c>", ...). v starts from a word (`init`, "shape" by default). Gradients
reach v through the frozen encoder. The result is a safetensors file (`embedding`: (1, in_dim)) whose metadata,
mirrored in a .json beside it, names the token, the text encoder it belongs to, the run and the steps;
`using(run, files)` makes its token usable in that run's prompts ("<c> to the left of a red square").
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from genlab.atomic import atomic_path, atomic_write_text
from genlab.errors import GenlabError
from genlab.paths import bcast, from_x_eps, loss_weight, sample_time

PLACEHOLDER = re.compile(r"<[^<>\s]+>")  # a placeholder token: <name>, no spaces or brackets inside
TEMPLATES = ("{}", "a {}", "an image of a {}", "a picture of a {}", "one {}", "a {} on black")
FORMAT = 1


@dataclass
class Concept:
    """A learned placeholder: `vector` (in_dim,) is its input embedding in `text_encoder`."""

    token: str
    vector: Tensor
    text_encoder: str
    run: str = ""
    steps: int = 0
    init: str = ""
    losses: list[float] = field(default_factory=list)  # mean loss per logged block of steps

    def meta(self) -> dict:
        return {
            "format": FORMAT,
            "token": self.token,
            "text_encoder": self.text_encoder,
            "dim": int(self.vector.numel()),
            "run": self.run,
            "steps": self.steps,
            "init": self.init,
        }


def check_token(token: str) -> str:
    if not isinstance(token, str) or not PLACEHOLDER.fullmatch(token):
        raise GenlabError(f"--token {token!r}: write the placeholder as <name> (no spaces), e.g. --token '<c>'")
    return token


def placeholders(text: str) -> list[str]:
    """The <name> placeholders a text uses, in order of first use."""
    return list(dict.fromkeys(PLACEHOLDER.findall(text or "")))


def check_prompts(prompts: Sequence[str | None], defined: Sequence[str]) -> None:
    """A GenlabError when a prompt uses a placeholder that no loaded embedding defines."""
    for prompt in prompts:
        missing = [p for p in placeholders(prompt or "") if p not in defined]
        if missing:
            have = f" (loaded: {', '.join(defined)})" if defined else ""
            raise GenlabError(
                f"the prompt uses {missing[0]}, which no embedding defines{have}: pass --embedding FILE made by "
                f"genlab textual-inversion --token '{missing[0]}'"
            )


def _encoder(run):
    """The run's text encoder, if it can take placeholders."""
    encoder = run.method.text_encoder
    if encoder.input_embeddings() is None:
        raise GenlabError(
            f"{run.path} reads text with {encoder.name!r}, which takes no learned placeholders: textual inversion "
            "needs a run with method.text_encoder: minilm"
        )
    return encoder


def _word_vector(encoder, word: str) -> Tensor:
    ids = encoder.tokenizer(word, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise GenlabError(f"--init {word!r} is {len(ids)} tokens for {encoder.name!r}: give one word, e.g. 'shape'")
    return encoder.input_embeddings().weight[ids[0]].detach().clone()  # (in_dim,)


def word_concept(run, word: str, token: str = "<c>") -> Concept:
    """The concept whose vector is `word`'s own input embedding: "<c>" then reads exactly as `word` does (the
    starting point of `learn`, and its baseline)."""
    from genlab.generate import text_run

    run = text_run(run)
    encoder = _encoder(run)
    return Concept(check_token(token), _word_vector(encoder, word).cpu(), encoder.name, str(run.path), 0, word)


def read_concept_images(images, run) -> Tensor:
    """Image files (or a (N, C, H, W) tensor in [-1, 1]) as the run's image size, (N, C, H, W)."""
    from genlab.data.images import load_images

    c, h, w = run.method.image_shape
    if isinstance(images, (str, Path)):
        images = [images]
    if isinstance(images, Tensor):
        x = images.float()
        if x.dim() != 4 or tuple(x.shape[1:]) != (c, h, w):
            raise GenlabError(f"images must be (N, {c}, {h}, {w}) in [-1, 1] for this run, got {tuple(x.shape)}")
    else:
        paths = list(images)
        if not paths:
            raise GenlabError("textual inversion needs at least one image of the concept (3-5 work well)")
        x = load_images(paths, channels=c, size=h)
    if x.shape[0] < 1:
        raise GenlabError("textual inversion needs at least one image of the concept (3-5 work well)")
    return x


def _draw(method, z: Tensor, n_prompts: int, batch: int, generator: torch.Generator) -> tuple[Tensor, ...]:
    """(image index (B,), template index (B,), t (B,) by the run's time law, eps (B, c, h, w)), drawn on the CPU
    from `generator` (the same draws on any device)."""
    idx = torch.randint(len(z), (batch,), generator=generator)
    which = torch.randint(n_prompts, (batch,), generator=generator)
    t = sample_time(method.cfg.time, batch, generator=generator)
    return idx, which, t, torch.randn((batch, *z.shape[1:]), generator=generator)


def _flow_loss(method, z: Tensor, prompts: list[str], table: dict[str, Tensor], draw: tuple[Tensor, ...]) -> Tensor:
    """The run's flow loss on latents z[idx] captioned prompts[which] at (t, eps) of `draw`, with the placeholders
    of `table`: x_t = a(t)·z + b(t)·eps, w(t)·‖net(x_t, t, text) − target‖² averaged over the batch."""
    from genlab.methods.latent import Text

    cfg, device = method.cfg, z.device
    idx, which, t, eps = (d.to(device) for d in draw)
    z0, eps, t = z[idx], eps.to(z.dtype), t.to(z.dtype)
    x_t = bcast(method.path.a(t), z0) * z0 + bcast(method.path.b(t), z0) * eps
    target = from_x_eps(method.path, cfg.target, t, z0, eps)
    with method.text_encoder.concepts(table):
        emb = method.text_encoder.encode_live(prompts)  # (P, L, dim): grads reach the vectors of `table`
    text = Text(emb.tokens.to(device), emb.mask.to(device), emb.pooled.to(device)).take(which)
    mse = (method.net(x_t, t, text) - target).pow(2).flatten(1).mean(1)  # (B,)
    w = loss_weight(cfg.loss_weight, method.path, cfg.target, t, sigma_data=cfg.sigma_data)
    return (w * mse).mean()


def concept_loss(run, images, concept: Concept, *, draws: int = 64, seed: int = 0, templates=TEMPLATES) -> float:
    """The flow loss of `concept` on `images` over `draws` fixed (image, template, t, eps) draws from `seed`: the
    same draws for any vector, so two embeddings (say the init word and the learned one) compare exactly."""
    from genlab.generate import text_run

    run = text_run(run)
    method = run.method
    encoder = _encoder(run)
    z = method.to_latent(read_concept_images(images, run).to(method.device))
    prompts = [p.format(concept.token) for p in templates]
    draw = _draw(method, z, len(prompts), draws, torch.Generator().manual_seed(seed))
    vector = concept.vector.to(encoder.input_embeddings().weight)
    with torch.no_grad():
        return _flow_loss(method, z, prompts, {concept.token: vector}, draw).item()


def learn(
    run=None,
    images=(),
    *,
    token: str = "<c>",
    steps: int = 300,
    lr: float = 5e-3,
    batch_size: int = 8,
    init: str = "shape",
    templates: Sequence[str] = TEMPLATES,
    seed: int = 0,
    log_every: int = 50,
    callback: Callable[[int, float], None] | None = None,
) -> Concept:
    """Learn the input embedding of `token` from `images` (paths or a tensor) with the frozen text-to-image `run`
    (default: the shipped checkpoint). `callback(step, mean loss)` runs every `log_every` steps."""
    from genlab.generate import text_run

    check_token(token)
    if steps < 1 or batch_size < 1 or not lr > 0:
        raise GenlabError(f"--steps and batch size must be >= 1 and --lr > 0, got {steps}, {batch_size}, {lr}")
    if not templates or any("{}" not in p for p in templates):
        raise GenlabError("each caption template needs a {} where the placeholder goes, e.g. 'a {}'")
    run = text_run(run)
    method, encoder = run.method, _encoder(run)
    x = read_concept_images(images, run)
    device = method.device
    generator = torch.Generator().manual_seed(seed)  # CPU draws, moved: the same run on any device
    vector = torch.nn.Parameter(_word_vector(encoder, init).to(device))  # (in_dim,)
    opt = torch.optim.Adam([vector], lr=lr)
    prompts = [p.format(token) for p in templates]
    was_training = method.training
    method.eval()
    losses, block = [], []
    try:
        z = method.to_latent(x.to(device))  # (N, c, h, w) latents of the concept images, fixed
        for step in range(1, steps + 1):
            loss = _flow_loss(
                method, z, prompts, {token: vector}, _draw(method, z, len(prompts), batch_size, generator)
            )
            (grad,) = torch.autograd.grad(loss, [vector])  # only v: the frozen weights get no .grad
            vector.grad = grad
            opt.step()
            block.append(loss.item())
            if step % log_every == 0 or step == steps:
                losses.append(sum(block) / len(block))
                block = []
                if callback is not None:
                    callback(step, losses[-1])
    finally:
        method.train(was_training)
    return Concept(token, vector.detach().cpu(), encoder.name, str(run.path), steps, init, losses)


def save(concept: Concept, out: str | Path) -> Path:
    """`out` (.safetensors: `embedding` (1, in_dim), metadata) and the same name .json, both written atomically."""
    out = Path(out)
    if out.suffix != ".safetensors":
        raise GenlabError(f"-o {out}: use a .safetensors file name")
    meta = concept.meta()
    with atomic_path(out) as tmp:
        save_file(
            {"embedding": concept.vector.detach().float().cpu().reshape(1, -1).contiguous()},
            str(tmp),
            metadata={k: str(v) for k, v in meta.items()},
        )
    info = {**meta, "losses": [round(v, 6) for v in concept.losses], "written": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write_text(out.with_suffix(".json"), json.dumps(info, indent=2) + "\n")
    return out


def load(path: str | Path) -> Concept:
    """A concept saved by `save` (its .safetensors file)."""
    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"--embedding {path}: no such file; make one with genlab textual-inversion")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            vector = f.get_tensor("embedding") if "embedding" in f.keys() else None
    except (SafetensorError, OSError) as e:
        raise GenlabError(f"--embedding {path}: not a readable safetensors file ({e}); make it again") from None
    if vector is None or vector.dim() != 2 or vector.shape[0] != 1 or "token" not in meta:
        raise GenlabError(f"--embedding {path}: not a textual-inversion embedding (genlab textual-inversion makes one)")
    return Concept(
        check_token(meta["token"]),
        vector[0].float(),
        meta.get("text_encoder", ""),
        meta.get("run", ""),
        int(meta.get("steps", 0)),
        meta.get("init", ""),
    )


def _as_list(embeddings) -> list:
    if embeddings is None:
        return []
    if isinstance(embeddings, (str, Path, Concept)):
        return [embeddings]
    return list(embeddings)


@contextlib.contextmanager
def using(run, embeddings=None, *, prompts: Sequence[str | None] = ()) -> Iterator:
    """Within the block, the tokens of `embeddings` (files or Concepts) are words of `run`'s prompts. Checks first
    that every placeholder in `prompts` is defined and that each embedding was made for this run's text encoder."""
    concepts = [c if isinstance(c, Concept) else load(c) for c in _as_list(embeddings)]
    tokens = [c.token for c in concepts]
    if len(set(tokens)) < len(tokens):
        raise GenlabError(f"two embeddings define the same token ({', '.join(tokens)}): give each token once")
    check_prompts(prompts, tokens)
    if not concepts:
        yield run
        return
    encoder = _encoder(run)
    dim = encoder.input_embeddings().embedding_dim
    for c in concepts:
        if c.text_encoder != encoder.name or c.vector.numel() != dim:
            raise GenlabError(
                f"the embedding of {c.token} was made for text encoder {c.text_encoder!r} ({c.vector.numel()}-d) but "
                f"{run.path} reads {encoder.name!r} ({dim}-d): learn it again with --run {run.path}"
            )
    weight = encoder.input_embeddings().weight
    with encoder.concepts({c.token: c.vector.to(weight) for c in concepts}):
        yield run
