"""GANSpace (Härkönen et al. 2020): principal directions of a StyleGAN-style generator's w-space, named by measurement.

PCA: draw z ~ N(0, I) (labels cycled over the classes of a class-conditional G), map w = M(z, y), and take the
eigenvectors v_k of the sample covariance of w (an SVD of the centred samples), ordered by variance σ_k²; the v_k
are orthonormal. An edit moves one w along one direction, w + t·σ_k·v_k, and renders it with the synthesis network
alone (the mapping is not re-run, as in the paper). Any GAN with a mapping network works (model.kind: stylegan);
a DCGAN feeds z straight into the convolutions and has no w-space.

Naming: each direction moves many base points w_i (i.e. many z, all classes) to t = −T and +T and measures, on the
generated images, what changes: ink mass (the mean of (x + 1)/2, a stroke-width proxy), slant (the shear of the ink,
−cov(x, y)/var(y) of the ink-weighted pixel coordinates: the horizontal shift per row, positive leaning right like
"/"), and, for 8×8-able grey digits, the class the shipped digits classifier predicts (the share of base points
whose predicted class differs at either end) and the mean drop of the base class's probability. Ink and slant are
reported as the change from −T to +T in units of their spread over the base population (standardised effects).
The name lists "class" when at least half of the base points change class, then ink ("stroke width") and slant
when their standardised effect is at least 0.5, larger first, joined by " + "; "unclear" when none qualifies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from genlab.atomic import atomic_write_text
from genlab.errors import GenlabError
from genlab.runs import Run, load_run, write_samples

CLASS_CHANGE = 0.5  # share of base points whose predicted class changes for a direction to be named "class"
MIN_EFFECT = 0.5  # standardised effect below which ink and slant do not name a direction


class Directions(NamedTuple):
    """PCA of w: mean (D,), components (D, D) rows orthonormal, sorted by variance (D,) = σ_k², explained (D,)."""

    mean: Tensor
    components: Tensor
    variance: Tensor
    explained: Tensor

    @property
    def sigma(self) -> Tensor:
        return self.variance.sqrt()


def style_generator(run: Run):
    """The run's StyleGAN-style generator; else a GenlabError that says which runs work."""
    from genlab.methods.gan import GANMethod
    from genlab.models.gan import StyleGenerator

    method = run.method
    gen = getattr(getattr(method, "nets", None), "generator", None)
    if not isinstance(method, GANMethod) or not isinstance(gen, StyleGenerator):
        model = getattr(run.recipe.model, "kind", "?")
        raise GenlabError(
            f"{run.path} is a method.kind={run.recipe.method.kind!r} run with model.kind={model!r}: GANSpace needs a "
            "GAN with a mapping network (method.kind gan, model.kind stylegan; e.g. recipes/digits-stylegan.yaml)"
        )
    return gen


def _as_run(run: str | Path | Run) -> Run:
    return run if isinstance(run, Run) else load_run(run)


def _labels(run: Run, n: int, label: int | None, device) -> Tensor | None:
    labels = run.conditions(n, label=label)
    return None if labels is None else labels.to(device)


@torch.no_grad()
def sample_w(run: Run, n: int, *, seed: int = 0, label: int | None = None) -> Tensor:
    """n styles w = M(z, y) (n, w_dim) with z from `seed` and labels `label` or cycled over the classes."""
    gen = style_generator(run)
    z = run.method.sample_latent(n, torch.Generator().manual_seed(seed))
    return gen.map(z, _labels(run, n, label, z.device))


@torch.no_grad()
def principal_directions(run: str | Path | Run, *, samples: int = 10000, seed: int = 0) -> Directions:
    """PCA of `samples` styles w (float64): components ordered by decreasing variance."""
    run = _as_run(run)
    w_dim = style_generator(run).mapping[0].out_features
    if samples < 2 or samples <= w_dim // 4:
        raise GenlabError(f"--samples must be well above w_dim={w_dim} for a stable PCA, got {samples}")
    w = sample_w(run, samples, seed=seed).double()  # (N, D)
    mean = w.mean(0)
    _, s, vh = torch.linalg.svd(w - mean, full_matrices=False)  # s descending, rows of vh orthonormal
    variance = s.pow(2) / (samples - 1)
    return Directions(mean.float(), vh.float(), variance.float(), (variance / variance.sum()).float())


