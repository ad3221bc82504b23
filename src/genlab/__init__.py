"""genlab: one engine that trains, samples, edits and evaluates generative models.

import genlab
run = genlab.load_run("runs/digits-flow")
out = run.sample(16, label=3)             # out.x: (16, 1, 8, 8) in [-1, 1], out.nfe
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Run", "SampleSettings", "Samples", "load_run"]


def __getattr__(name: str):
    """The Python API, imported on first use (so that `import genlab` stays cheap)."""
    if name in ("Run", "load_run"):
        from genlab import runs

        return getattr(runs, name)
    if name in ("SampleSettings", "Samples"):
        from genlab import settings

        return getattr(settings, name)
    raise AttributeError(f"module 'genlab' has no attribute {name!r}")
