"""Real-image editing for the text-to-image run: deterministic ODE inversion, null-text inversion, then
prompt-to-prompt from the inverted noise.

Inversion (the DDIM-inversion idea on the rectified path): the probability-flow ODE dz/dt = v(z, t) of the
guided prediction is integrated from the image's latent z (t = 0) up to t = 1 on the sampler's own grid run
backwards, with the same one-step method (Euler, or Heun: x' = x + h·v(x, t), then x + h·(v(x, t) + v(x', s))/2),
so that sampling from the result on that grid retraces the path. The two differ only by evaluating v at the other
end of each step: O(h) per step for Euler, O(h²) for Heun, and classifier-free guidance amplifies the mismatch
(s·(cond − uncond) is a larger, less smooth field).

Null-text inversion (Mokady et al. 2023): invert at guidance 1 (the pivots z*_k on the grid), then walk the grid
from noise; at step k optimise the unconditional text's input to the network (its token states and pooled
vector, one copy per image, started from the previous step's) with Adam so that one guided step from the
current z̄_k lands on z*_{k+1}; then take that step. Sampling with the per-step null texts reconstructs the image
at the model's guidance, and an edit replaces only the conditional prompt (prompt-to-prompt on the pair).
Only one-step ODE samplers (euler, heun) are stepped here: each step's null text must apply to the whole step.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
from torch import Tensor

from genlab.errors import GenlabError
from genlab.paths import to_x_eps, velocity
from genlab.samplers import guided_at
from genlab.settings import Samples

SAMPLERS = ("euler", "heun")


class Inversion(NamedTuple):
    """Inverted images: noise (n, *latent) at t = 1, the grid ts (steps + 1,) descending 1 -> 0, the prompts,
    the guidance scale, the sampler, (null-text inversion) one null text per step, or None (encode([""])), and
    the guidance interval (None: every step)."""

    noise: Tensor
    ts: Tensor
    prompts: list[str]
    guidance_scale: float
    sampler: str
    nulls: list | None = None
    interval: tuple[float, float] | None = None


def check_settings(settings) -> None:
    if settings.sampler not in SAMPLERS:
        raise GenlabError(f"inversion steps the ODE with euler or heun, not {settings.sampler!r}: pass --sampler heun")


def grid(method, settings) -> Tensor:
    """The sampler's descending time grid (steps + 1,) on the method's device."""
    from genlab.samplers import time_grid

    ts = time_grid(settings.grid, settings.steps, path=method.path, sampler=settings.sampler)
    return ts.to(method.device)


def guided_velocity(method, cond, null, scale: float, interval: tuple[float, float] | None = None):
    """v(z, t) of the guided prediction, cond and null texts (B rows each) in one batched call (rows: cond, null,
    the layout an attention controller expects); outside `interval` the conditional prediction, as sampling's
    (genlab.samplers.guided), the network still called on both rows so that a controller sees every step."""
    from genlab.methods.latent import stack_text

    table = cond if scale == 1.0 else stack_text([cond, null])
    path, target = method.path, method.cfg.target

    def v(z: Tensor, t: Tensor) -> Tensor:
        tv = t.to(z.dtype).expand(z.shape[0])
        if scale == 1.0:
            pred = method.net(z, tv, table)
        else:
            c, u = method.net(torch.cat([z, z]), torch.cat([tv, tv]), table).chunk(2)
            pred = u + scale * (c - u) if bool(guided_at(t, interval).all()) else c
        return velocity(path, tv, *to_x_eps(path, target, z, tv, pred))

    return v


def ode_step(v, z: Tensor, t: Tensor, s: Tensor, sampler: str) -> Tensor:
    """One Euler or Heun step of dz/dt = v from t to s (either direction); Heun's step into s = 0 is Euler, as the
    sampler's (genlab.samplers.ode.sample_heun)."""
    h = (s - t).to(z.dtype)
    k1 = v(z, t)
    z_next = z + h * k1
    if sampler == "heun" and s > 0:
        z_next = z + h * (k1 + v(z_next, s)) / 2
    return z_next


def null_texts(method, n: int):
    return method.null_text(n, method.device)


@torch.no_grad()
def invert_latents(method, z: Tensor, prompts: list[str], settings, *, scale: float | None = None) -> list[Tensor]:
    """The inversion path [z at ts[0] = 1, ..., z at ts[-1] = 0] (latents (n, c, h, w)) of latents z at t = 0,
    integrated backwards at guidance `scale` (default: the settings')."""
    check_settings(settings)
    scale = settings.guidance_scale if scale is None else scale
    ts = grid(method, settings)
    null = null_texts(method, len(z))
    v = guided_velocity(method, method.encode_text(prompts, method.device), null, scale, settings.interval)
    path = [z]
    for k in range(len(ts) - 1, 0, -1):  # from t = 0 up to t = 1
        path.append(ode_step(v, path[-1], ts[k], ts[k - 1], settings.sampler))
    return path[::-1]