@torch.no_grad()
def render(run: Run, w: Tensor) -> Tensor:
    return style_generator(run).synthesize(w).clamp(-1, 1)


def edits(w: Tensor, dirs: Directions, k: int, ts: Tensor) -> Tensor:
    """w (B, D) moved along direction k to every t: (B, T, D) = w + t·σ_k·v_k."""
    step = dirs.sigma[k] * dirs.components[k]  # (D,)
    return w[:, None, :] + ts.to(w)[None, :, None] * step.to(w)[None, None, :]


# -- measures on images (B, C, H, W) in [-1, 1]


def ink_mass(x: Tensor) -> Tensor:
    """Mean ink per pixel, (x + 1)/2 averaged over channels and pixels (B,): a stroke-width proxy."""
    return ((x.float() + 1) / 2).mean(dim=(1, 2, 3))


def slant(x: Tensor) -> Tensor:
    """−cov(col, row) / var(row) of the ink-weighted pixel grid (B,): horizontal shift per row, > 0 leans right."""
    m = ((x.float() + 1) / 2).mean(1)  # (B, H, W)
    h, w = m.shape[-2:]
    rows = torch.arange(h, dtype=m.dtype, device=m.device)[:, None].expand(h, w)
    cols = torch.arange(w, dtype=m.dtype, device=m.device)[None, :].expand(h, w)
    total = m.sum(dim=(1, 2)).clamp_min(1e-6)
    cy, cx = (m * rows).sum(dim=(1, 2)) / total, (m * cols).sum(dim=(1, 2)) / total
    dy, dx = rows - cy[:, None, None], cols - cx[:, None, None]
    var_y = (m * dy * dy).sum(dim=(1, 2)) / total
    cov = (m * dx * dy).sum(dim=(1, 2)) / total
    return -cov / var_y.clamp_min(1e-6)


def _classifier(x: Tensor):
    """The shipped digits classifier for grey images (it resizes to 8×8), else None."""
    if x.shape[1] != 1:
        return None
    from genlab.metrics.features import digits_feature_net, resize_images

    net = digits_feature_net()
    module = net.module.to(x.device)
    return lambda images: torch.softmax(module.logits(resize_images(images.float(), net.image_size)), dim=1)


@torch.no_grad()
def measure_directions(
    run: str | Path | Run, dirs: Directions, *, components: int = 5, sigma: float = 3.0, bases: int = 200, seed: int = 1
) -> list[dict]:
    """For each of the top `components` directions, what moving `bases` styles from t = −sigma to +sigma changes."""
    run = _as_run(run)
    w = sample_w(run, bases, seed=seed)  # (B, D), all classes
    ts = torch.tensor([-sigma, 0.0, sigma])
    x0 = render(run, w)
    ink0, slant0 = ink_mass(x0), slant(x0)
    ink_spread, slant_spread = ink0.std().clamp_min(1e-6), slant0.std().clamp_min(1e-6)
    probs = _classifier(x0)
    p0 = None if probs is None else probs(x0)
    cls0 = None if p0 is None else p0.argmax(1)
    out = []
    for k in range(min(components, len(dirs.variance))):
        moved = edits(w, dirs, k, ts)  # (B, 3, D)
        lo, hi = render(run, moved[:, 0]), render(run, moved[:, 2])
        d_ink = float((ink_mass(hi) - ink_mass(lo)).mean())
        d_slant = float((slant(hi) - slant(lo)).mean())
        entry = {
            "component": k,
            "variance_explained": float(dirs.explained[k]),
            "sigma": float(dirs.sigma[k]),
            "ink_change": d_ink,
            "ink_effect": d_ink / float(ink_spread),
            "slant_change": d_slant,
            "slant_effect": d_slant / float(slant_spread),
            "pixel_change": float((hi - lo).abs().mean()),
            "class_change_rate": None,
            "base_class_prob_drop": None,
        }
        if p0 is not None:
            p_lo, p_hi = probs(lo), probs(hi)
            changed = (p_lo.argmax(1) != cls0) | (p_hi.argmax(1) != cls0)
            keep = p0.gather(1, cls0[:, None])[:, 0]
            end = torch.minimum(p_lo.gather(1, cls0[:, None])[:, 0], p_hi.gather(1, cls0[:, None])[:, 0])
            entry["class_change_rate"] = float(changed.float().mean())
            entry["base_class_prob_drop"] = float((keep - end).mean())
        entry["name"] = name_of(entry)
        out.append(entry)
    return out


