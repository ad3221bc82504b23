"""Every method kind's loss, sample and likelihood keep their tensors on the model's device, checked without a GPU.

`PretendDevice` is a TorchFunctionMode that makes chosen tensors (the method's parameters and buffers, the
batch) report `device == cuda` while their data stays on the CPU. A tensor is "on the pretend device" when it
was derived from one that is (any op with such an input), created with `device=` that pretend device, or moved
there by `.to(...)`. Everything else is a plain CPU tensor, as it would be on a real GPU. The mode fails an op
the way CUDA would: one that mixes a pretend-device tensor with a CPU tensor of one or more dimensions
(0-dim CPU tensors are allowed, as in PyTorch), or that draws from a CPU generator onto the pretend device.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

from genlab.config import load_recipe, recipe_to_dict
from genlab.data import build_dataset
from genlab.runs import build_method
from genlab.settings import SampleSettings
from genlab.train import resolve
from tests.conftest import write_recipe
from tests.t2i_fixtures import coloured_squares, use_hash_encoder

FAKE = torch.device("cuda")
CPU = torch.device("cpu")
TAG = "_genlab_pretend_device"
DEVICE_GET = torch.Tensor.device.__get__
MOVES = {torch.Tensor.to, torch.Tensor.cpu, torch.Tensor.copy_, torch.Tensor.__setitem__, torch.Tensor.__getitem__}


class DeviceMismatch(AssertionError):
    pass


def on_fake(t: torch.Tensor) -> bool:
    return bool(getattr(t, TAG, False))


def tag(t, value: bool = True):
    if isinstance(t, torch.Tensor):
        setattr(t, TAG, value)
    return t


def _is_fake(d) -> bool:
    return (isinstance(d, torch.device) and d == FAKE) or (isinstance(d, str) and d.startswith("cuda"))


class PretendDevice(TorchFunctionMode):
    """Tensors tagged here behave as if on `cuda`; see the module docstring for the rules."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func == DEVICE_GET:
            return FAKE if on_fake(args[0]) else func(*args)
        wants_fake = any(_is_fake(a) for a in tree_flatten((args, kwargs))[0])
        args, kwargs = tree_map(lambda a: CPU if _is_fake(a) else a, (args, kwargs))
        leaves = tree_flatten((args, kwargs))[0]
        tensors = [a for a in leaves if isinstance(a, torch.Tensor)]
        tagged = any(on_fake(t) for t in tensors)
        self._check_generator(func, leaves, tagged or wants_fake)
        if func in MOVES:
            return self._move(func, args, kwargs, wants_fake)
        cpu = [tuple(t.shape) for t in tensors if not on_fake(t) and t.dim() > 0]
        if tagged and cpu:
            raise DeviceMismatch(
                f"{getattr(func, '__name__', func)} mixes tensors on the device with CPU tensors of shapes {cpu}"
            )
        out = func(*args, **kwargs)
        if tagged or wants_fake:
            tree_map(tag, out)
        return out

    @staticmethod
    def _check_generator(func, leaves, fake: bool) -> None:
        for g in leaves:
            if isinstance(g, torch.Generator) and g.device.type == "cpu" and fake:
                raise DeviceMismatch(f"{getattr(func, '__name__', func)} draws from a CPU generator onto the device")

    @staticmethod
    def _move(func, args, kwargs, wants_fake: bool):
        src = args[0]
        if func in (torch.Tensor.__getitem__, torch.Tensor.__setitem__):
            index = tree_flatten(args[1])[0]
            if not on_fake(src) and src.dim() > 0 and any(isinstance(i, torch.Tensor) and on_fake(i) for i in index):
                raise DeviceMismatch("a CPU tensor indexed with a tensor on the device")
            out = func(*args, **kwargs)
            if func is torch.Tensor.__getitem__:
                tag(out, on_fake(src))
            return out
        if func is torch.Tensor.copy_:
            return func(*args, **kwargs)
        if func is torch.Tensor.cpu:
            return tag(func(*args, **kwargs).clone(), False)
        leaves = tree_flatten((args[1:], kwargs))[0]
        others = [a for a in leaves if isinstance(a, torch.Tensor)]
        explicit_cpu = (
            any(isinstance(a, torch.device | str) and not _is_fake(a) and str(a).startswith("cpu") for a in leaves)
            and not wants_fake
        )
        target = (
            (wants_fake or on_fake(others[0])) if others else (False if explicit_cpu else wants_fake or on_fake(src))
        )
        out = func(*args, **kwargs)
        if out is src and target != on_fake(src):
            out = out.clone()
        return tag(out, target)


