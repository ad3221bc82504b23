"""`genlab generate "PROMPT"`: images from a text-to-image run, by default the checkpoint shipped in the package.

The shipped run (src/genlab/assets/shapes-t2i/: config.json + ema.safetensors) is a latent rectified-flow
DiT trained by recipes/shapes-t2i.yaml on the procedural shapes; it needs only the bundled MiniLM encoder.
Sampling: n noises from `seed`, classifier-free guidance at `guidance_scale`, `steps` sampler steps; with a
negative prompt (`--negative red`) the guidance pushes away from that prompt's prediction instead of the null text.
"""

from __future__ import annotations

from pathlib import Path

from genlab.errors import GenlabError
from genlab.runs import Run, load_run, shipped_asset
from genlab.settings import Samples

SHIPPED = "shapes-t2i"


def shipped_run() -> Path:
    """The folder of the text-to-image checkpoint shipped inside the package."""
    return shipped_asset(SHIPPED)


def text_run(run: str | Path | Run | None = None) -> Run:
    """A text-to-image run (default: the shipped checkpoint)."""
    return (run if isinstance(run, Run) else load_run(run or shipped_run())).require_text()


def generate(
    prompt: str,
    *,
    n: int = 4,
    seed: int = 0,
    run: str | Path | Run | None = None,
    negative: str | None = None,
    **settings,
) -> Samples:
    """n images (n, C, H, W) in [-1, 1] for `prompt` from `run` (default: the shipped checkpoint); `settings` are
    SampleSettings fields (steps, guidance_scale, sampler, ...), None keeps the run's recipe value. `negative`:
    a negative prompt, guided against instead of the null text (eps(neg) + s·(eps(pos) − eps(neg)))."""
    check_prompt(prompt)
    return text_run(run).generate(prompt, n, seed=seed, negative=negative, **settings)


def check_prompt(prompt: str) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        raise GenlabError('give a non-empty prompt, e.g. genlab generate "a red circle above a blue square"')
