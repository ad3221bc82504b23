"""Prompt-to-prompt editing (Hertz et al. 2022) for the text-to-image DiT: attention maps of the source prompt
injected while the edited prompt is sampled from the same noise.

The source and the edited prompt are one batch of 2n samples [source × n, edit × n] from n noises drawn twice.
In every text attention of the network the edited rows' probabilities P (B, heads, image tokens, text tokens)
are rewritten from the source rows' P_src:
  swap    (word swap, "a red circle" -> "a blue circle"): edited token j reads the source token it is aligned
          with, P[..., j] = P_src[..., m(j)]; a substituted word of another token count maps proportionally;
  refine  (a word added, "a circle" -> "a small circle"): tokens the two prompts share (a difflib alignment of
          the token ids) read the source's maps, the new tokens keep their own maps;
  weights (re-weighting, {"red": 2.0}): the edited rows' column of each of the word's tokens is multiplied by its
          factor (after the injection; at every step, since it is the edit itself; 1 is a no-op).
Injection runs while t >= 1 − share (t = 1 is noise): the first `share` of the time, which on the uniform grid of
the shipped recipe is the first `share` of the steps; share 0 is naive re-sampling with the same seed. Like the
paper, rows are not renormalised after the rewrite. Under classifier-free guidance the network's batch is
[cond rows, null rows] and only the edited cond rows are rewritten: the unconditional predictions stay plain.

Cross-attention DiT: every block's cross-attention is controlled (image queries × text keys).
MM-DiT (one joint softmax over [image, text] keys, text tokens updated by every block): the image-query ×
text-key block of each joint attention is rewritten as above, and the image-query × image-key block of the edited
rows is rescaled by (1 − new text mass) / (1 − old text mass), so each image query's row still sums to one and
keeps its own spatial shape; text-query rows are not touched.

What is not controlled: the pooled text, which this DiT adds to the adaLN conditioning vector of every block,
is the edited prompt's from the first step. The self-attention maps are not injected either.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from genlab.errors import GenlabError
from genlab.settings import Samples

MODES = ("swap", "refine")


def align_tokens(source: list[int], target: list[int], mode: str) -> tuple[list[int], list[bool]]:
    """For each target token, (the source token whose attention map it reads, whether it reads one); by a difflib
    alignment of the token ids. swap: substituted spans map proportionally (one word to one word, or a word of
    k tokens to one of m), inserted tokens keep their own map; refine: only shared tokens map."""
    if mode not in MODES:
        raise GenlabError(f"unknown prompt-to-prompt mode {mode!r}: use one of {', '.join(MODES)}")
    index, use = [0] * len(target), [False] * len(target)
    ops = difflib.SequenceMatcher(None, source, target, autojunk=False).get_opcodes()
    for op, i1, i2, j1, j2 in ops:
        if op == "equal" or (op == "replace" and mode == "swap"):
            for j in range(j1, j2):
                index[j], use[j] = i1 + (j - j1) * (i2 - i1) // (j2 - j1), True
    return index, use


def word_positions(encoder, ids: list[int], word: str) -> list[int]:
    """Positions in the token ids `ids` of every occurrence of `word` (its tokens without the encoder's special
    tokens, found as those it shares with the empty text)."""
    empty, own = encoder.tokenize([""])[0], encoder.tokenize([word])[0]
    lead = next((k for k in range(len(empty)) if k >= len(own) or own[k] != empty[k]), len(empty))
    room = len(empty) - lead
    tail = next((k for k in range(room) if k >= len(own) - lead or own[-1 - k] != empty[-1 - k]), room)
    core = own[lead : len(own) - tail]
    if not core:
        return []
    starts = [p for p in range(len(ids) - len(core) + 1) if ids[p : p + len(core)] == core]
    return [p + k for p in starts for k in range(len(core))]


class AttentionControl:
    """Rewrites the edited rows' text-attention probabilities from the source rows' (see the module docstring).
    n: pairs; the network's batch is [source × n, edit × n] (+ the same again for the null rows under CFG).
    index, use, weight (L,): per edited token, the source token it reads, whether it does, its factor."""

    def __init__(self, n: int, index: list[int], use: list[bool], weight: list[float], *, share: float):
        self.n, self.share = n, share
        self.index, self.use, self.weight = torch.tensor(index), torch.tensor(use), torch.tensor(weight)
        self.reweights = any(w != 1.0 for w in weight)
        self.active = share > 0

    def timed(self, fn: Callable) -> Callable:
        """`fn(x_t, t)` that first switches injection on for t >= 1 − share (the `wrap` of a sampler)."""

        def at(x_t: Tensor, t: Tensor) -> Tensor:
            self.active = self.share > 0 and float(t.max()) >= 1 - self.share - 1e-9
            return fn(x_t, t)

        return at

    def _vectors(self, length: int, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(index, use, weight) padded or cut to the text length `length` of the batch, on like's device/dtype."""
        k = min(length, len(self.index))
        index = torch.zeros(length, dtype=torch.long)
        use = torch.zeros(length, dtype=torch.bool)
        weight = torch.ones(length)
        index[:k], use[:k], weight[:k] = self.index[:k].clamp(max=length - 1), self.use[:k], self.weight[:k]
        return index.to(like.device), use.to(like.device), weight.to(like.device, like.dtype)

    def rewrite(self, src: Tensor, tgt: Tensor) -> Tensor:
        """src, tgt (n, heads, Nq, L) image-query × text-key probabilities -> the edited rows' new ones."""
        index, use, weight = self._vectors(tgt.shape[-1], tgt)
        out = torch.where(use, src.index_select(-1, index), tgt) if self.active else tgt
        return out * weight if self.reweights else out

    def __call__(self, probs: Tensor, image_tokens: int | None) -> Tensor:
        if not (self.active or self.reweights):
            return probs
        n = self.n
        if probs.shape[0] % (2 * n):
            raise GenlabError(f"attention control expects a batch of 2·{n} rows (or 4·{n} under CFG), got {len(probs)}")
        src, tgt = probs[:n], probs[n : 2 * n]  # (n, heads, Nq, Nk)
        if image_tokens is None:  # cross-attention: image queries × text keys
            new = self.rewrite(src, tgt)
        else:  # joint attention over [image N, text L]: the image-query × text-key block
            m = image_tokens
            text = self.rewrite(src[:, :, :m, m:], tgt[:, :, :m, m:])  # (n, heads, N, L)
            old_mass = tgt[:, :, :m, m:].sum(-1, keepdim=True)
            scale = ((1 - text.sum(-1, keepdim=True)) / (1 - old_mass).clamp_min(1e-12)).clamp_min(0)
            rows = torch.cat([tgt[:, :, :m, :m] * scale, text], dim=-1)  # (n, heads, N, N + L)
            new = torch.cat([rows, tgt[:, :, m:]], dim=2)
        return torch.cat([src, new, probs[2 * n :]])


