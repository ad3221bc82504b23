"""Run by tests/test_fsdp.py under `accelerate launch` (2 CPU processes, gloo): for each (name, recipe) of a JSON spec,
a whole `Trainer.fit` into OUT/name (a consolidated checkpoint, samples.png), then each rank writes what it held as
OUT/name-rank{r}.json: trained elements held locally and in total, and the frozen parameters' gradients and optimizer
state (there should be none) and whether any of them was sharded.

With `"_resume": name` in the spec, the run of `name` (3 steps) is then resumed into OUT/name-resumed for RESUMED
steps in all, and the same recipe trained for RESUMED steps without a break into OUT/name-long.

usage: fsdp_worker.py SPEC.json OUT [--train.key=value ...]   (SPEC: {"name": "recipe.yaml", ...})
"""

import json
import sys
from pathlib import Path

from torch.distributed.tensor import DTensor

from genlab.config import load_recipe
from genlab.train import Trainer

RESUMED = 5


def facts(trainer: Trainer) -> dict:
    trained = [p for params in trainer.groups.values() for p in params]
    frozen = [(n, p) for n, p in trainer.method.named_parameters() if not p.requires_grad]
    in_optimizer = {id(p) for opt in trainer.optimizers.values() for p in opt.state}
    return {
        "sharded": sum(isinstance(p, DTensor) for p in trained),
        "trained": len(trained),
        "local_elements": sum((p.to_local() if isinstance(p, DTensor) else p).numel() for p in trained),
        "elements": sum(p.numel() for p in trained),
        "frozen": len(frozen),
        "frozen_with_grad": [n for n, p in frozen if p.grad is not None],
        "frozen_in_optimizer": [n for n, p in frozen if id(p) in in_optimizer],
        "frozen_sharded": [n for n, p in frozen if isinstance(p, DTensor)],
        "master_dtypes": sorted({str(p.dtype) for p in trained}),
        "ema_sharded": sum(isinstance(p, DTensor) for p in trainer.ema.parameters()),
    }


if __name__ == "__main__":
    spec, out, overrides = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]), sys.argv[3:]
    out.mkdir(parents=True, exist_ok=True)
    resume = spec.pop("_resume", None)
    for name, recipe_file in spec.items():
        trainer = Trainer(load_recipe(recipe_file, overrides), out / name)
        trainer.fit(progress=False)
        (out / f"{name}-rank{trainer.rank}.json").write_text(json.dumps(facts(trainer)))
    if resume:
        longer = load_recipe(spec[resume], [*overrides, f"--train.steps={RESUMED}"])
        trainer = Trainer(longer, out / f"{resume}-resumed")
        trainer.resume_from(out / resume / "checkpoint")
        trainer.fit(progress=False)
        Trainer(longer, out / f"{resume}-long").fit(progress=False)
