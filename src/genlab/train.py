"""One trainer for every method, read top to bottom.

Each step: take this rank's slice of the global batch from a
seeded epoch permutation; for each optimizer group of the method, accumulate gradients over
micro-batches (torch seeded from (seed, step, group, micro-batch index in the global batch)),
average them across processes (one flat all-reduce), clip, set the warmup+cosine
learning rate, step; update the EMA. A method with no optimizer groups is closed-form (EM): its
`statistics` are summed over micro-batches and processes and passed to its `update`, with the learning
rate as the step size. A gradient method with statistics-driven buffers (a VQ EMA codebook) gathers
them in its `loss` calls; after the optimizer steps the trainer sums its `pending_statistics` over
processes and calls `update` once. Spectral-norm power iterations (weight-only buffers) also advance
once per step, before the groups, never once per forward. So every stateful update follows the global
batch: data order and randomness are pure functions of the step, a resumed run is identical to an
uninterrupted one, and N processes x k accumulation steps match one process with N·k accumulation
steps on the same global batch (up to float summation order).

Files (metrics.jsonl, loss.png, sample grids) are written by rank 0 only, each atomically (genlab.atomic).

Gradients are all-reduced explicitly rather than through DDP: methods call their networks in
arbitrary ways (several groups, several networks) and DDP's forward hook would constrain that.
With train.parallel: fsdp the trained networks and the EMA are sharded by FSDP2 instead (genlab.parallel): gradients
are reduce-scattered in the backward pass, and checkpoints are gathered whole to rank 0 (docs/scaling.md).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.distributed as dist
from accelerate import Accelerator
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm
from tqdm.auto import tqdm

from genlab import checkpoint as ckpt_io
from genlab.atomic import atomic_path, atomic_write_text
from genlab.config import Recipe
from genlab.data import Dataset, build_dataset
from genlab.errors import GenlabError
from genlab.methods import Method
from genlab.plots import save_loss_curve, save_samples
from genlab.runs import build_method

# ----------------------------------------------------------------------------- recipe resolution


def resolve(recipe: Recipe, data: Dataset) -> Recipe:
    """Fill the model fields left as None from the dataset (in_channels, image_size, dim, classes; for text
    data vocab_size and seq_len, and the method's empty tokenizer)."""
    recipe = copy.deepcopy(recipe)
    m = recipe.model
    if data.tokenizer is not None:
        return _resolve_text(recipe, data)
    if m.kind == "lm":
        raise GenlabError("model.kind='lm' is a language model: it needs text data (data.kind text)")
    wanted = {"num_classes": data.num_classes}
    if data.is_video:  # (N, T, C, H, W)
        _, frames, c, h, w = data.x.shape
        wanted.update(in_channels=c, image_size=h, frames=frames)
    elif data.is_image:
        _, c, h, w = data.x.shape
        if h != w:
            raise GenlabError(f"images are {h}x{w}; genlab's image models need square images: set data.size")
        wanted.update(in_channels=c, image_size=h)
    else:
        wanted.update(dim=data.x.shape[1])
    for key, value in wanted.items():
        if not hasattr(m, key):
            if key != "num_classes":
                what = "video" if data.is_video else "image" if data.is_image else "vector"
                raise GenlabError(f"model.kind={m.kind!r} does not fit {what} data")
            continue
        if getattr(m, key) is None:
            setattr(m, key, value)
        elif key != "num_classes" and getattr(m, key) != value:
            raise GenlabError(f"model.{key}={getattr(m, key)} but the data has {key}={value}: remove the key")
    return recipe


def _resolve_text(recipe: Recipe, data: Dataset) -> Recipe:
    """Text data: model.vocab_size (tokenizer) and model.seq_len (window length), method.tokenizer (its dict)."""
    from genlab.text.bpe import BPETokenizer

    m, method = recipe.model, recipe.method
    wanted = {"vocab_size": BPETokenizer.from_dict(data.tokenizer).vocab_size, "seq_len": data.x.shape[1]}
    for key, value in wanted.items():
        if not hasattr(m, key):
            raise GenlabError(f"model.kind={m.kind!r} does not fit text data: use model.kind lm")
        if getattr(m, key) is None:
            setattr(m, key, value)
        elif getattr(m, key) != value:
            raise GenlabError(f"model.{key}={getattr(m, key)} but the text data has {key}={value}: remove the key")
    if not hasattr(method, "tokenizer"):
        raise GenlabError(f"method.kind={method.kind!r} does not fit text data: use method.kind ar_lm or mdlm")
    if not method.tokenizer:
        method.tokenizer = copy.deepcopy(data.tokenizer)
    elif method.tokenizer != data.tokenizer:
        raise GenlabError("method.tokenizer is not the tokenizer of this data (other text, seed or merges): remove it")
    return recipe


# ----------------------------------------------------------------------------- pure functions of the step


def micro_seed(seed: int, step: int, group: int, micro: int) -> int:
    """Seed of one micro-batch: randomness belongs to the micro-batch's place in the global batch,
    so N processes x k accumulation steps reproduce 1 process x N·k accumulation steps."""
    return (seed * 1_000_003 + step * 7_919 + group * 104_729 + micro * 15_485_863) % (2**63 - 1)


def batch_indices(n: int, batch: int, step: int, seed: int) -> torch.Tensor:
    """Global batch `step` of an endless stream of seeded per-epoch permutations of range(n)."""
    start, stop = step * batch, (step + 1) * batch
    parts = []
    for epoch in range(start // n, (stop - 1) // n + 1):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7_777 + epoch))
        lo, hi = max(start - epoch * n, 0), min(stop - epoch * n, n)
        parts.append(perm[lo:hi])
    return torch.cat(parts)


def learning_rate(cfg, step: int) -> float:
    """Linear warmup, then cosine decay to lr·min_lr_ratio (or constant)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


# ----------------------------------------------------------------------------- the trainer


def _to(value, device):
    """Tensors go to the device; anything else in a batch (captions) stays as it is."""
    return value.to(device) if isinstance(value, torch.Tensor) else value


def _has_accelerator() -> bool:
    """Without a GPU, tell accelerate so explicitly: under torchrun it then sets up gloo on CPU."""
    return torch.cuda.is_available() or torch.backends.mps.is_available()


def adamw(params: list, *, fused: bool = True, **kwargs) -> torch.optim.AdamW:
    """torch.optim.AdamW, with its fused kernel (one kernel over all tensors instead of a loop of elementwise ops per
    tensor: the optimizer step about 3x faster on CPU, see benchmarks/t2i_speed.py) where torch has it for every
    parameter's device and dtype; the default per-tensor loop otherwise (FSDP's sharded parameters: fused=False)."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

        devices = _get_fused_kernels_supported_devices()
    except (ImportError, AttributeError):  # older torch
        devices = []
    wide = (torch.float32, torch.float64)  # fp32 / fp64 weights: the same update as the loop to rounding (1e-7)
    fused = fused and all(type(p) is nn.Parameter and p.device.type in devices and p.dtype in wide for p in params)
    return torch.optim.AdamW(params, fused=True if fused else None, **kwargs)


def _all_reduce_sum(tensors: dict[str, torch.Tensor], world: int) -> None:
    if world > 1:
        for v in tensors.values():
            dist.all_reduce(v)


# ----------------------------------------------------------------------------- power iterations


def spectral_norms(module: nn.Module) -> list[tuple[nn.Module, nn.Parameter]]:
    """(power-iteration parametrization, the weight it normalises) for every spectral norm in `module`."""
    found = []
    for m in module.modules():
        if parametrize.is_parametrized(m):
            for plist in m.parametrizations.values():
                found += [(p, plist.original) for p in plist if isinstance(p, _SpectralNorm)]
    return found


@contextlib.contextmanager
def one_power_iteration(norms: list[tuple[nn.Module, nn.Parameter]]) -> Iterator[None]:
    """Advance every spectral norm's power iteration once, then hold u, v fixed for the block: forwards in
    it read sigma from the stored u, v, however many micro-batches (and calls per micro-batch) there are."""
    modes = [p.training for p, _ in norms]
    with torch.no_grad():
        for p, weight in norms:
            p.train()(weight)  # training mode: one power iteration updates u, v in place
    for p, _ in norms:
        p.eval()
    try:
        yield
    finally:
        for (p, _), mode in zip(norms, modes):
            p.train(mode)


# ----------------------------------------------------------------------------- atomic, rank-0 files


def append_metrics(file: Path, row: dict) -> None:
    """metrics.jsonl plus one row, replaced whole (a reader or a crash never sees half a row)."""
    old = file.read_text() if file.exists() else ""
    atomic_write_text(file, old + json.dumps(row) + "\n")


def write_loss_curve(metrics_file: Path, path: Path) -> None:
    """loss.png from metrics.jsonl, atomically; nothing when no row holds a loss."""
    rows = metrics_file.read_text().splitlines() if metrics_file.exists() else []
    if not any(k.startswith("loss") for r in rows if r.strip() for k in json.loads(r)):
        return
    with atomic_path(path) as tmp:
        save_loss_curve(metrics_file, tmp)


def _accelerator(mixed_precision: str) -> Accelerator:
    """An Accelerator for this run. accelerate keeps one process-wide state that refuses a second mixed-precision
    setting, so its per-run part is reset first (the distributed part, PartialState, is kept): a notebook or a
    test can train a bf16 recipe after an fp32 one in the same process."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(mixed_precision=mixed_precision, cpu=not _has_accelerator())


class Trainer:
    def __init__(self, recipe: Recipe, out_dir: Path, *, accelerator: Accelerator | None = None):
        self.acc = accelerator or _accelerator(recipe.train.mixed_precision)
        self.world, self.rank = self.acc.num_processes, self.acc.process_index
        cfg = recipe.train
        if cfg.batch_size % (self.world * cfg.grad_accum):
            raise GenlabError(
                f"train.batch_size={cfg.batch_size} must be divisible by processes x grad_accum "
                f"= {self.world} x {cfg.grad_accum}"
            )
        self.data = build_dataset(recipe.data, split="train")
        self.recipe = resolve(recipe, self.data)
        self.cfg = cfg
        self.out = Path(out_dir)
        torch.manual_seed(recipe.seed)  # identical initial weights on every rank
        self.method: Method = build_method(self.recipe).to(self.acc.device)
        if cfg.activation_checkpointing:
            from genlab.parallel import enable_activation_checkpointing

            enable_activation_checkpointing(self.method)
        self.ema = copy.deepcopy(self.method).requires_grad_(False).eval()
        self.sharding = None  # train.parallel: fsdp shards the trained networks and the EMA (genlab.parallel)
        if cfg.parallel == "fsdp":
            from genlab.parallel import setup

            self.sharding = setup(self.method, self.ema, self.recipe, self.acc.device)
        self.groups = self.method.optimizer_groups()  # after sharding: FSDP replaces the parameters
        self.optimizers = {
            name: adamw(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=self.sharding is None)
            for name, params in self.groups.items()
        }
        self.norms = spectral_norms(self.method)
        self.step = 0
        self.seconds = 0.0  # training wall time of this run, summed over resumes (train.time_limit_minutes)
        self.best_val = math.inf  # lowest val_loss so far (train.keep_best)
        self.val_data = self._validation_data() if cfg.eval_every else None
        self._stop = False

    # -- state

    def resume_from(self, ckpt: Path) -> None:
        sharded = self.sharding is not None  # whole tensors in the file, re-sharded over this run's processes
        load = self.sharding.load_weights_file if sharded else ckpt_io.load_weights
        load(self.method, ckpt / "model.safetensors")
        load(self.ema, ckpt / "ema.safetensors")
        tensors, trainer = ckpt_io.load_state(ckpt)
        fill = self.sharding.load_optimizers if sharded else ckpt_io.optimizer_from_tensors
        fill(self.optimizers, tensors, trainer["optimizers"])
        self.step = int(trainer["step"])
        self.seconds = float(trainer.get("seconds", 0.0))
        self.best_val = float(trainer.get("best_val", math.inf))

    def save(self) -> None:
        self.ema.calibrate(self.data)  # data-dependent buffers (a latent scale) from the EMA weights
        model, ema, (tensors, meta) = self._whole_state()
        if self.acc.is_main_process:
            ckpt_io.save_checkpoint(
                self.out,
                self.recipe,
                step=self.step,
                model=model,
                ema=ema,
                state={
                    "optimizer": tensors,
                    "trainer": {"step": self.step, "optimizers": meta, "seconds": self.seconds}
                    | ({"best_val": self.best_val} if math.isfinite(self.best_val) else {}),
                },
            )
            write_loss_curve(self.out / "metrics.jsonl", self.out / "loss.png")
        self.acc.wait_for_everyone()

    def _whole_state(self, *, optimizer: bool = True) -> tuple[dict, dict, tuple[dict, dict]]:
        """(weights, EMA weights, optimizer tensors and meta) of a checkpoint, whole, on the main process (sharded:
        gathered there, so every process calls this); empty elsewhere, and ({}, {}) for the optimizer unless
        `optimizer`."""
        if self.sharding is not None:
            shards = self.sharding
            return (
                shards.full_state_dict(self.method),
                shards.full_state_dict(self.ema),
                shards.full_optimizer_tensors(self.optimizers) if optimizer else ({}, {}),
            )
        if not self.acc.is_main_process:
            return {}, {}, ({}, {})
        opt = ckpt_io.optimizer_to_tensors(self.optimizers) if optimizer else ({}, {})
        return self.method.state_dict(), self.ema.state_dict(), opt

    # -- validation (train.eval_every, train.keep_best)

    def _validation_data(self) -> Dataset:
        try:
            data = build_dataset(self.recipe.data, split="validation")
        except (GenlabError, KeyError, ValueError) as e:
            raise GenlabError(
                f"train.eval_every needs a validation split, which data.kind {self.recipe.data.kind!r} does not have "
                f"({e}): set train.eval_every: 0 (text data has one)"
            ) from None
        return data

    @torch.no_grad()
    def validation_loss(self) -> float:
        """The EMA model's mean loss (its first optimizer group's) on the first train.eval_examples validation
        examples, with the same noise draws at every evaluation (a fixed seed, the global RNG state kept), so
        two evaluations differ only by the weights. Every rank computes the same number (no communication)."""
        n = min(len(self.val_data), self.cfg.eval_examples)
        group = next(iter(self.groups))
        devices = [self.acc.device] if self.acc.device.type == "cuda" else []
        total = 0.0
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.recipe.seed + VALIDATION_SEED)
            self.ema.step = self.step
            for idx in torch.arange(n).split(self.cfg.batch_size):
                batch = {k: _to(v, self.acc.device) for k, v in self.val_data.batch(idx).items()}
                with self.acc.autocast():
                    loss, _ = self.ema.loss(batch, group)
                total += float(loss) * len(idx)
        return total / n

    def save_best(self) -> None:
        """RUN/best: the EMA (and live) weights of the lowest val_loss so far, a checkpoint without trainer state
        (`genlab eval RUN/best`, `load_run("RUN/best")`)."""
        self.ema.calibrate(self.data)
        model, ema, _ = self._whole_state(optimizer=False)
        if self.acc.is_main_process:
            ckpt_io.save_checkpoint(
                self.out, self.recipe, step=self.step, model=model, ema=ema, state=None, name="best"
            )
        self.acc.wait_for_everyone()

    # -- one step

    def _local_batches(self) -> list[dict]:
        idx = batch_indices(len(self.data), self.cfg.batch_size, self.step, self.recipe.seed)
        per_rank = self.cfg.batch_size // self.world
        mine = idx[self.rank * per_rank : (self.rank + 1) * per_rank]
        micro = mine.chunk(self.cfg.grad_accum)
        return [{k: _to(v, self.acc.device) for k, v in self.data.batch(m).items()} for m in micro]

    def _reduce_grads(self, params: list[torch.nn.Parameter]) -> None:
        if self.world == 1 or self.sharding is not None:  # fsdp: reduce-scattered (averaged) in the backward pass
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p in params:
            p.grad = flat[offset : offset + p.numel()].view_as(p).clone()
            offset += p.numel()

    def train_step(self) -> dict:
        batches = self._local_batches()
        lr = learning_rate(self.cfg, self.step)
        logs: dict[str, float] = {}
        self.method.step = self.step
        if not self.optimizers:  # a closed-form method (EM): statistics summed, then one update
            logs.update(self._closed_form_step(batches, lr))
        with one_power_iteration(self.norms):
            logs.update(self._gradient_steps(batches, lr))
        stats = self.method.pending_statistics()  # buffers driven by this step's statistics: one update
        if stats:
            _all_reduce_sum(stats, self.world)
            logs.update(self.method.update(stats, rate=lr))
        self.method.after_step()
        self._update_ema()
        self.step += 1
        logs["lr"] = lr
        return logs

    def _gradient_steps(self, batches: list[dict], lr: float) -> dict:
        """Each optimizer group in turn: gradients accumulated over micro-batches, averaged over processes."""
        logs: dict[str, float] = {}
        for gi, (name, opt) in enumerate(self.optimizers.items()):
            params = self.groups[name]
            opt.zero_grad(set_to_none=True)
            for j, mb in enumerate(batches):
                torch.manual_seed(micro_seed(self.recipe.seed, self.step, gi, self.rank * len(batches) + j))
                with self.acc.autocast():
                    loss, info = self.method.loss(mb, name)
                (loss / len(batches)).backward()
                for k, v in info.items():
                    logs[k] = logs.get(k, 0.0) + float(v) / len(batches)
            self._reduce_grads(params)
            if self.cfg.grad_clip > 0:
                norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
                logs[f"grad_norm/{name}" if len(self.optimizers) > 1 else "grad_norm"] = float(norm)
            for g in opt.param_groups:
                g["lr"] = lr
            opt.step()
        return logs

    def _closed_form_step(self, batches: list[dict], rate: float) -> dict:
        """Methods without optimizer groups: sum `statistics(mb)` over micro-batches and processes, then
        `update(sums, rate=lr)`; the learning-rate schedule is the step size (see methods.base)."""
        sums: dict[str, torch.Tensor] = {}
        for j, mb in enumerate(batches):
            torch.manual_seed(micro_seed(self.recipe.seed, self.step, 0, self.rank * len(batches) + j))
            for k, v in self.method.statistics(mb).items():
                sums[k] = sums[k] + v if k in sums else v
        _all_reduce_sum(sums, self.world)
        return self.method.update(sums, rate=rate)

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.cfg.ema_decay
        if self.cfg.ema_warmup:
            decay = min(decay, (1 + self.step) / (10 + self.step))
        for e, p in zip(self.ema.parameters(), self.method.parameters()):
            e.lerp_(p, 1 - decay)
        for e, b in zip(self.ema.buffers(), self.method.buffers()):
            e.copy_(b)

    # -- the loop

    def fit(self, *, progress: bool = True) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        metrics_file = self.out / "metrics.jsonl"
        window: dict[str, list[float]] = {}
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        bar = tqdm(
            total=self.cfg.steps,
            initial=self.step,
            disable=not (progress and self.acc.is_main_process),
            desc=self.recipe.name,
            mininterval=1.0,
            dynamic_ncols=True,
        )
        tick, tick_step = time.perf_counter(), self.step
        start, before = tick, self.seconds
        try:
            while self.step < self.cfg.steps and not self._stop and not self._out_of_time():
                for k, v in self.train_step().items():
                    window.setdefault(k, []).append(v)
                self.seconds = before + time.perf_counter() - start
                self._sync_stop()
                bar.update(1)
                val = None
                if self.cfg.eval_every and (self.step % self.cfg.eval_every == 0 or self.step == self.cfg.steps):
                    val = self.validation_loss()
                    if self.cfg.keep_best and val < self.best_val:
                        self.best_val = val
                        self.save_best()
                if self.step % self.cfg.log_every == 0 or self.step == self.cfg.steps:
                    rate = (self.step - tick_step) * self.cfg.batch_size / (time.perf_counter() - tick)
                    row = self._log_row(window, rate) | ({"val_loss": round(val, 6)} if val is not None else {})
                    bar.set_postfix(loss=f"{row.get('loss', float('nan')):.4f}")
                    if self.acc.is_main_process:
                        append_metrics(metrics_file, row)
                    window, tick, tick_step = {}, time.perf_counter(), self.step
                elif val is not None and self.acc.is_main_process:
                    append_metrics(metrics_file, {"step": self.step, "val_loss": round(val, 6)})
                if self.cfg.sample_every and self.step % self.cfg.sample_every == 0:
                    self.write_samples(self.out / "samples" / f"step_{self.step:07d}.png")
                if self.step % self.cfg.checkpoint_every == 0 or self._stop:
                    self.save()
        finally:
            bar.close()
            signal.signal(signal.SIGINT, previous)
        if self._stop:
            raise KeyboardInterrupt
        if self.step % self.cfg.checkpoint_every:
            self.save()
        self.write_samples(self.out / "samples.png")

    def _log_row(self, window: dict, rate: float) -> dict:
        names = sorted(window)
        means = torch.tensor([sum(window[k]) / len(window[k]) for k in names], device=self.acc.device)
        if self.world > 1:
            dist.all_reduce(means)
            means /= self.world
        row = {"step": self.step, **{k: round(float(v), 6) for k, v in zip(names, means)}}
        row["samples_per_s"] = round(rate, 1)
        return row

    def _out_of_time(self) -> bool:
        """train.time_limit_minutes is spent (rank 0's clock decides, so every rank stops at the same step)."""
        if not self.cfg.time_limit_minutes:
            return False
        late = torch.tensor([float(self.seconds >= 60 * self.cfg.time_limit_minutes)], device=self.acc.device)
        if self.world > 1:
            dist.broadcast(late, 0)
        return bool(late.item())

    def _sync_stop(self) -> None:
        """Every rank stops at the same step if any rank was interrupted."""
        if self.world > 1:
            flag = torch.tensor([float(self._stop)], device=self.acc.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            self._stop = bool(flag.item())

    def _on_sigint(self, *_):
        if self._stop:  # second Ctrl-C: give up immediately
            raise KeyboardInterrupt
        self._stop = True
        tqdm.write("interrupt: finishing this step and saving a checkpoint (Ctrl-C again to abort)")

    def write_samples(self, path: Path) -> None:
        ema = self.ema
        if self.sharding is not None and self.ema.generates:  # a whole EMA on rank 0 (every rank takes part)
            ema = self.sharding.sampling_copy(self.ema, self.acc.device)
        if self.acc.is_main_process and self.ema.generates:
            write_sample_grid(ema, self.recipe, self.data, path)
        self.acc.wait_for_everyone()


TEXT_SAMPLES = 8  # samples a language model writes to samples.txt
VALIDATION_SEED = 7919  # added to the recipe's seed: the noise of every validation evaluation


def write_sample_grid(method: Method, recipe: Recipe, data: Dataset | None, path: Path, *, seed: int = 0) -> None:
    """A grid with one row per class (or a scatter against the data for vector data; image-to-image methods: one row
    per training image, the columns of `Method.preview`). A language model writes TEXT_SAMPLES decoded samples to
    `path` with the suffix .txt instead (samples.txt)."""
    gen = torch.Generator().manual_seed(seed)
    if method.makes_text:  # text: samples.txt, never a picture
        from genlab.runs import EOS_TEXT, write_texts

        ids = method.sample(TEXT_SAMPLES, settings=recipe.sample, generator=gen).x
        write_texts(method.decode_text(ids, eos=EOS_TEXT), path.with_suffix(".txt"))
        return
    cols = recipe.train.grid_columns
    if method.makes_video:  # one video per row, its frames left to right
        x = method.sample(cols, settings=recipe.sample, generator=gen).x  # (cols, T, C, H, W)
        with atomic_path(path) as tmp:
            save_samples(x.flatten(0, 1).cpu(), tmp, nrow=x.shape[1])
        return
    classes = method.num_classes
    label = torch.arange(classes).repeat_interleave(cols) if classes else None
    n = classes * cols if classes else (cols * cols if data is None or data.is_image else 2000)
    if method.shows_reconstructions and data is not None and data.is_video:  # each video's frames over its recon
        real = data.x[: max(cols // 2, 1)].to(method.device)  # (k, T, C, H, W)
        pairs = torch.stack([real, method.reconstruct(real)], 1)  # (k, 2, T, C, H, W)
        with atomic_path(path) as tmp:
            save_samples(pairs.flatten(0, 2).cpu(), tmp, nrow=real.shape[1])
        return
    if method.shows_reconstructions and data is not None:  # a tokenizer has no samples
        real = data.x[: n // (2 * cols) * cols].to(method.device)  # rows of real images over their reconstructions
        pairs = torch.stack([real.unflatten(0, (-1, cols)), method.reconstruct(real).unflatten(0, (-1, cols))], 1)
        with atomic_path(path) as tmp:
            save_samples(pairs.flatten(0, 2).cpu(), tmp, nrow=cols)
        return
    if method.image_task and data is not None:  # other image-to-image methods: rows of input | output | truth
        batch = {k: _to(v, method.device) for k, v in data.batch(torch.arange(min(cols, len(data)))).items()}
        rows = method.preview(batch, generator=gen)  # (B, columns, C, H, W)
        with atomic_path(path) as tmp:
            save_samples(rows.flatten(0, 1).cpu(), tmp, nrow=rows.shape[1])
        return
    x = method.sample(n, cond=label, settings=recipe.sample, generator=gen).x
    names = data.class_names if data is not None and classes and len(data.class_names) == classes else None
    with atomic_path(path) as tmp:
        save_samples(x.cpu(), tmp, nrow=cols, reference=None if data is None else data.x[:2000], row_labels=names)


def train(recipe: Recipe, out_dir: str | Path, *, resume: bool = False, progress: bool = True) -> Path:
    """Train `recipe` into `out_dir` (or continue the run there when resume=True)."""
    out_dir = Path(out_dir)
    if resume:
        ckpt = ckpt_io.find_checkpoint(out_dir)
    elif (out_dir / "checkpoint").exists() or (out_dir / "checkpoint.old").exists():
        raise GenlabError(f"{out_dir} already holds a run: use --resume {out_dir} to continue it, or --out NEW_DIR")
    trainer = Trainer(recipe, out_dir)
    if resume:
        trainer.resume_from(ckpt)
        if trainer.acc.is_main_process:
            truncate_metrics(out_dir / "metrics.jsonl", trainer.step)
        trainer.acc.wait_for_everyone()
    trainer.fit(progress=progress)
    return out_dir


def truncate_metrics(file: Path, step: int) -> None:
    """Drop log rows written after the checkpoint we resume from (the file is replaced whole; rank 0 calls it)."""
    if not file.exists():
        return
    rows = [line for line in file.read_text().splitlines() if line.strip()]
    kept = [r for r in rows if json.loads(r).get("step", 0) <= step]
    atomic_write_text(file, "".join(r + "\n" for r in kept))