def null_text_inversion(
    method, pivots: list[Tensor], prompts: list[str], settings, *, iters: int = 10, lr: float = 3e-2, tol: float = 1e-6
) -> list:
    """One optimised null text (n rows) per step, so that guided steps from pivots[0] follow the pivots. Rows are
    independent, and each keeps the best null text its `iters` Adam steps visited (the step's start included)."""
    from genlab.methods.latent import Text

    ts, scale = grid(method, settings), settings.guidance_scale
    cond = method.encode_text(prompts, method.device)
    start = null_texts(method, len(prompts))
    best_tokens, best_pooled = start.tokens.clone(), start.pooled.clone()  # (n, L0, D), (n, D)
    z, nulls = pivots[0], []
    for k in range(len(ts) - 1):
        tokens, pooled = best_tokens.clone().requires_grad_(True), best_pooled.clone().requires_grad_(True)
        opt = torch.optim.Adam([tokens, pooled], lr=lr)
        best_err = torch.full((len(z),), float("inf"), device=z.device)
        for it in range(iters + 1):
            with torch.enable_grad():
                v = guided_velocity(method, cond, Text(tokens, start.mask, pooled), scale, settings.interval)
                err = (ode_step(v, z, ts[k], ts[k + 1], settings.sampler) - pivots[k + 1]).pow(2).flatten(1).mean(1)
                better = err.detach() < best_err  # (n,)
                best_err = torch.where(better, err.detach(), best_err)
                best_tokens = torch.where(better[:, None, None], tokens.detach(), best_tokens)
                best_pooled = torch.where(better[:, None], pooled.detach(), best_pooled)
                if it == iters or float(best_err.max()) < tol:
                    break
                grads = torch.autograd.grad(err.sum(), [tokens, pooled])
            for p, g in zip((tokens, pooled), grads):
                p.grad = g
            opt.step()
        null = Text(best_tokens, start.mask, best_pooled)
        nulls.append(null)
        with torch.no_grad():
            v = guided_velocity(method, cond, null, scale, settings.interval)
            z = ode_step(v, z, ts[k], ts[k + 1], settings.sampler)
    return nulls


def invert(
    method, images: Tensor, prompts: list[str], settings, *, null_text: bool = False, iters: int = 10
) -> Inversion:
    """Invert images (n, C, H, W) in [-1, 1] captioned by `prompts` (n strings) under `settings` (sampler euler or
    heun, its steps, grid and guidance scale). null_text: pivot on the guidance-1 path and optimise per-step null
    texts (needs a guidance scale > 1); else the plain inversion at the settings' guidance."""
    from genlab.edit import check_image

    check_settings(settings)
    if len(prompts) != len(images):
        raise GenlabError(f"give one prompt per image: {len(prompts)} prompts for {len(images)} images")
    if null_text and settings.guidance_scale == 1.0:
        raise GenlabError("null-text inversion optimises the unconditional text: it needs --guidance-scale > 1")
    z = method.to_latent(check_image(method, images).to(method.device))
    scale = 1.0 if null_text else settings.guidance_scale
    pivots = invert_latents(method, z, prompts, settings, scale=scale)
    nulls = null_text_inversion(method, pivots, prompts, settings, iters=iters) if null_text else None
    ts = grid(method, settings)
    return Inversion(pivots[0], ts, list(prompts), settings.guidance_scale, settings.sampler, nulls, settings.interval)


@torch.no_grad()
def sample_inverted(method, inv: Inversion, prompts: list[str] | None = None, *, control=None) -> Tensor:
    """Latents sampled from the inverted noise along the inversion's grid, guidance and null texts; prompts:
    one per row (default: the inversion's, which reconstructs); control: an attention controller for a batch of
    [source × n, edit × n] (the noise and nulls are then used twice)."""
    from genlab.edit.prompt2prompt import controlled
    from genlab.methods.latent import stack_text

    prompts = inv.prompts if prompts is None else prompts
    reps = len(prompts) // len(inv.noise)
    z = inv.noise.repeat(reps, 1, 1, 1)
    cond = method.encode_text(prompts, method.device)
    ts = inv.ts
    with controlled(method.model, control) if control is not None else contextlib.nullcontext():
        for k in range(len(ts) - 1):
            if control is not None:
                control.active = control.share > 0 and float(ts[k]) >= 1 - control.share - 1e-9
            null = null_texts(method, len(z)) if inv.nulls is None else stack_text([inv.nulls[k]] * reps)
            v = guided_velocity(method, cond, null, inv.guidance_scale, inv.interval)
            z = ode_step(v, z, ts[k], ts[k + 1], inv.sampler)
    return z


def edit_image(
    image: Tensor,
    prompt: str,
    target: str | None = None,
    *,
    run=None,
    null_text: bool = False,
    mode: str | None = None,
    share: float = 0.6,
    weights: dict[str, float] | None = None,
    iters: int = 10,
    settings=None,
    **overrides,
) -> Samples:
    """A real image (1 or n, C, H, W) in [-1, 1] captioned by `prompt`: inverted (null_text: Mokady et al.), then
    its reconstruction and, with `target` or `weights`, its prompt-to-prompt edit. x: (n, ...) reconstructions,
    then (n, ...) edits when asked; nfe: the sampler's evaluations of one pass (the inversion's are not counted)."""
    from genlab.edit.prompt2prompt import check_prompts, make_control
    from genlab.generate import text_run

    run = text_run(run)
    method = run.method
    resolved = run.resolve_deterministic(settings, **overrides)
    images = image if image.dim() == 4 else image[None]
    check_prompts(prompt, target)
    inv = invert(method, images, [prompt] * len(images), resolved, null_text=null_text, iters=iters)
    n = len(images)
    nfe = (2 if resolved.sampler == "heun" else 1) * resolved.steps - (resolved.sampler == "heun")
    if target is None and not weights:
        return Samples(method.from_latent(sample_inverted(method, inv)).cpu(), nfe, "inversion", [prompt] * n)
    target = prompt if target is None else target
    control = make_control(method, prompt, target, n=n, mode=mode, share=share, weights=weights)
    z = sample_inverted(method, inv, [prompt] * n + [target] * n, control=control)
    return Samples(
        method.from_latent(z).cpu(), nfe, f"inversion + prompt-to-prompt (share {share:g})", [prompt] * n + [target] * n
    )
