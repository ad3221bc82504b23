"""Memory levers for large models: sharded data parallelism (`train.parallel: fsdp`) and activation checkpointing
(`train.activation_checkpointing`). The Trainer calls in here from a few hooks; `ddp` (the default) never does.

FSDP is PyTorch's FSDP2 (`torch.distributed.fsdp.fully_shard`), not a home-made one. The networks an optimizer
group trains (the largest sub-modules of the method whose parameters all require gradients and belong to one
group, e.g. `model` of a flow) are sharded: first each block (DiT block, U-Net block), then the network. Every
rank then holds 1/N of those parameters, their gradients (reduce-scattered, averaged over processes, as the
all-reduce of `ddp` does) and their AdamW state. Frozen parts (an autoencoder, a text encoder, a teacher:
parameters with requires_grad False) stay whole on every rank and get no gradients and no optimizer state. The
EMA copy is sharded the same way, so its update stays local. With `train.mixed_precision: bf16`, FSDP's
MixedPrecisionPolicy computes in bf16 (gathered parameters) and reduces gradients in fp32; the master weights and
AdamW state stay fp32.

Checkpoints do not change: `consolidated_state` gathers the full weights, EMA and optimizer state to rank 0,
which writes the usual single-file safetensors checkpoint; `load` re-shards a checkpoint over any number of
processes (a checkpoint saved with ddp, with fsdp over 2 processes, or with 1 process, resumes the same way).

With one process and no process group (`genlab train` without a launcher) there is nothing to shard:
`parallel: fsdp` trains exactly like `ddp`. Under a launcher with one process (torchrun --nproc-per-node 1) the
networks are sharded over that one rank (FSDP's code path, e.g. to try bf16 mixed precision on one GPU).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    set_model_state_dict,
)
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

from genlab.errors import GenlabError


def enable_activation_checkpointing(method: nn.Module) -> int:
    """Turn on per-block activation checkpointing in every network of `method` that offers it (DiT, U-Net: an
    `activation_checkpointing` attribute read by their forward); the number of networks. None is a GenlabError."""
    found = [m for m in method.modules() if hasattr(m, "activation_checkpointing")]
    if not found:
        raise GenlabError(
            "train.activation_checkpointing: this method's networks have no checkpointable blocks "
            "(model.kind dit or unet have): set train.activation_checkpointing: false"
        )
    for m in found:
        m.activation_checkpointing = True
    return len(found)


def block_types() -> tuple[type, ...]:
    """The module classes sharded (and checkpointed) one by one: a transformer block, a U-Net (res) block."""
    from genlab.models import dit, layers, transformer, unet

    return (dit.DiTBlock, dit.MMDiTBlock, unet.Block, layers.ResBlock, transformer.Block)


def outer_blocks(module: nn.Module) -> list[nn.Module]:
    """The outermost sub-modules of `module` that are blocks (a U-Net Block holds a ResBlock: only the Block)."""
    kinds, found = block_types(), []

    def walk(m: nn.Module) -> None:
        for child in m.children():
            if isinstance(child, kinds):
                found.append(child)
            else:
                walk(child)

    walk(module)
    return found


def trained_networks(method: nn.Module, groups: dict[str, list[nn.Parameter]]) -> list[str]:
    """Names of the largest proper sub-modules of `method` whose parameters all belong to one optimizer group
    (the networks FSDP shards). A trained parameter outside every such module is a GenlabError (FSDP shards
    modules, and only modules called as modules gather their parameters)."""
    owner = {id(p): name for name, params in groups.items() for p in params}
    chosen: list[str] = []

    def walk(m: nn.Module, prefix: str) -> None:
        for name, child in m.named_children():
            params = list(child.parameters())
            full = f"{prefix}{name}"
            if params and len({owner.get(id(p)) for p in params}) == 1 and id(params[0]) in owner:
                chosen.append(full)
            elif any(id(p) in owner for p in params):
                walk(child, full + ".")

    walk(method, "")
    covered = {id(p) for n in chosen for p in method.get_submodule(n).parameters()}
    loose = [n for n, p in method.named_parameters() if id(p) in owner and id(p) not in covered]
    if loose:
        raise GenlabError(
            f"train.parallel=fsdp: the trained parameter {loose[0]!r} is not inside a network of its own "
            "optimizer group, which FSDP could shard: use train.parallel: ddp for this method"
        )
    return chosen


def check_supported(method, groups: dict, recipe) -> None:
    """GenlabErrors for what fsdp does not do."""
    from genlab.methods import Method
    from genlab.train import spectral_norms

    kind = recipe.method.kind
    if not groups:
        raise GenlabError(
            f"train.parallel=fsdp shards gradient-trained networks; method.kind {kind} is closed-form (EM) and "
            "keeps only statistics: use train.parallel: ddp"
        )
    if spectral_norms(method):
        raise GenlabError(
            f"train.parallel=fsdp does not shard spectral-normalised networks (method.kind {kind}): "
            "use train.parallel: ddp"
        )
    if type(method).after_step is not Method.after_step:
        raise GenlabError(
            f"train.parallel=fsdp: method.kind {kind} derives state from its weights after every step "
            "(a target or teacher network), which needs whole weights: use train.parallel: ddp"
        )
    if recipe.train.keep_best:
        raise GenlabError("train.keep_best is not supported with train.parallel=fsdp yet: set train.keep_best: false")


class Sharding:
    """FSDP2 over all processes for one Trainer: shards `method` and its EMA copy `ema` (same layout) in place."""

    def __init__(self, method: nn.Module, ema: nn.Module, recipe, device: torch.device):
        from torch.distributed.device_mesh import init_device_mesh

        groups = method.optimizer_groups()
        check_supported(method, groups, recipe)
        self.names = trained_networks(method, groups)
        self.world, self.rank = dist.get_world_size(), dist.get_rank()
        self.mesh = init_device_mesh(device.type, (self.world,))
        # bf16: the blocks gather bf16 parameters and cast their inputs to bf16; the rest of a network (embeddings of
        # the time and the labels, patch and output layers: few parameters) keeps fp32 parameters and fp32 inputs, so
        # that t is not rounded to bf16 before its sinusoidal embedding; the trainer's autocast runs its matmuls in
        # bf16 as in ddp. Gradients are reduced in fp32, and the network's output is fp32.
        bf16 = recipe.train.mixed_precision == "bf16"
        self.policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else None
        self.root_policy = (
            MixedPrecisionPolicy(reduce_dtype=torch.float32, output_dtype=torch.float32, cast_forward_inputs=False)
            if bf16
            else None
        )
        self.recipe = recipe
        for module in (method, ema):
            for name in self.names:
                self._shard(module.get_submodule(name))

    def _shard(self, network: nn.Module) -> None:
        extra = {} if self.policy is None else {"mp_policy": self.policy}
        for block in outer_blocks(network):
            fully_shard(block, mesh=self.mesh, **extra)
        fully_shard(network, mesh=self.mesh, **({} if self.root_policy is None else {"mp_policy": self.root_policy}))

    # -- consolidation (collective: every rank calls these, in the same order)

    def full_state_dict(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """`module`'s whole state dict (the plain key names) on rank 0, on the CPU; {} on the other ranks."""
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_model_state_dict(module, options=options)

    def full_optimizer_tensors(self, optimizers: dict[str, torch.optim.Optimizer]) -> tuple[dict, dict]:
        """The optimizer state in the checkpoint format of genlab.checkpoint.optimizer_to_tensors (whole tensors,
        indexed by the parameter's place in its optimizer), on rank 0; ({}, meta) elsewhere."""
        tensors, meta = {}, {}
        for name, opt in optimizers.items():
            sd = opt.state_dict()
            meta[name] = {"param_groups": sd["param_groups"]}
            for pid in sorted(sd["state"]):
                for key, value in sd["state"][pid].items():
                    full = value.full_tensor() if isinstance(value, DTensor) else torch.as_tensor(value)
                    if self.rank == 0:
                        tensors[f"{name}.{pid}.{key}"] = full.detach().contiguous().cpu()
        return tensors, meta

    def sampling_copy(self, ema: nn.Module, device: torch.device) -> nn.Module | None:
        """A plain (unsharded) copy of the EMA method on rank 0, for the sample grids; None on the other ranks."""
        from genlab.runs import build_method

        state = self.full_state_dict(ema)
        if self.rank != 0:
            return None
        with torch.random.fork_rng(devices=[]):  # building draws initial weights from the global generator
            plain = build_method(self.recipe)
        plain.load_state_dict(state, strict=True)
        return plain.to(device).eval()

    # -- loading (collective)

    def load_weights_file(self, module: nn.Module, file: Path) -> None:
        """A checkpoint's safetensors file (whole weights) into the sharded `module`: every rank keeps its shard."""
        try:
            state = load_file(str(file))
        except (SafetensorError, OSError, ValueError) as e:
            raise GenlabError(f"{file} is not a readable safetensors file ({e}): the checkpoint is damaged") from None
        self.load_weights(module, state, file)

    def load_weights(self, module: nn.Module, state: dict[str, torch.Tensor], file) -> None:
        """Whole weights (a checkpoint's) into the sharded `module`: every rank keeps its shard."""
        want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        got = {k: tuple(v.shape) for k, v in state.items()}
        if want != got:
            diff = sorted(set(want) ^ set(got)) or [k for k in want if want[k] != got[k]]
            raise GenlabError(
                f"{file} does not match the model its config.json describes ({diff[0]}): "
                "use the config.json that was saved with these weights"
            )
        set_model_state_dict(module, state, options=StateDictOptions(full_state_dict=True, strict=True))

    def load_optimizers(self, optimizers: dict, tensors: dict, meta: dict) -> None:
        """Whole optimizer tensors (genlab.checkpoint format) re-sharded like the parameters they belong to."""
        for name, opt in optimizers.items():
            params = [p for g in opt.param_groups for p in g["params"]]
            state: dict[int, dict] = {}
            for key, value in tensors.items():
                group, pid, field = key.split(".", 2)
                if group != name:
                    continue
                p = params[int(pid)]
                if isinstance(p, DTensor) and value.dim() > 0:
                    value = distribute_tensor(value.to(p.device), p.device_mesh, p.placements)
                state.setdefault(int(pid), {})[field] = value
            opt.load_state_dict({"state": state, "param_groups": meta[name]["param_groups"]})


def setup(method: nn.Module, ema: nn.Module, recipe, device: torch.device) -> Sharding | None:
    """`train.parallel: fsdp`: shard `method` and `ema` over the process group (None when there is no group: one
    plain process, which trains as ddp does). Unsupported methods are refused even then, so a recipe does not
    pass on a laptop and fail on the cluster."""
    if recipe.train.parallel != "fsdp":
        return None
    if not (dist.is_available() and dist.is_initialized()):
        check_supported(method, method.optimizer_groups(), recipe)
        trained_networks(method, method.optimizer_groups())
        return None
    return Sharding(method, ema, recipe, device)