def pretend(method: torch.nn.Module, batch: dict) -> dict:
    """Tag the method's parameters and buffers and the batch's tensors as living on the pretend device."""
    for t in (*method.parameters(), *method.buffers()):
        tag(t)
    return {k: tag(v) for k, v in batch.items()}


# ----------------------------------------------------------------------------- tiny methods of every kind

TRAIN = {"steps": 2, "batch_size": 8, "warmup_steps": 1, "log_every": 1, "checkpoint_every": 2}
DIGITS = {"kind": "digits", "size": 4}
UNET = {"kind": "unet", "channels": 8, "channel_mults": [1], "num_res_blocks": 1}
VQ = {"kind": "vq", "channels": 8, "downsample": 1, "num_res_blocks": 1, "codebook_size": 8, "code_dim": 4}
AE = {"kind": "autoencoder", "channels": [8, 8], "latent_channels": 4}
AE_METHOD = {"kind": "autoencoder", "disc_start": 0, "disc_channels": 8, "calibration_images": 16}
CLIP = {"kind": "clip", "patch": 8, "width": 16, "image_depth": 1, "text_depth": 1, "heads": 2}
SHAPES = {"kind": "shapes", "n": 16, "n_test": 4}
DIT = {"kind": "dit", "size": "micro", "width": 16, "heads": 2, "patch_size": 2}

KINDS = {  # kind: (data, model, method)
    "flow": (DIGITS, UNET, {"kind": "flow"}),
    "gan": (DIGITS, {"kind": "dcgan", "channels": 8, "latent_dim": 4}, {"kind": "gan"}),
    "vae": (
        DIGITS,
        {"kind": "conv_vae", "channels": 8, "channel_mults": [1], "latent_dim": 4, "class_dim": 4},
        {"kind": "vae"},
    ),
    "gmm": (DIGITS, {"kind": "none"}, {"kind": "gmm", "components": 2}),
    "pixelcnn": (DIGITS, {"kind": "pixelcnn", "channels": 8, "layers": 1, "head_channels": 8}, {"kind": "pixelcnn"}),
    "vqvae": (DIGITS, VQ, {"kind": "vqvae"}),
    "token_prior": (DIGITS, {"kind": "transformer", "dim": 8, "depth": 1, "heads": 2}, {"kind": "token_prior"}),
    "text_token_prior": (
        "squares",
        {"kind": "transformer", "dim": 8, "depth": 1, "heads": 2},
        {"kind": "text_token_prior"},
    ),
    "autoencoder": ("squares", AE, AE_METHOD),
    "latent_flow": ("squares", DIT, {"kind": "latent_flow", "text_encoder": "minilm"}),
    "noisy_classifier": (DIGITS, UNET, {"kind": "noisy_classifier", "time": {"t_max": 0.6}}),
    "clip": (SHAPES, CLIP, {"kind": "clip"}),
}
PARTS = {
    "token_prior": ("tokenizer", "vqvae"),
    "text_token_prior": ("tokenizer", "vqvae_squares"),
    "latent_flow": ("autoencoder", "autoencoder"),
}
PART_METHODS = {
    "vqvae": ({"kind": "vqvae"}, VQ, DIGITS),
    "vqvae_squares": ({"kind": "vqvae"}, VQ, "squares"),
    "autoencoder": (AE_METHOD, AE, "squares"),
}


def _recipe(tmp: Path, kind: str, data: dict | str, model: dict, method: dict):
    if data == "squares":
        data = {"kind": "npz", "path": str(coloured_squares(tmp / "squares.npz", n=32))}
    tree = {"name": f"devices-{kind}", "seed": 0, "data": data, "model": model, "method": method, "train": TRAIN}
    recipe = load_recipe(write_recipe(tmp / f"{kind}.yaml", tree))
    dataset = build_dataset(recipe.data)
    return resolve(recipe, dataset), dataset


