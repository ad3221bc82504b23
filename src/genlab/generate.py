"""`genlab generate "PROMPT"`: images from a text-to-image run, by default the checkpoint shipped in the package.

The shipped run (src/genlab/assets/shapes-t2i/: config.json + ema.safetensors) is a latent rectified-flow
DiT trained by recipes/shapes-t2i.yaml on the procedural shapes; it needs only the bundled MiniLM encoder.
Sampling: n noises from `seed`, classifier-free guidance at `guidance_scale`, `steps` sampler steps.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

from genlab.checkpoint import load_method
from genlab.errors import GenlabError

SHIPPED = "shapes-t2i"


def shipped_run() -> Path:
    """The folder of the text-to-image checkpoint shipped inside the package."""
    return Path(str(resources.files("genlab") / "assets" / SHIPPED))


def generate(
    prompt: str,
    *,
    n: int = 4,
    steps: int = 16,
    guidance_scale: float = 4.0,
    seed: int = 0,
    sampler: str | None = None,
    run: str | Path | None = None,
) -> torch.Tensor:
    """n images (n, C, H, W) in [-1, 1] for `prompt` from `run` (default: the shipped checkpoint)."""
    if not prompt.strip():
        raise GenlabError('give a non-empty prompt, e.g. genlab generate "a red circle above a blue square"')
    if n < 1 or steps < 1:
        raise GenlabError(f"--n and --steps must be >= 1, got n={n}, steps={steps}")
    recipe, method, _ = load_method(run or shipped_run())
    if recipe.method.kind != "latent_flow":
        raise GenlabError(f"{run} is a {recipe.method.kind!r} run, not text-to-image: use genlab sample")
    gen = torch.Generator().manual_seed(seed)
    return method.sample(n, prompts=[prompt] * n, steps=steps, guidance_scale=guidance_scale,
                         sampler=sampler or recipe.sample.sampler, grid=recipe.sample.grid, generator=gen)