def attention_layers(model: nn.Module) -> list[nn.Module]:
    """The modules of `model` whose text attention a controller can rewrite (CrossAttention, MMDiTBlock)."""
    from genlab.models.dit import CrossAttention, MMDiTBlock

    layers = [m for m in model.modules() if isinstance(m, CrossAttention | MMDiTBlock)]
    if not layers:
        raise GenlabError("prompt-to-prompt needs a text-conditioned DiT (cross-attention or MM-DiT)")
    return layers


@contextlib.contextmanager
def controlled(model: nn.Module, control: AttentionControl | None) -> Iterator[None]:
    """Within the block, every text attention of `model` passes its probabilities through `control`."""
    layers = attention_layers(model)
    for layer in layers:
        layer.control = control
    try:
        yield
    finally:
        for layer in layers:
            layer.control = None


def check_weights(weights: dict[str, float] | None) -> dict[str, float]:
    weights = dict(weights or {})
    for word, factor in weights.items():
        if not isinstance(word, str) or not word.strip() or not factor >= 0:
            raise GenlabError(f"--reweight takes WORD=FACTOR with a factor >= 0, got {word}={factor}")
    return weights


def make_control(
    method,
    source: str,
    target: str,
    *,
    n: int,
    mode: str | None = None,
    share: float = 0.6,
    weights: dict[str, float] | None = None,
) -> AttentionControl:
    """The controller of n (source, target) pairs for `method`'s text encoder; mode None: swap when the two prompts
    have as many words, else refine."""
    if not 0 <= share <= 1:
        raise GenlabError(f"--share must be in [0, 1] (the fraction of steps that share attention), got {share}")
    mode = mode or ("swap" if len(source.split()) == len(target.split()) else "refine")
    encoder = method.text_encoder
    src_ids, tgt_ids = encoder.tokenize([source, target])
    index, use = align_tokens(src_ids, tgt_ids, mode)
    weight = [1.0] * len(tgt_ids)
    for word, factor in check_weights(weights).items():
        positions = word_positions(encoder, tgt_ids, word)
        if not positions:
            raise GenlabError(f"--reweight {word}: {word!r} is not a word of the edited prompt {target!r}")
        for p in positions:
            weight[p] = float(factor)
    return AttentionControl(n, index, use, weight, share=share)


