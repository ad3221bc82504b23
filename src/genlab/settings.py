"""How to draw samples, as one object that travels whole from the recipe or the CLI to the method.

`SampleSettings` holds every sampling knob of every family; a method reads the ones it names in
`Method.sample_settings` and the run layer refuses, with a message, a setting the user set that the method
cannot use ("gan samples in one pass: --sampler does not apply"). `Samples` is what every `Method.sample`
returns: the data plus the number of network evaluations (NFE) it took. `StepInfo` is what a per-step
callback receives (progress bars, live previews; raise from the callback to cancel).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, NamedTuple

from torch import Tensor

from genlab.constraints import NonNegFloat, OneOf, OptCount, PositiveInt, Probability, Range, require
from genlab.errors import GenlabError
from genlab.samplers import GRIDS, SAMPLERS

MAX_BEST_OF = 64  # the most candidates per image of a best-of-K search (genlab.rerank)


@dataclass(frozen=True)
class SampleSettings:
    """Also a recipe's `sample` section: its fields are validated when a recipe is loaded (genlab.config)."""

    sampler: Annotated[str, OneOf(SAMPLERS)] = "heun"  # ODE/SDE sampler (genlab sample --list-samplers)
    steps: PositiveInt = 16  # sampler steps (NFE depends on the sampler)
    grid: Annotated[str, OneOf(GRIDS, extra=("auto",))] = "auto"  # "auto": the sampler's own default grid
    guidance_scale: NonNegFloat = 1.0  # classifier-free guidance: uncond + s·(cond − uncond); 1 = none
    # guide only for t in [lo, hi] (t = 1 is noise), the conditional prediction elsewhere (Kynkäänniemi et al. 2024)
    guidance_interval: tuple[Probability, Probability] = (0.0, 1.0)
    eta: NonNegFloat = 0.0  # DDIM stochasticity
    temperature: Annotated[float | None, Range(gt=0)] = None  # autoregressive families; None = the recipe's method
    top_k: OptCount = None  # keep the k most likely tokens (0 = all)
    top_p: Annotated[float | None, Range(gt=0, le=1)] = None  # nucleus mass (1 = all)
    # text-to-image: each image the best of K draws as the generator judges them (genlab.rerank); read by
    # `genlab generate`, `genlab eval --prompts` and the web app (not by one draw, Run.sample); 1 = plain generation
    best_of: Annotated[int, Range(1, MAX_BEST_OF)] = 1

    def __post_init__(self) -> None:
        pair = tuple(self.guidance_interval)
        ok = len(pair) == 2 and all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in pair) and pair[0] <= pair[1]
        require(ok, "guidance_interval", f"must be [lo, hi] with 0 <= lo <= hi <= 1 (t = 1 is noise), got {list(pair)}")
        object.__setattr__(self, "guidance_interval", (float(pair[0]), float(pair[1])))

    @property
    def interval(self) -> tuple[float, float] | None:
        """The guidance interval as `genlab.samplers.guided` takes it: None when it spans every time."""
        return None if tuple(self.guidance_interval) == (0.0, 1.0) else tuple(self.guidance_interval)

    def replace(self, **changes: Any) -> SampleSettings:
        """A copy with `changes` applied (None values are ignored); unknown names are a GenlabError."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise GenlabError(f"unknown sample setting {unknown[0]!r}: use one of {', '.join(sorted(names))}")
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def as_dict(self, names: frozenset[str] | set[str] | None = None) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if names is None or k in names}


class Samples(NamedTuple):
    """What a method's `sample` returns: x (n, C, H, W) images in [-1, 1] or (n, D) vectors, and the NFE."""

    x: Tensor
    nfe: int
    sampler: str = ""  # how the samples were made, in words, when no ODE/SDE sampler was used
    cond: Any = None  # the conditioning they were drawn with (labels (n,) or n prompts), when the caller records it


class StepInfo(NamedTuple):
    """One step of a sampler, for callbacks: step index (from 0), total (None if unknown), the time t (None for
    autoregressive families), the current state x_t and the current estimate of the data x̂ (None if none)."""

    step: int
    total: int | None
    t: float | None
    x_t: Tensor | None
    x_hat: Tensor | None


Callback = Callable[[StepInfo], None]

#: the defaults, as a shared immutable value for keyword defaults
DEFAULT_SETTINGS = SampleSettings()
