"""`genlab generate "PROMPT"`: images from a text-to-image run, by default the checkpoint shipped in the package.

The default run (src/genlab/assets/shapes-t2i-curriculum/: config.json + ema.safetensors) is a latent rectified-flow
MM-DiT trained on the procedural shapes by recipes/shapes-autoencoder-full.yaml, then shapes-t2i-ordered.yaml,
shapes-t2i-curriculum.yaml, shapes-t2i-finetune.yaml, shapes-t2i-mix.yaml, shapes-t2i-mix2.yaml, shapes-t2i-mix3.yaml,
shapes-t2i-mix4.yaml, shapes-t2i-para.yaml, shapes-t2i-para2.yaml, shapes-t2i-relations.yaml,
shapes-t2i-relations2.yaml, shapes-t2i-grow.yaml (its 4 blocks grown to 7), shapes-t2i-grow2.yaml and
shapes-t2i-shift.yaml (fourteen stages, the last with training times moved towards noise); it needs only the bundled
MiniLM encoder.
The earlier default, a cross-attention DiT (recipes/shapes-t2i.yaml), ships as shipped:shapes-t2i: GLIGEN,
IP-Adapter and the video model start from it.
Sampling: n noises from `seed`, classifier-free guidance at `guidance_scale` for the times in `guidance_interval`,
`steps` sampler steps (the default run: Euler–Maruyama on the reverse SDE, 32 steps, 8 on the noisier half, t in
[0.5, 1]); with a
negative prompt (`--negative red`) the guidance pushes away from that prompt's prediction instead of the null text.
`best_of=K` (`--best-of K`) keeps, for each image, the best of K draws as the generator itself judges them, the
prompt weighed against its minimal contradictions (or a learned verifier, `verifier=RUN`): genlab.rerank. The
default is the run's own `sample.best_of`: the shipped run's recipe sets 4 (`--best-of 1` draws once).
"""

from __future__ import annotations

from pathlib import Path

from genlab.errors import GenlabError
from genlab.runs import Run, load_run, shipped_asset
from genlab.settings import Samples

SHIPPED = "shapes-t2i-curriculum"  # the default text-to-image run (the best on the GenEval-style suite)
SHIPPED_T2I = (SHIPPED, "shapes-t2i")  # every shipped text-to-image run, the default first


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
    embeddings=None,
    boxes: str | list | None = None,
    image_prompt=None,
    image_scale: float | None = None,
    best_of: int | None = None,
    verifier: str | Path | Run | None = None,
    **settings,
) -> Samples:
    """n images (n, C, H, W) in [-1, 1] for `prompt` from `run` (default: the shipped checkpoint); `settings` are
    SampleSettings fields (steps, guidance_scale, sampler, ...), None keeps the run's recipe value. `negative`:
    a negative prompt, guided against instead of the null text (eps(neg) + s·(eps(pos) − eps(neg))).
    `embeddings`: textual-inversion files (or one) whose tokens the prompt may use ("<c> left of a red square").
    A gligen run takes `boxes` ("PHRASE:x0,y0,x1,y1;..." or [(phrase, (x0, y0, x1, y1)), ...] in [0, 1], y down);
    an ip_adapter run takes `image_prompt` (an image file, or a (3, H, W) tensor in [-1, 1]) at `image_scale`.
    `best_of` K > 1: each image is the best of K candidates by `verifier` (a verifier run) or, by default, by the
    generator itself, about K times the sampling cost and as much again to judge; candidate 0 is the image
    best_of=1 gives (genlab.rerank). None: the run's own `sample.best_of` (4 for the shipped run, 1 for a recipe
    that does not set it)."""
    from genlab.methods.adapters import adapter_inputs, adapter_options
    from genlab.rerank import best_of as search
    from genlab.rerank import check_best_of, resolve_best_of
    from genlab.textual_inversion import using

    check_prompt(prompt)
    check_best_of(best_of)  # before the model loads
    with using(text_run(run), embeddings, prompts=[prompt, negative]) as r:
        k = resolve_best_of(r, best_of, verifier)
        if isinstance(boxes, str) or isinstance(image_prompt, (str, Path)):
            adapter = adapter_inputs(r.method, boxes, None if image_prompt is None else str(image_prompt), image_scale)
        else:
            adapter = adapter_options(r.method, boxes=boxes, image=image_prompt, image_scale=image_scale)
        opts = {"seed": seed, "negative": negative, "adapter": adapter or None, **settings}
        return search(r, [prompt] * n, k=k, verifier=verifier, **opts)  # best of 1: plain generation


def check_prompt(prompt: str) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        raise GenlabError('give a non-empty prompt, e.g. genlab generate "a red circle above a blue square"')