def check_prompts(source: str, target: str | None) -> None:
    from genlab.generate import check_prompt

    check_prompt(source)
    if target is not None:
        if not isinstance(target, str) or not target.strip():
            raise GenlabError('--edit-to needs a non-empty prompt, e.g. --edit-to "a blue circle"')


def check_pairing(settings) -> None:
    """Refuse settings under which the two halves of the batch would not share their noise."""
    from genlab.samplers import draws_noise

    if draws_noise(settings):
        raise GenlabError(
            f"prompt-to-prompt pairs two prompts on one deterministic trajectory: sampler {settings.sampler!r} "
            "draws fresh noise per image; use --sampler heun (or euler, dpmpp_2m, ddim with --eta 0)"
        )


def prompt2prompt(
    source: str,
    target: str | None = None,
    *,
    run=None,
    mode: str | None = None,
    share: float = 0.6,
    weights: dict[str, float] | None = None,
    n: int = 4,
    seed: int = 0,
    settings=None,
    **overrides: Any,
) -> Samples:
    """Images of `source` and their edits towards `target` (default: the source, for a re-weighting alone) from
    the same n noises of `seed`: x (2n, C, H, W) in [-1, 1], rows 0..n-1 the source's (exactly `generate`'s
    images of the source for that seed, up to float rounding), rows n..2n-1 the edits; cond the 2n prompts.
    run: a text-to-image run or its folder (default: the shipped checkpoint); SampleSettings overrides as
    `generate`."""
    from genlab.generate import text_run
    from genlab.methods.base import randn

    check_prompts(source, target)
    target = source if target is None else target
    if n < 1:
        raise GenlabError(f"--n must be >= 1, got {n}")
    run = text_run(run)
    method = run.method
    resolved = run.resolve_deterministic(settings, **overrides)
    check_pairing(resolved)
    control = make_control(method, source, target, n=n, mode=mode, share=share, weights=weights)
    noise = randn((n, *method.shape), generator=torch.Generator().manual_seed(seed), device=method.device)
    prompts = [source] * n + [target] * n
    with controlled(method.model, control):
        out = method.sample(2 * n, cond=prompts, settings=resolved, noise=torch.cat([noise, noise]), wrap=control.timed)
    return Samples(out.x.cpu(), out.nfe, f"prompt-to-prompt (share {share:g})", prompts)


def parse_reweight(items: list[str] | None) -> dict[str, float]:
    """["red=2", "circle=0.5"] (the CLI's --reweight) -> {"red": 2.0, "circle": 0.5}."""
    weights = {}
    for item in items or []:
        word, sep, factor = item.rpartition("=")
        try:
            weights[word.strip()] = float(factor) if sep else float("nan")
        except ValueError:
            weights[word.strip()] = float("nan")
        if not sep or not word.strip() or not weights[word.strip()] >= 0:
            raise GenlabError(f"--reweight {item}: give WORD=FACTOR with a factor >= 0, e.g. --reweight red=2")
    return weights
