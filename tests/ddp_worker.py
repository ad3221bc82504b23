"""Run by the multi-process tests under torchrun or `accelerate launch`: for each (kind, recipe) of a JSON spec,
a few training steps, then each rank saves its method's state (weights and buffers) as {kind}-rank{r}.safetensors.

usage: ddp_worker.py SPEC.json OUT [--train.key=value ...]   (SPEC: {"kind": "recipe.yaml", ...})
"""

import json
import sys
from pathlib import Path

from safetensors.torch import save_file

from genlab.config import load_recipe
from genlab.train import Trainer

STEPS = 3


def run_steps(recipe_file: str, overrides: list[str], out: Path) -> Trainer:
    """A trainer on `recipe_file` (+ overrides) after train.steps (default STEPS) optimizer steps (no files written)."""
    trainer = Trainer(load_recipe(recipe_file, [f"--train.steps={STEPS}", *overrides]), out)
    for _ in range(trainer.cfg.steps):
        trainer.train_step()
    return trainer


def state(trainer: Trainer) -> dict:
    return {k: v.detach().cpu().contiguous() for k, v in trainer.method.state_dict().items()}


if __name__ == "__main__":
    spec, out, overrides = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]), sys.argv[3:]
    out.mkdir(parents=True, exist_ok=True)
    for kind, recipe_file in spec.items():
        trainer = run_steps(recipe_file, overrides, out / kind)
        save_file(state(trainer), str(out / f"{kind}-rank{trainer.rank}.safetensors"))
