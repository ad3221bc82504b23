"""Best-of-K text-to-image: draw K candidates per image and keep the one a judge scores highest.

Inference-time search with a verifier (the reranking of DALL·E, Ramesh et al. 2021; the verifier search of Ma et
al. 2025): the generator is unchanged, it only spends more sampling compute. Candidate j of every image is drawn
with seed `seed + j·CANDIDATE_STRIDE`, so candidate 0 is exactly what plain generation gives with `seed` (best of
1 is plain generation) and a larger K only adds candidates. Two judges, neither of which sees the procedural
checker of the GenEval-style suite:
- by default the generator itself (`self_scores`): a flow-matching text-to-image model is also a classifier of
  prompts (the diffusion classifier of Li et al. 2023), so no other weights are needed. It weighs the prompt against
  the prompt's minimal contradictions (a relation turned over, two colours exchanged, a colour, kind or size
  changed, a count one off), as a classifier weighs a class against the other classes, and a candidate must beat
  every one of them. The margin is the log ratio of the errors with a contradiction and with the prompt: a ratio
  does not let an image whose errors are large anyway (two asked-for shapes merged into one blur) win by a wide
  margin over every caption;
- a learned verifier (`verifier=RUN`): a run of method.kind `verifier` (genlab.methods.verifier, recipes/
  shapes-verifier.yaml: image × text → the log-odds that the text is true of the image).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from genlab.data.shapes import NULL_CAPTION, TEXT_CONTRADICTIONS, text_contradictions
from genlab.errors import GenlabError
from genlab.runs import Run, load_run
from genlab.settings import MAX_BEST_OF, Samples

CANDIDATE_STRIDE = 100  # candidate j of an image is drawn with seed + j * CANDIDATE_STRIDE
SELF_TIMES = (0.3, 0.5, 0.7, 0.9)  # the times at which the generator judges its own candidates (`self_scores`)
CONTRASTS = TEXT_CONTRADICTIONS  # the contradictions it weighs a prompt against (`references`): all of them


def verifier_run(verifier: str | Path | Run) -> Run:
    """A verifier run (method.kind verifier)."""
    run = verifier if isinstance(verifier, Run) else load_run(verifier)
    if run.recipe.method.kind != "verifier":
        raise GenlabError(
            f"--verifier {run.path} is a {run.recipe.method.kind!r} run, not a verifier: train one with "
            "genlab train recipes/shapes-verifier.yaml, or leave --verifier out to let the generator judge"
        )
    return run


def check_best_of(best_of: int | None) -> None:
    """A GenlabError unless `best_of` is a K in [1, MAX_BEST_OF] or None (the run's own, checked when it loads)."""
    if best_of is not None and (not isinstance(best_of, int) or not 1 <= best_of <= MAX_BEST_OF):
        raise GenlabError(f"--best-of must be an integer in [1, {MAX_BEST_OF}] (1: no search), got {best_of!r}")


def resolve_best_of(run: Run, best_of: int | None, verifier: object = None) -> int:
    """`best_of`, or the run's own default (its recipe's `sample.best_of`: 4 for the shipped text-to-image run) when
    None; a GenlabError when it is out of range, or when a verifier is given without a search to judge."""
    k = run.settings.best_of if best_of is None else best_of
    check_best_of(k)
    check_verifier(k, verifier)
    return k


def check_verifier(best_of: int | None, verifier: object) -> None:
    """A GenlabError when a verifier is given with best of 1 (None: not known yet, passes)."""
    if verifier is not None and best_of == 1:
        raise GenlabError("--verifier judges the candidates of --best-of K: add --best-of 4 (or drop --verifier)")


def candidates(
    run: Run, prompts: list[str], *, k: int, seed: int = 0, start: int = 0, **opts
) -> tuple[Tensor, Samples]:
    """(candidates start..k-1 (k - start, N, C, H, W) of the N images for `prompts`, the first of those draws'
    Samples); `opts` go to `Run.sample` (settings, negative, adapter, SampleSettings overrides). Candidate j is drawn
    with seed + j·CANDIDATE_STRIDE whatever `start` is, so more candidates can be added to a pool later."""
    check_best_of(k)
    if not 0 <= start < k:
        raise GenlabError(f"candidates start at 0..{k - 1}, got start={start}")
    draws = [
        run.sample(len(prompts), prompts=list(prompts), seed=seed + j * CANDIDATE_STRIDE, **opts)
        for j in range(start, k)
    ]
    return torch.stack([d.x for d in draws]), draws[0]


def references(prompt: str, contrasts: tuple[str, ...] = CONTRASTS) -> list[str]:
    """The captions the generator weighs `prompt` against when it judges an image of it (`self_scores`): the prompt's
    contradictions of the kinds `contrasts` (genlab.data.shapes.text_contradictions: a relation turned over, two
    colours exchanged, ...), or the empty prompt when none applies (or `contrasts` is ())."""
    found = [text for how, text in text_contradictions(prompt) if how in contrasts]
    return found or [NULL_CAPTION]


def judge_evaluations(prompts: list[str], k: int, *, contrasts: tuple[str, ...] = CONTRASTS) -> int:
    """DiT evaluations per image that `self_scores` spends on k candidates (at most, over `prompts`)."""
    return len(SELF_TIMES) * k * max(1 + len(references(p, contrasts)) for p in prompts)


MARGINS = ("log", "difference")  # how `self_scores` compares two captions' errors (`margins`)


def check_margin(margin: str) -> None:
    if margin not in MARGINS:
        raise GenlabError(f"margin must be one of {', '.join(MARGINS)}, got {margin!r}")


@torch.no_grad()
def judge_errors(
    run: Run,
    pool: Tensor,
    captions: list[list[str]],
    *,
    times: tuple[float, ...] = SELF_TIMES,
    seed: int = 0,
    chunk: int = 256,
) -> Tensor:
    """How well the generator predicts the flow's target v from candidate j of image i noised to x_t when told each
    of `captions[i]`: ||v(x_t, caption) − v||² (T, K, N, C) at each time of `times`, NaN past image i's captions.
    One noise per image and time, shared by its K candidates and its captions, so that differences compare images
    and captions, not noises."""
    from genlab.paths import bcast, from_x_eps

    m = run.require_text().method
    if not hasattr(m, "path") or not hasattr(m, "guidance_inputs"):
        raise GenlabError(f"{run.path} is not a flow-matching run: it cannot judge its own images; give --verifier RUN")
    k, n = pool.shape[:2]
    texts = list(dict.fromkeys(t for c in captions for t in c))  # each caption encoded once
    net, rows, _ = m.guidance_inputs(len(texts), texts, m.device)
    row = dict(zip(texts, rows.tolist()))
    width = max(map(len, captions))
    table = torch.full((n, width), -1, dtype=torch.long)  # image i's captions (rows of the text table)
    for i, c in enumerate(captions):
        table[i, : len(c)] = torch.tensor([row[t] for t in c])
    table = table.repeat(k, 1).to(m.device)  # (KN, width): candidate j of image i reads image i's captions
    z = torch.cat([m.to_state(c.to(m.device)) for c in pool.flatten(0, 1).split(chunk)])  # (KN, ...) sampler's space
    gen = torch.Generator().manual_seed(seed)
    err = torch.full((len(times), k * n, width), torch.nan, device=m.device)
    for ti, value in enumerate(times):
        eps = torch.randn((n, *z.shape[1:]), generator=gen).to(z).repeat(k, *([1] * (z.dim() - 1)))  # (KN, ...)
        for col in range(width):
            for part in (table[:, col] >= 0).nonzero().flatten().split(chunk):
                t = torch.full((len(part),), float(value), device=m.device, dtype=z.dtype)
                x0, e = z[part], eps[part]
                x_t = bcast(m.path.a(t), x0) * x0 + bcast(m.path.b(t), x0) * e
                target = from_x_eps(m.path, m.cfg.target, t, x0, e)
                err[ti, part, col] = (net(x_t, t, table[part, col]) - target).pow(2).flatten(1).mean(1).float()
    return err.reshape(len(times), k, n, width).cpu()


def margins(errors: Tensor, margin: str = "log", columns: Tensor | None = None) -> Tensor:
    """(K, N) scores from `judge_errors` (T, K, N, C) whose column 0 is the prompt: the least, over the other
    columns c (those `columns` (N, C) marks, default all that were computed), of the mean over times of
    log(e_c / e_prompt) (margin "log") or e_c − e_prompt ("difference"). The log ratio asks how many times better
    the prompt explains the image than c does; the difference lets images whose errors are large anyway (a blurred
    merge of two asked-for shapes) win by a large margin at every caption. The ratio's own weakness: an image with
    almost nothing in it has small errors with every caption, so a small difference makes a large ratio."""
    check_margin(margin)
    e = errors.clamp_min(torch.finfo(errors.dtype).tiny).log() if margin == "log" else errors
    per_caption = (e[..., 1:] - e[..., :1]).mean(0)  # (K, N, C - 1)
    keep = ~errors[0, ..., 1:].isnan() if columns is None else columns[None, :, 1:].expand_as(per_caption)
    return torch.where(keep, per_caption, torch.inf).amin(-1)


def self_scores(
    run: Run,
    pool: Tensor,
    prompts: list[str],
    *,
    times: tuple[float, ...] = SELF_TIMES,
    contrasts: tuple[str, ...] = CONTRASTS,
    margin: str = "log",
    seed: int = 0,
    chunk: int = 256,
) -> Tensor:
    """The generator as its own judge (a diffusion classifier, Li et al. 2023): how much better it predicts the flow's
    target from candidate j of image i, noised, when told prompt i than when told each of the prompt's `references`
    (its contradictions, else the empty prompt), at `times` (`judge_errors`); the least of these margins
    (`margins`: by default the mean log ratio of the errors), so that the image must beat every contradiction.
    The error difference estimates log p(prompt | image) − log p(reference | image) up to a constant (margin
    "difference"); the log ratio asks the same relative to how hard the image is to denoise. Higher is better;
    (K, N)."""
    check_margin(margin)  # before the work
    captions = [[p, *references(p, contrasts)] for p in prompts]
    return margins(judge_errors(run, pool, captions, times=times, seed=seed, chunk=chunk), margin)


@torch.no_grad()
def scores(verifier: Run, pool: Tensor, prompts: list[str]) -> Tensor:
    """The verifier's log-odds (K, N) that prompt i is true of candidate j of image i."""
    k, n = pool.shape[:2]
    if pool.shape[-1] != verifier.method.image_shape[-1] or pool.shape[-3] != verifier.method.image_shape[0]:
        raise GenlabError(
            f"the verifier {verifier.path} reads {tuple(verifier.method.image_shape)} images, the generator makes "
            f"{tuple(pool.shape[-3:])}: use a verifier trained on this generator's data"
        )
    return verifier.method.score(pool.flatten(0, 1), list(prompts) * k).reshape(k, n).cpu()


def choose(pool: Tensor, logits: Tensor) -> tuple[Tensor, Tensor]:
    """(the best candidate of each image (N, C, H, W), its index (N,)) by the verifier's log-odds (K, N); ties go to
    the earliest candidate."""
    index = logits.argmax(0)  # (N,)
    return pool[index, torch.arange(pool.shape[1])], index


def best_of(
    run: Run, prompts: list[str], *, k: int, verifier: str | Path | Run | None = None, seed: int = 0, **opts
) -> Samples:
    """N images for `prompts`, each the best of `k` candidates (k = 1: plain generation) by `verifier` (a verifier
    run) or, when None, by the generator itself (`self_scores`)."""
    judge = None if verifier is None else verifier_run(verifier)  # a bad --verifier fails before any sampling
    pool, first = candidates(run, prompts, k=k, seed=seed, **opts)
    if k == 1:
        return first
    if judge is None:
        logits, by, extra = self_scores(run, pool, prompts), "the generator", judge_evaluations(prompts, k)
    else:
        logits, by, extra = scores(judge, pool, prompts), judge.path.name, 0
    chosen, _ = choose(pool, logits)
    return Samples(chosen, first.nfe * k + extra, f"{first.sampler or 'sampler'}; best of {k} by {by}", first.cond)
