"""Checkpoints: a folder, written atomically, that never needs unpickling.

    <run>/checkpoint/config.json           resolved recipe (+ format version, step)
    <run>/checkpoint/model.safetensors     training weights of the method
    <run>/checkpoint/ema.safetensors       EMA weights (used for sampling)
    <run>/checkpoint/state/optimizer.safetensors + state/trainer.json   (resume only)

A save writes `checkpoint.tmp/`, moves the old folder to `checkpoint.old/`, renames the new one into
place and only then deletes the old: a kill at any moment leaves a complete `checkpoint/` or
`checkpoint.old/`, and `find_checkpoint` falls back to the latter.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from genlab.config import Recipe, recipe_from_dict, recipe_to_dict
from genlab.errors import GenlabError

FORMAT = 1


def _contiguous(sd: dict) -> dict:
    return {k: v.detach().contiguous().cpu() for k, v in sd.items()}


def optimizer_to_tensors(optimizers: dict[str, torch.optim.Optimizer]) -> tuple[dict, dict]:
    """Flatten optimizer states into safetensors-able tensors + JSON hyperparameters."""
    tensors, meta = {}, {}
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        meta[name] = {"param_groups": sd["param_groups"]}
        for pid, state in sd["state"].items():
            for key, value in state.items():
                tensors[f"{name}.{pid}.{key}"] = torch.as_tensor(value).detach().contiguous().cpu()
    return tensors, meta


def optimizer_from_tensors(optimizers: dict, tensors: dict, meta: dict) -> None:
    for name, opt in optimizers.items():
        state: dict[int, dict] = {}
        for key, value in tensors.items():
            group, pid, field = key.split(".", 2)
            if group == name:
                state.setdefault(int(pid), {})[field] = value
        # the saved hyperparameters, but this optimizer's kernel choice (fused / foreach: the same update, so a
        # checkpoint of the per-tensor loop resumes on the fused kernel, and one saved fused resumes where none is)
        kernel = [{k: g[k] for k in ("fused", "foreach") if k in g} for g in opt.param_groups]
        groups = [{**saved, **own} for saved, own in zip(meta[name]["param_groups"], kernel)]
        groups += meta[name]["param_groups"][len(groups) :]  # a group-count mismatch stays load_state_dict's error
        opt.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(
    run_dir: Path, recipe: Recipe, *, step: int, model: dict, ema: dict, state: dict | None, name: str = "checkpoint"
) -> Path:
    """Atomically write <run_dir>/<name> (checkpoint; best: the weights of the lowest validation loss, without
    state). `state` = {'optimizer': tensors, 'trainer': json-able}."""
    run_dir = Path(run_dir)
    final, tmp, old = run_dir / name, run_dir / f"{name}.tmp", run_dir / f"{name}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "state").mkdir(parents=True)
    config = {"format": FORMAT, "step": step, "recipe": recipe_to_dict(recipe)}
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    save_file(_contiguous(model), str(tmp / "model.safetensors"))
    save_file(_contiguous(ema), str(tmp / "ema.safetensors"))
    if state is not None:
        save_file(state["optimizer"], str(tmp / "state" / "optimizer.safetensors"))
        (tmp / "state" / "trainer.json").write_text(json.dumps(state["trainer"], indent=2))
    _fsync_tree(tmp)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _fsync_tree(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


SHIPPED_PREFIX = "shipped:"  # "shipped:NAME" names the checkpoint shipped in the package, genlab/assets/NAME


def _assets() -> Path:
    from importlib import resources

    return Path(str(resources.files("genlab") / "assets"))


def is_shipped(path: str | Path) -> bool:
    """Whether `path` is a checkpoint shipped in the package ("shipped:NAME" or its folder): never write into it."""
    return str(path).startswith(SHIPPED_PREFIX) or Path(path).resolve().parent == _assets().resolve()


def run_folder(path: str | Path) -> Path:
    """The folder `path` names: itself, or for "shipped:NAME" the checkpoint shipped as genlab/assets/NAME."""
    if not str(path).startswith(SHIPPED_PREFIX):
        return Path(path)
    assets = _assets()
    name = str(path)[len(SHIPPED_PREFIX) :]
    found = sorted(p.name for p in assets.iterdir() if (p / "config.json").is_file())
    if name not in found:
        raise GenlabError(f"no shipped checkpoint {name!r}: genlab ships {', '.join(found)}")
    return assets / name


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint folder for a run folder (or a checkpoint folder itself, or "shipped:NAME")."""
    path = run_folder(path)
    if path.is_file():
        raise GenlabError(
            f"{path} is a file; genlab checkpoints are folders written by 'genlab train' "
            "(config.json + safetensors) and pickled .pt/.pkl files are never loaded: pass the run folder"
        )
    if not path.exists():
        raise GenlabError(f"run folder {path} does not exist: pass a folder written by 'genlab train'")
    for candidate in (path, path / "checkpoint", path / "checkpoint.old"):
        if (candidate / "config.json").is_file() and (candidate / "ema.safetensors").is_file():
            return candidate
    raise GenlabError(f"{path} holds no genlab checkpoint (no checkpoint/config.json): train one with 'genlab train'")


def read_checkpoint_config(ckpt: Path) -> tuple[Recipe, int]:
    try:
        config = json.loads((ckpt / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise GenlabError(f"{ckpt / 'config.json'} is not valid JSON: the checkpoint is damaged") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT or "recipe" not in config:
        raise GenlabError(f"{ckpt / 'config.json'} is not a genlab checkpoint config (format {FORMAT})")
    return recipe_from_dict(config["recipe"], str(ckpt / "config.json")), int(config.get("step", 0))


def load_weights(module: torch.nn.Module, file: Path) -> None:
    """Load safetensors into `module`, strictly; a mismatch is a GenlabError."""
    try:
        sd = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as e:
        raise GenlabError(f"{file} is not a readable safetensors file ({e}): the checkpoint is damaged") from None
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[1:2] or [str(e)]
        raise GenlabError(
            f"{file} does not match the model its config.json describes ({first[0].strip()}): "
            "use the config.json that was saved with these weights"
        ) from None


def load_state(ckpt: Path) -> tuple[dict, dict]:
    """(optimizer tensors, trainer json) for resuming."""
    state = ckpt / "state"
    if not (state / "trainer.json").is_file():
        raise GenlabError(f"{ckpt} has no training state (state/trainer.json): it cannot be resumed")
    try:
        return load_file(str(state / "optimizer.safetensors")), json.loads((state / "trainer.json").read_text())
    except (SafetensorError, OSError, ValueError) as e:
        raise GenlabError(f"{state} is damaged ({e}): resume from an intact checkpoint") from None
