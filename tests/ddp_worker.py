"""Run by test_train under torchrun: a few steps, then each rank saves its weights."""

import sys
from pathlib import Path

from safetensors.torch import save_file

from genlab.config import load_recipe
from genlab.train import Trainer

recipe_file, out = sys.argv[1], Path(sys.argv[2])
trainer = Trainer(load_recipe(recipe_file, ["--train.steps=5", *sys.argv[3:]]), out)
for _ in range(5):
    trainer.train_step()
out.mkdir(parents=True, exist_ok=True)
state = {k: v.contiguous() for k, v in trainer.method.state_dict().items()}
save_file(state, str(out / f"rank{trainer.rank}.safetensors"))