def name_of(entry: dict) -> str:
    """What a direction changes, from its measured effects (see the module docstring): the main effect first, then
    any other effect above its threshold after " + "."""
    parts = []
    if entry["class_change_rate"] is not None and entry["class_change_rate"] >= CLASS_CHANGE:
        parts.append("class")
    effects = sorted(
        (
            (
                abs(entry["ink_effect"]),
                "stroke width (" + ("more" if entry["ink_effect"] > 0 else "less") + " ink at +t)",
            ),
            (
                abs(entry["slant_effect"]),
                "slant (leans " + ("right" if entry["slant_effect"] > 0 else "left") + " at +t)",
            ),
        ),
        reverse=True,
    )
    parts += [label for size, label in effects if size >= MIN_EFFECT]
    return " + ".join(parts) or "unclear"


@torch.no_grad()
def direction_grid(
    run: str | Path | Run,
    dirs: Directions,
    *,
    components: int = 5,
    sigma: float = 3.0,
    points: int = 7,
    seed: int = 0,
    label: int | None = None,
) -> Tensor:
    """(components · points, C, H, W): row k renders one base w + t·σ_k·v_k for t on linspace(−sigma, sigma)."""
    run = _as_run(run)
    w = sample_w(run, 1, seed=seed, label=label)  # (1, D)
    ts = torch.linspace(-sigma, sigma, points)
    rows = [edits(w, dirs, k, ts)[0] for k in range(components)]  # each (points, D)
    return render(run, torch.cat(rows))


def write_directions(
    run: str | Path | Run,
    out: str | Path,
    *,
    components: int = 5,
    sigma: float = 3.0,
    points: int = 7,
    samples: int = 10000,
    bases: int = 200,
    seed: int = 0,
    label: int | None = None,
) -> tuple[Path, Path, dict]:
    """`genlab directions`: the grid PNG `out` and `out`.json (the measured names); (png, json, report)."""
    out = Path(out)
    if out.suffix != ".png":
        raise GenlabError(f"-o {out}: the directions grid is written as a .png")
    if points < 2 or sigma <= 0:
        raise GenlabError(f"need --points >= 2 and --sigma > 0, got {points} and {sigma}")
    run = _as_run(run)
    w_dim = style_generator(run).mapping[0].out_features
    if not 1 <= components <= w_dim:
        raise GenlabError(f"--components must be in [1, {w_dim}] (w_dim), got {components}")
    dirs = principal_directions(run, samples=samples, seed=seed)
    grid = direction_grid(run, dirs, components=components, sigma=sigma, points=points, seed=seed, label=label)
    measured = measure_directions(run, dirs, components=components, sigma=sigma, bases=bases, seed=seed + 1)
    report = {
        "run": str(run.path),
        "samples": samples,
        "bases": bases,
        "sigma_range": [-sigma, sigma],
        "points": points,
        "seed": seed,
        "label": label,
        "variance_explained_top": [float(v) for v in dirs.explained[:components]],
        "directions": measured,
        "naming": f"'class' if >= {CLASS_CHANGE:.0%} of base points change predicted class, then ink mass "
        f"(stroke width) and slant if their standardised effect is >= {MIN_EFFECT}, larger first; else 'unclear'",
    }
    png = write_samples(grid.cpu(), None, out, nrow=points)
    js = atomic_write_text(out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    return png, Path(js), report