def tiny_method(tmp: Path, kind: str):
    """(method, a batch of 4 examples, the batch's captions or None) of `kind`; a frozen part is built untrained
    from its recipe (its weights do not matter here)."""
    data, model, method = KINDS[kind]
    method = dict(method)
    if kind in PARTS:
        name, part = PARTS[kind]
        p_method, p_model, p_data = PART_METHODS[part]
        part_recipe = _recipe(tmp, part, p_data, p_model, p_method)[0]
        method |= {name: "frozen", "frozen": {name: recipe_to_dict(part_recipe)}}
    recipe, dataset = _recipe(tmp, kind, data, model, method)
    torch.manual_seed(0)
    built = build_method(recipe).eval()
    batch = {"x": dataset.x[:4]}
    if dataset.labels is not None and dataset.num_classes:
        batch["label"] = dataset.labels[:4]
    texts = getattr(dataset, "texts", None)
    return built, batch, (None if texts is None else list(texts[:4]))


def run_everything(method, batch: dict, texts) -> None:
    """Each optimizer group's loss (or the closed-form statistics), sample with and without a CPU generator,
    and the likelihood where the method has one."""
    full = dict(batch, **({"text": texts} if texts is not None else {}))
    groups = method.optimizer_groups()
    if groups:
        for group in groups:
            method.loss(full, group)
    else:
        method.update(method.statistics(full), rate=1.0)
    if method.shows_reconstructions:
        method.reconstruct(batch["x"][:2])
    if method.generates and method.kind != "vqvae":  # a vqvae run is a tokenizer: token_prior samples with it
        # conditions as the run layer passes them: prompts, or class labels made on the CPU (runs.class_labels)
        cond = texts[:2] if method.takes_prompts else torch.arange(2) if method.num_classes else None
        ode = "steps" in method.sample_settings
        guide = {"guidance_scale": 2.0} if method.takes_prompts else {}  # the guided (batched) path of text models
        # a CPU generator as the run layer passes; None (the global RNG) too where it is cheap (one network pass)
        for generator in (torch.Generator().manual_seed(0), *((None,) if method.sampled_by.endswith("pass)") else ())):
            method.sample(
                2, cond=cond, settings=SampleSettings(**({"steps": 2} if ode else {}), **guide), generator=generator
            )
        if method.kind == "flow":  # a stochastic sampler draws noise at every step
            method.sample(
                2,
                cond=cond,
                settings=SampleSettings(sampler="euler_maruyama", steps=2),
                generator=torch.Generator().manual_seed(0),
            )
    if method.likelihood is not None:  # the flow's probability-flow ODE likelihood (defect 6 of issue 10)
        opts = {"steps": 1} if method.kind == "flow" else {}
        x = tag(batch["x"][:2].clone(), False)  # on the CPU, as the evaluator may pass it: the method moves it
        method.log_likelihood(x, cond=torch.arange(2) if method.num_classes else None, **opts)


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_tensor_stays_on_the_models_device(kind, tmp_path, monkeypatch):
    use_hash_encoder(monkeypatch)
    method, batch, texts = tiny_method(tmp_path, kind)
    batch = pretend(method, batch)
    with PretendDevice():
        run_everything(method, batch, texts)


def test_the_check_catches_a_cpu_tensor_and_a_cpu_generator():
    x = tag(torch.randn(3, 2))
    with PretendDevice():
        assert x.device == FAKE and torch.zeros(2, device=x.device).device == FAKE
        assert (x + torch.zeros(2, device=x.device)).device == FAKE
        assert (x * torch.tensor(2.0)).device == FAKE  # a 0-dim CPU tensor is allowed, as in PyTorch
        assert torch.randn(2, generator=torch.Generator()).to(x.device).device == FAKE
        assert x.cpu().device == CPU and x[0].device == FAKE
        with pytest.raises(DeviceMismatch):
            x + torch.zeros(2)
        with pytest.raises(DeviceMismatch):
            torch.randn(2, generator=torch.Generator(), device=x.device)
        with pytest.raises(DeviceMismatch):
            torch.multinomial(x.softmax(1), 1, generator=torch.Generator())
