"""Recipes: YAML files validated into nested dataclasses.

A recipe has five sections. `data`, `model` and `method` are *kinded*: their `kind` key picks a
dataclass from a plain registry dict (see `KINDED`), and every other key must be a field of that
dataclass. `train` and `sample` are fixed dataclasses. Unknown keys and wrong types are
`GenlabError`s naming the key and the file. Dotted overrides (`model.depth=6`) are parsed as YAML
scalars and validated the same way, and so is a checkpoint's config.json.

Values are checked before any work starts: after the type conversion, every rule a field declares
(`Annotated[T, Range(...) | OneOf(...) | NonEmpty()]`, see `genlab.constraints`) is applied, every float must
be finite, and a dataclass's `__post_init__` checks the rules that tie fields together. Errors read
"recipes/x.yaml: train.lr must be a finite number > 0, got nan".
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from genlab.constraints import (
    RULES,
    Count,
    FieldError,
    Name,
    NonNegFloat,
    PositiveFloat,
    PositiveInt,
    Probability,
    Range,
    Seed,
    check_finite,
    require,
)
from genlab.data import DATA_CONFIGS
from genlab.errors import GenlabError
from genlab.methods import METHOD_CONFIGS
from genlab.models import MODEL_CONFIGS
from genlab.settings import SampleSettings

Beta = Annotated[float, Range(0, lt=1)]


@dataclass
class TrainConfig:
    steps: PositiveInt = 1000
    batch_size: PositiveInt = 128  # global batch per optimizer step, split across processes
    grad_accum: PositiveInt = 1  # micro-batches per process per step
    lr: PositiveFloat = 1e-3
    min_lr_ratio: Probability = 0.05  # cosine decays to lr * min_lr_ratio
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_steps: Count = 100  # may exceed steps (the run then ends inside the warmup)
    weight_decay: NonNegFloat = 0.0
    betas: tuple[Beta, Beta] = (0.9, 0.999)
    grad_clip: NonNegFloat = 1.0  # max global grad norm; 0 disables
    ema_decay: Probability = 0.999
    ema_warmup: bool = True  # decay = min(ema_decay, (1 + step) / (10 + step))
    mixed_precision: Literal["no", "bf16"] = "no"  # fp16 needs loss scaling: not offered
    # ddp: every process holds the whole model (gradients all-reduced); fsdp: the trained networks' parameters,
    # gradients and optimizer state (and the EMA) are sharded over the processes (genlab.parallel, docs/scaling.md)
    parallel: Literal["ddp", "fsdp"] = "ddp"
    activation_checkpointing: bool = False  # recompute each DiT / U-Net block in the backward pass (less memory)
    log_every: PositiveInt = 50
    sample_every: Count = 0  # 0: only at the end
    checkpoint_every: PositiveInt = 500
    grid_columns: PositiveInt = 8
    time_limit_minutes: NonNegFloat = 0.0  # > 0: stop and save once the training time (summed over resumes) passes it
    # > 0: every N steps, the EMA model's loss on the first eval_examples of the data's validation split (text data),
    # with fixed noise draws, logged as val_loss in metrics.jsonl
    eval_every: Count = 0
    eval_examples: PositiveInt = 64
    keep_best: bool = False  # with eval_every: also keep the weights of the lowest val_loss in RUN/best (a checkpoint)

    def __post_init__(self) -> None:
        if self.batch_size >= 1 and self.grad_accum >= 1:
            require(
                self.batch_size % self.grad_accum == 0,
                "batch_size",
                f"must be divisible by grad_accum={self.grad_accum} (equal micro-batches), got {self.batch_size}",
            )
        require(not self.keep_best or self.eval_every > 0, "keep_best", "needs train.eval_every > 0 (set both)")


@dataclass
class Recipe:
    name: Name  # also the default run folder, runs/NAME
    data: Any
    model: Any
    method: Any
    seed: Seed = 0
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleSettings = field(default_factory=SampleSettings)  # the one sample-settings object


KINDED: dict[str, dict[str, type]] = {"data": DATA_CONFIGS, "model": MODEL_CONFIGS, "method": METHOD_CONFIGS}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`; return it converted (lists to tuples, int to float)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Annotated:
        return _convert(value, args[0], where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, where)
            except GenlabError as e:
                errors.append(str(e))
        raise GenlabError(errors[0] if len(errors) == 1 else f"{where}: {value!r} is not a {_type_name(tp)}")
    if origin is Literal:
        if value not in args:
            raise GenlabError(f"{where} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise GenlabError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis and len(args) != len(value):
            raise GenlabError(f"{where}: expected {len(args)} items, got {len(value)}")
        item_types = [args[0]] * len(value) if origin is list or args[-1] is Ellipsis else list(args)
        items = [_convert(v, t, f"{where}[{i}]") for i, (v, t) in enumerate(zip(value, item_types))]
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(tp):
        return parse_dataclass(tp, value, where)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 5e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp in (int, float, str, bool) and (type(value) is not tp):
        raise GenlabError(f"{where}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def _child(where: str, name: str, *, root: bool) -> str:
    return f"{where}: {name}" if root else f"{where}.{name}"


def _matches(value: Any, tp: Any) -> bool:
    """Whether a converted value is of the (possibly Annotated or generic) type `tp`."""
    if typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    base = typing.get_origin(tp) or tp
    if base is Literal:
        return value in typing.get_args(tp)
    if base in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(tp))
    return tp is Any or (isinstance(base, type) and isinstance(value, base))


def check_value(value: Any, tp: Any, where: str) -> None:
    """Apply the rules annotation `tp` declares (and finiteness of floats) to a converted value."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        for rule in tp.__metadata__:
            if isinstance(rule, RULES):
                rule.check(value, where)
        check_value(value, args[0], where)
    elif origin in (typing.Union, types.UnionType):
        for arg in args:
            if value is not None and arg is not type(None) and _matches(value, arg):
                check_value(value, arg, where)
                return
    elif origin in (tuple, list) and isinstance(value, (tuple, list)):
        item_types = [args[0]] * len(value) if not args or origin is list or args[-1] is Ellipsis else list(args)
        for i, (v, t) in enumerate(zip(value, item_types)):
            check_value(v, t, f"{where}[{i}]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        check_fields(value, where)
    else:
        check_finite(value, where)


def check_fields(obj: Any, where: str, *, root: bool = False) -> None:
    """Check every field of a built dataclass (given values and defaults alike) against its rules."""
    hints = typing.get_type_hints(type(obj), include_extras=True)
    for f in dataclasses.fields(obj):
        check_value(getattr(obj, f.name), hints[f.name], _child(where, f.name, root=root))


def parse_dataclass(cls: type, data: Any, where: str) -> Any:
    """Build dataclass `cls` from a dict, rejecting unknown keys, wrong types and values that break a rule."""
    if not isinstance(data, dict):
        raise GenlabError(f"{where}: expected a mapping, got {type(data).__name__}")
    root = cls is Recipe
    hints = typing.get_type_hints(cls, include_extras=True)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise GenlabError(f"{where}: unknown key '{unknown[0]}' (valid keys: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in data.items():
        key = _child(where, name, root=root)
        registry = KINDED.get(name) if root else None
        if registry is not None:
            kwargs[name] = _parse_kinded(registry, value, key)
        else:
            kwargs[name] = _convert(value, hints[name], key)
        check_value(kwargs[name], hints[name], key)  # before __post_init__ sees it
    try:
        obj = cls(**kwargs)
    except FieldError as e:  # a rule that ties fields together (__post_init__)
        raise GenlabError(f"{_child(where, e.key, root=root)} {e.rule}") from None
    except TypeError as e:  # a required field is missing
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in kwargs]
        raise GenlabError(f"{where}: missing key '{missing[0] if missing else '?'}' ({e})") from None
    check_fields(obj, where, root=root)  # the defaults too
    return obj


def _parse_kinded(registry: dict[str, type], data: Any, where: str) -> Any:
    if not isinstance(data, dict) or "kind" not in data:
        raise GenlabError(f"{where}: needs a 'kind' key (one of {', '.join(sorted(registry))})")
    kind = data["kind"]
    if kind not in registry:
        raise GenlabError(f"{where}.kind: unknown kind {kind!r} (one of {', '.join(sorted(registry))})")
    return parse_dataclass(registry[kind], data, where)


def apply_override(tree: dict, dotted: str, where: str = "command line") -> None:
    """Set `a.b.c=value` in a nested dict; the value is parsed as a YAML scalar."""
    key, sep, raw = dotted.lstrip("-").partition("=")
    if not sep or not key:
        raise GenlabError(f"{where}: override {dotted!r} must look like --section.key=value")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise GenlabError(f"{where}: cannot set {key!r}: {part!r} is not a section")
    node[parts[-1]] = value


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"recipe {path} not found: pass a YAML file such as recipes/digits-flow.yaml")
    try:
        tree = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise GenlabError(f"{path}:{line} is not valid YAML: fix the syntax") from None
    if not isinstance(tree, dict):
        raise GenlabError(f"{path}: a recipe must be a mapping with data/model/method sections")
    return tree


def load_recipe(path: str | Path, overrides: list[str] = ()) -> Recipe:
    tree = read_yaml(path)
    for o in overrides:
        apply_override(tree, o)
    return recipe_from_dict(tree, str(path))


def recipe_from_dict(tree: dict, where: str) -> Recipe:
    return parse_dataclass(Recipe, tree, where)


def recipe_to_dict(recipe: Recipe) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(recipe)))


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False)
