"""Runs: the one way a saved model comes back, and the Python API for notebooks.

    run = genlab.load_run("runs/digits-flow")
    out = run.sample(16, label=3, steps=8)        # Samples(x, nfe, sampler, cond)
    run.evaluate(n=1000)                           # writes runs/digits-flow/eval/eval.{json,md}

A run folder (recipe + weights + metrics, written by `genlab train`) is loaded once into a `Run`: its resolved
recipe, its method with EMA weights, its step and its default `SampleSettings`. The CLI, the evaluator, `compare`,
`generate` and `interpolate` go through it; nothing else reads checkpoints. Frozen parts a method builds on
(a tokenizer, an autoencoder, a CLIP text encoder) are built here and handed to the method's constructor:
from their run folders when a run is created (their recipes are then recorded in `method.frozen`), from that
record when a saved run is loaded (their weights are part of the run's own checkpoint).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab import checkpoint as ckpt_io
from genlab.atomic import atomic_path, atomic_write_text
from genlab.config import Recipe, recipe_from_dict, recipe_to_dict
from genlab.errors import GenlabError
from genlab.methods import METHODS, Method
from genlab.settings import Callback, Samples, SampleSettings

#: the recipe that trains a part of each kind, for error messages
PART_RECIPES = {
    "vqvae": "recipes/digits-vqvae.yaml or recipes/shapes-vqvae.yaml",
    "autoencoder": "recipes/shapes-autoencoder.yaml",
    "clip": "recipes/shapes-clip.yaml",
    "latent_flow": "recipes/shapes-t2i.yaml, or recipes/shapes-t2i-ordered.yaml (then -curriculum, -finetune, -mix, "
    "-mix2, -mix3, -mix4, -para, -para2, -relations, -relations2, -grow, -grow2, -shift)",
}
CHUNK = 500  # samples drawn per batch: memory stays bounded for any n
EOS_TEXT = "\n\n"  # what an <eos> (a document ended) becomes in generated text
GAP = "____"  # marks a span to fill in Run.infill's text
PNG_LIMIT = 4096  # images in one PNG grid


def build_method(recipe: Recipe) -> Method:
    """The method a resolved recipe describes, with its frozen parts (see the module docstring). A new run's
    `recipe.method.frozen` is filled in place with the parts' recipes."""
    cls = METHODS[recipe.method.kind]
    wanted = cls.frozen_parts(recipe.method)
    if not wanted:
        return cls(recipe.method, recipe.model)
    parts = {}
    with torch.random.fork_rng(devices=[]):  # the method's initialisation does not depend on how parts are built
        for name, (folder, kind) in wanted.items():
            stored = recipe.method.frozen.get(name)
            if stored is not None:  # a saved run: the weights follow from its own checkpoint
                parts[name] = build_method(recipe_from_dict(stored, f"method.frozen.{name}"))
            else:
                run = _part_run(name, folder, kind)
                parts[name] = run.method
                recipe.method.frozen[name] = recipe_to_dict(run.recipe)
    return cls(recipe.method, recipe.model, parts)


def _part_run(name: str, folder: str, kind: str) -> Run:
    hint = f"train one first (genlab train {PART_RECIPES[kind]})" if kind in PART_RECIPES else "train one first"
    if not folder or not Path(folder).exists():
        raise GenlabError(f"method.{name}={folder!r}: no such run folder; {hint}")
    try:
        run = load_run(folder)
    except GenlabError as e:
        raise GenlabError(f"method.{name}={folder}: {e}") from None
    kinds = kind.split("|")  # "flow|reflow|...": any of these kinds will do
    if run.recipe.method.kind not in kinds:
        wanted = " or ".join(repr(k) for k in kinds)
        raise GenlabError(f"method.{name}={folder} is a {run.recipe.method.kind!r} run, not a {wanted} run; {hint}")
    return run


def read_run(path: str | Path) -> tuple[Recipe, int]:
    """(recipe, step) of a run folder without building its method."""
    return ckpt_io.read_checkpoint_config(ckpt_io.find_checkpoint(path))


def train_seconds(path: str | Path) -> float:
    """Training wall time of a run, summed over resumes (0 when it kept no training state)."""
    state = ckpt_io.find_checkpoint(path) / "state" / "trainer.json"
    return float(json.loads(state.read_text()).get("seconds", 0.0)) if state.is_file() else 0.0


def load_run(path: str | Path, *, device: str | torch.device | None = None, weights: str = "ema") -> Run:
    """The run in folder `path` (or a checkpoint folder, or "shipped:NAME"), its `weights` ("ema" or "model") in
    eval mode."""
    path = ckpt_io.run_folder(path)
    ckpt = ckpt_io.find_checkpoint(path)
    recipe, step = ckpt_io.read_checkpoint_config(ckpt)
    method = build_method(recipe)
    ckpt_io.load_weights(method, ckpt / f"{weights}.safetensors")
    if device is not None:
        method = method.to(device)
    return Run(Path(path), recipe, method.eval(), step)


def method_of_kind(run: str | Path | Run, kind: str, hint: str) -> Method:
    """The method (eval mode) of a run folder or a loaded `Run` whose method.kind is `kind`; a folder's kind is read
    before any weights load. Another kind is a GenlabError "PATH is a 'KIND' run, " + hint."""
    found = run.recipe.method.kind if isinstance(run, Run) else read_run(run)[0].method.kind
    if found != kind:
        raise GenlabError(f"{run.path if isinstance(run, Run) else run} is a {found!r} run, {hint}")
    return (run if isinstance(run, Run) else load_run(run)).method.eval()


def shipped_asset(name: str) -> Path:
    """The folder of a checkpoint shipped inside the package (genlab/assets/NAME: config.json + ema.safetensors)."""
    return ckpt_io.run_folder(ckpt_io.SHIPPED_PREFIX + name)


def class_labels(n: int, num_classes: int, label: int | None, *, start: int = 0) -> torch.Tensor | None:
    """`label` repeated n times, or the classes cycled evenly (start, start + 1, ...) mod num_classes."""
    if not num_classes:
        if label is not None:
            raise GenlabError("this run is unconditional: drop --label")
        return None
    if label is not None and not 0 <= label < num_classes:
        raise GenlabError(f"--label must be in [0, {num_classes - 1}], got {label}")
    return torch.full((n,), label) if label is not None else torch.arange(start, start + n) % num_classes


@dataclass
class Run:
    path: Path
    recipe: Recipe
    method: Method
    step: int

    @property
    def settings(self) -> SampleSettings:
        """The recipe's sample settings (the defaults of `sample`): its `sample` section is a SampleSettings."""
        return self.recipe.sample

    @property
    def num_classes(self) -> int:
        return self.method.num_classes

    @property
    def text_conditional(self) -> bool:
        return self.method.takes_prompts

    def resolve_settings(self, settings: SampleSettings | None = None, **overrides: Any) -> SampleSettings:
        """`settings` (a whole SampleSettings; default: the recipe's) with the non-None `overrides` applied; an
        override this method does not read is refused ("gan samples in one pass: --steps does not apply")."""
        given = {k: v for k, v in overrides.items() if v is not None}
        self.method.check_settings(set(given))
        return (settings or self.settings).replace(**given)

    def resolve_deterministic(self, settings: SampleSettings | None = None, **overrides: Any) -> SampleSettings:
        """`resolve_settings` for uses that follow one trajectory from the noise (inversion, prompt-to-prompt,
        interpolation, reflow couplings): where the recipe's sampler draws fresh noise and the caller chose neither
        `settings` nor a sampler or eta, its probability-flow ODE (genlab.samplers.deterministic) instead."""
        from genlab.samplers import deterministic

        resolved = self.resolve_settings(settings, **overrides)
        chosen = settings is not None or any(overrides.get(k) is not None for k in ("sampler", "eta"))
        return resolved if chosen or "sampler" not in self.method.sample_settings else deterministic(resolved)

    def conditions(
        self,
        n: int,
        *,
        label: int | None = None,
        prompts: list[str] | None = None,
        start: int = 0,
        negative: str | list[str] | None = None,
    ):
        """The `cond` of n samples: prompts for a text-to-image run (with `negative`, one string for all or one per
        prompt: `Prompts` guided against the negatives), labels (cycled or fixed) otherwise."""
        if self.text_conditional:
            if label is not None:
                raise GenlabError("a text-to-image run takes prompts, not --label")
            positive = None if prompts is None else list(prompts)[start : start + n]
            if negative is None:
                return positive
            from genlab.methods.latent import Prompts

            negs = [negative] * n if isinstance(negative, str) else list(negative)[start : start + n]
            return Prompts(positive, negs)
        if negative is not None:
            raise GenlabError(
                f"a {self.recipe.method.kind} run is not text-conditional: --negative (negative prompts) needs a "
                "text-to-image run (method.kind latent_flow, e.g. genlab generate); drop it"
            )
        if prompts is not None:
            raise GenlabError(f"a {self.recipe.method.kind} run is not text-conditional: drop the prompts")
        return class_labels(n, self.num_classes, label, start=start)

    def sample(self, n: int = 64, **opts: Any) -> Samples:
        """n samples in memory (see `sample_to_file` for any n). Options as `sample_chunks`: label (default: the
        classes cycled evenly), prompts (text-to-image runs), seed, settings, callback, classifier,
        classifier_scale, and SampleSettings fields as overrides (steps=8, sampler="dpmpp_2m", ...)."""
        chunks = list(self.sample_chunks(n, **opts))
        cond = [c.cond for c in chunks]
        joined = None if cond[0] is None else (sum(cond, []) if isinstance(cond[0], list) else torch.cat(cond))
        return Samples(torch.cat([c.x for c in chunks]), chunks[0].nfe, chunks[0].sampler, joined)

    def sample_chunks(
        self,
        n: int,
        *,
        label: int | None = None,
        prompts: list[str] | None = None,
        negative: str | list[str] | None = None,
        seed: int = 0,
        settings: SampleSettings | None = None,
        callback: Callback | None = None,
        classifier: str | Path | Run | None = None,
        classifier_scale: float = 1.0,
        chunk: int = CHUNK,
        adapter: dict | None = None,
        **overrides: Any,
    ) -> Iterator[Samples]:
        """The samples of `sample`, `chunk` at a time (bounded memory), on the CPU; one seeded generator.
        `negative` (text-to-image runs): one negative prompt for all samples or one per sample; classifier-free
        guidance then pushes away from it instead of from the null text (negative "" is plain CFG). `adapter`: extra
        inputs of the method's sample, the same for every sample: an adapter run's (genlab.methods.adapters
        .adapter_options: boxes, image), a video run's first_frame (image-to-video)."""
        if n < 1:
            raise GenlabError(f"--n must be >= 1, got {n}")
        if prompts is not None and len(prompts) != n:
            raise GenlabError(f"give one prompt per sample: {len(prompts)} prompts for n={n}")
        resolved = self.resolve_settings(settings, **overrides)
        if negative is not None:
            self._check_negative(negative, n, resolved, guided_by_classifier=classifier is not None)
        from genlab.methods.latent import Prompts  # a cond with negative prompts (the samples record the positives)

        guide = None if classifier is None else self._classifier(classifier, classifier_scale)
        gen = torch.Generator().manual_seed(seed)
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
            if guide is None:
                cond = self.conditions(size, label=label, prompts=prompts, start=start, negative=negative)
                out = self.method.sample(
                    size, cond=cond, settings=resolved, generator=gen, callback=callback, **(adapter or {})
                )
            else:  # labels over the classifier's classes (the same as the model's when it has classes)
                draw, classes = guide
                cond = class_labels(size, classes, label, start=start)
                out = draw(size, cond, resolved, gen, callback)
            if not torch.isfinite(out.x).all():
                raise GenlabError(
                    f"{self.path}: the samples contain NaN/inf (the model diverged); retrain with a lower train.lr"
                )
            yield Samples(out.x.cpu(), out.nfe, out.sampler, cond.positive if isinstance(cond, Prompts) else cond)

    def _check_negative(self, negative, n: int, settings: SampleSettings, *, guided_by_classifier: bool) -> None:
        if not self.text_conditional:
            self.conditions(n, negative=negative)  # the error for a run that is not text-to-image
        if guided_by_classifier:
            raise GenlabError("--negative acts through classifier-free guidance: drop --classifier")
        if "guidance_scale" not in self.method.sample_settings:  # a text GAN: nothing to guide
            raise GenlabError(
                f"a {self.recipe.method.kind} run has no classifier-free guidance, through which negative prompts "
                "act: drop --negative"
            )
        negs = [negative] if isinstance(negative, str) else list(negative)
        if not isinstance(negative, str) and len(negs) != n:
            raise GenlabError(f"give one negative prompt for all samples or one per sample: {len(negs)} for n={n}")
        if not all(isinstance(p, str) for p in negs):
            raise GenlabError("negative prompts must be strings, e.g. negative='red'")
        if any(negs) and settings.guidance_scale == 1.0:
            raise GenlabError(
                "a negative prompt acts through classifier-free guidance, which guidance_scale 1 turns off: "
                "set --guidance-scale above 1 (e.g. 4)"
            )

    def _classifier(self, classifier: str | Path | Run, scale: float):
        """A sampling function with classifier guidance towards the labels (the model gets them too when it is
        class-conditional; guidance_scale 0 then makes it unconditional)."""
        from genlab.methods.classifier import NoisyClassifier
        from genlab.methods.flow import FlowMethod
        from genlab.samplers import classifier_guided

        clf_run = classifier if isinstance(classifier, Run) else load_run(classifier)
        clf, flow = clf_run.method, self.method
        if not isinstance(clf, NoisyClassifier):
            raise GenlabError(
                f"--classifier {clf_run.path} is a method.kind={clf_run.recipe.method.kind!r} run: pass "
                "a noisy_classifier run (genlab train recipes/digits-classifier.yaml)"
            )
        if not isinstance(flow, FlowMethod) or self.text_conditional:
            raise GenlabError("classifier guidance needs a diffusion/flow run (method.kind: flow)")
        if clf.path.name != flow.path.name:
            raise GenlabError(
                f"the classifier was trained on path {clf.path.name!r} but the run uses "
                f"{flow.path.name!r}: retrain it with --method.path={flow.path.name}"
            )
        if tuple(clf.shape) != tuple(flow.shape):
            raise GenlabError(
                f"the classifier takes data of shape {tuple(clf.shape)} but the run makes "
                f"{tuple(flow.shape)}: retrain it on the run's data (data.size)"
            )
        if flow.num_classes and flow.num_classes != clf.num_classes:
            raise GenlabError(
                f"the classifier has {clf.num_classes} classes but the run has {flow.num_classes}: "
                "train it on the run's dataset"
            )

        def draw(size, cond, settings, gen, callback):
            labels = cond.to(flow.device)

            def wrap(fn):
                return classifier_guided(fn, clf.logits, labels, scale=scale, path=flow.path, target=flow.cfg.target)

            return flow.sample(
                size,
                cond=labels if flow.num_classes else None,
                settings=settings,
                generator=gen,
                callback=callback,
                wrap=wrap,
            )

        return draw, clf.num_classes

    def describe(self, settings: SampleSettings, samples: Samples) -> dict:
        """The settings that made `samples`, as a report records them (only those the method reads)."""
        used = settings.as_dict(self.method.sample_settings)
        return {**used, "sampler": used.get("sampler", samples.sampler), "nfe": samples.nfe}

    def sample_to_file(self, out: str | Path, n: int = 64, *, nrow: int | None = None, **opts: Any) -> tuple[Path, int]:
        """Write n samples to `out` atomically: .png (a grid, at most PNG_LIMIT images) or .npz (`images` uint8
        NHWC or `x` float32, + `labels`), streamed in chunks so that any n that fits on disk works. (path, NFE)."""
        out = samples_path(out, n)
        if out.suffix == ".png":
            samples = self.sample(n, **opts)
            labels = samples.cond if torch.is_tensor(samples.cond) else None
            return write_samples(samples.x, labels, out, nrow=nrow or self.default_nrow(n)), samples.nfe
        chunks = self.sample_chunks(n, **opts)
        first = next(chunks)
        shape, image = tuple(first.x.shape[1:]), first.x.dim() == 4
        need = n * math.prod(shape) * (1 if image else 4)
        folder = out.parent if out.parent.exists() else Path(".")
        free = shutil.disk_usage(folder).free
        if need > 0.95 * free:
            raise GenlabError(f"--n {n} needs {need / 1e9:.3g} GB on disk but {free / 1e9:.3g} GB are free: lower --n")
        write_npz_stream(out, itertools.chain([first], chunks), n=n, shape=shape, image=image)
        return out, first.nfe

    def default_nrow(self, n: int) -> int:
        return min(n, self.num_classes) if self.num_classes else 8

    def evaluate(self, **opts: Any) -> Path:
        """Metrics of this run's samples against its dataset (see genlab.evaluate.evaluate); eval.json's path."""
        from genlab.evaluate import evaluate

        return evaluate(self, **opts)

    def edit(
        self,
        image: torch.Tensor,
        *,
        task: str,
        mask: torch.Tensor | None = None,
        n: int = 4,
        seed: int = 0,
        strength: float = 1.0,
        keep: float = 0.5,
        label: int | None = None,
        prompt: str | None = None,
        settings: SampleSettings | None = None,
        callback: Callback | None = None,
        resample: int = 1,
        jump: int = 5,
        mask_blur: float = 0.0,
        **overrides: Any,
    ) -> Samples:
        """n edits of each image (N, C, H, W), or of one (C, H, W), in [-1, 1], input-major (N·n results). A trained
        image-to-image run does its own task (genlab.edit.translate: superres, colorize, inpaint, outpaint, ...);
        other flow/diffusion runs edit training-free (genlab.edit: sdedit, inpaint, outpaint; resample > 1:
        RePaint). A mask (1 or N, 1, H, W) or (1, H, W) in [0, 1], white = make; `mask_blur` feathers it (training-free
        edits). Deterministic from `seed`; `callback` serves training-free edits."""
        from genlab.edit import edit
        from genlab.edit.translate import trained_task

        if n < 1:
            raise GenlabError(f"--n must be >= 1, got {n}")
        resolved = self.resolve_settings(settings, **overrides)
        images = image if image.dim() == 4 else image[None]
        m = None if mask is None else (mask if mask.dim() == 4 else mask[None])
        if trained_task(self.method, task):
            if mask_blur:
                raise GenlabError(
                    f"a trained {task} run composites its own hard mask: --mask-blur is for training-free edits of a "
                    "flow run; drop it"
                )
            return self._translate(
                images,
                task=task,
                mask=m,
                n=n,
                seed=seed,
                strength=strength,
                keep=keep,
                label=label,
                prompt=prompt,
                settings=resolved,
                resample=resample,
            )
        x = images.repeat_interleave(n, 0)  # (N·n, C, H, W)
        m = m if m is None or len(m) == 1 else m.repeat_interleave(n, 0)
        cond = self.conditions(len(x), label=label, prompts=None if prompt is None else [prompt] * len(x))
        out = edit(
            self.method,
            x,
            task=task,
            mask=m,
            strength=strength,
            keep=keep,
            cond=cond,
            settings=resolved,
            generator=torch.Generator().manual_seed(seed),
            callback=callback,
            resample=resample,
            jump=jump,
            mask_blur=mask_blur,
        )
        return Samples(out.x.cpu(), out.nfe, out.sampler, cond)

    def _translate(self, images, *, task, mask, n, seed, strength, keep, label, prompt, settings, resample) -> Samples:
        """`edit` by the run's trained image-to-image model (the options only training-free edits read refused)."""
        from genlab.edit.translate import translate_images

        for given, flag in (
            (strength != 1.0, "--strength"),
            (resample != 1, "--resample"),
            (label is not None, "--label"),
            (prompt is not None, "--prompt"),
        ):
            if given:
                raise GenlabError(f"a trained {task} run takes no {flag} (it translates the input as trained): drop it")
        out = translate_images(
            self.method,
            images,
            task=task,
            mask=mask,
            n=n,
            keep=keep,
            settings=settings,
            generator=torch.Generator().manual_seed(seed),
        )
        return Samples(out.x.cpu(), out.nfe, out.sampler)

    def require_text(self) -> Run:
        """This run, if it is text-to-image; else a GenlabError that says what to use."""
        if not self.text_conditional:
            raise GenlabError(f"{self.path} is a {self.recipe.method.kind!r} run, not text-to-image: use genlab sample")
        return self

    def generate(self, prompt: str, n: int = 4, **opts: Any) -> Samples:
        """n images for one prompt from a text-to-image run, one draw each (`negative="red"`: a negative prompt, see
        sample); genlab.generate.generate also searches, the best of the recipe's sample.best_of draws."""
        return self.require_text().sample(n, prompts=[prompt] * n, **opts)

    def require_lm(self) -> Run:
        """This run, if it is a language model (ar_lm, mdlm); else a GenlabError that says what to use."""
        if not self.method.makes_text:
            raise GenlabError(
                f"{self.path} is a {self.recipe.method.kind!r} run, not a language model (ar_lm, mdlm): "
                "use genlab sample"
            )
        return self

    def _text_options(
        self, n, steps, block_length, remasking, temperature, top_k, top_p
    ) -> tuple[SampleSettings, dict]:
        """(settings, the mdlm's remasking/block_length) for text sampling, each given option checked."""
        from genlab.methods.lm import REMASKING

        self.require_lm()
        for bad, msg in (
            (n < 1, f"--n must be >= 1, got {n}"),
            (steps is not None and steps < 1, f"--steps must be >= 1, got {steps}"),
            (block_length is not None and block_length < 0, f"--block-length must be >= 0, got {block_length}"),
            (
                remasking is not None and remasking not in REMASKING,
                f"--remasking must be one of {', '.join(REMASKING)}",
            ),
            (temperature is not None and temperature < 0, f"--temperature must be >= 0 (0: greedy), got {temperature}"),
            (top_k is not None and top_k < 0, f"--top-k must be >= 0 (0: all tokens), got {top_k}"),
            (top_p is not None and not 0 < top_p <= 1, f"--top-p must be in (0, 1], got {top_p}"),
        ):
            if bad:
                raise GenlabError(msg)
        extra = {"remasking": remasking, "block_length": block_length}
        if self.recipe.method.kind != "mdlm":
            given = [k for k, v in extra.items() if v is not None]
            if given:
                flag = "--" + given[0].replace("_", "-")
                raise GenlabError(
                    f"{flag} is for masked-diffusion (mdlm) runs; this is a {self.method.kind} run: drop it"
                )
            extra = {}
        settings = self.resolve_settings(steps=steps, temperature=temperature, top_k=top_k, top_p=top_p)
        return settings, extra

    def generate_text(
        self,
        prompt: str | None = None,
        *,
        n: int = 1,
        seed: int = 0,
        steps: int | None = None,
        block_length: int | None = None,
        remasking: str | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
    ) -> list[str]:
        """n texts from a language-model run, each the prompt (if any) and its continuation, up to the run's seq_len
        tokens in all; an <eos> (a document ended) becomes a blank line. None options: the recipe's (sample section,
        then method). steps, block_length, remasking: mdlm only (steps is the number of unmasking passes).
        max_tokens keeps the first max_tokens generated tokens: both kinds still fill the whole window (an mdlm's
        canvas is always seq_len long, as in training), then cut. Deterministic from `seed`."""
        settings, extra = self._text_options(n, steps, block_length, remasking, temperature, top_k, top_p)
        method, seq_len = self.method, self.recipe.model.seq_len
        ids = method.tokenizer.encode(prompt) if prompt else []
        if len(ids) >= seq_len:
            raise GenlabError(
                f"the prompt is {len(ids)} tokens but this run's sequences hold {seq_len}: shorten it to leave room"
            )
        room = seq_len - len(ids)
        if max_tokens is not None and not 1 <= max_tokens <= room:
            raise GenlabError(f"--max-tokens must be in [1, {room}] (seq_len {seq_len} − prompt {len(ids)} tokens)")
        gen = torch.Generator().manual_seed(seed)
        out = method.sample(n, settings=settings, generator=gen, prompt_ids=ids or None, **extra).x.cpu()
        return method.decode_text(out[:, : len(ids) + (max_tokens or room)], eos=EOS_TEXT)

    def infill(
        self,
        text: str,
        *,
        n: int = 1,
        seed: int = 0,
        gap_tokens: int = 8,
        steps: int | None = None,
        remasking: str | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
    ) -> list[str]:
        """n fillings of `text`, in which each GAP ("____") marks a span of gap_tokens tokens to fill, by an mdlm
        run (an ar_lm run cannot infill: it only continues a prefix). The pieces between gaps are tokenized one by
        one; the window is padded to seq_len with masks (the model only saw full windows), which are filled too
        but dropped: the result is the text with its gaps filled."""
        if self.require_lm().recipe.method.kind != "mdlm":
            raise GenlabError(
                f"this {self.method.kind} run cannot infill (it only continues a prompt): use an mdlm run, or "
                "generate-text with the text before the gap as --prompt"
            )
        if GAP not in text:
            raise GenlabError(f"mark the spans to fill with {GAP!r} in the text (e.g. 'The {GAP} sat on the mat')")
        if gap_tokens < 1:
            raise GenlabError(f"--gap-tokens must be >= 1, got {gap_tokens}")
        settings, extra = self._text_options(n, steps, None, remasking, temperature, top_k, top_p)
        method, seq_len = self.method, self.recipe.model.seq_len
        ids: list[int] = []
        for i, piece in enumerate(text.split(GAP)):
            ids += ([method.mask_id] * gap_tokens if i else []) + (method.tokenizer.encode(piece) if piece else [])
        if len(ids) > seq_len:
            raise GenlabError(f"the text with its gaps is {len(ids)} tokens but this run's sequences hold {seq_len}")
        row = torch.tensor(ids + [method.mask_id] * (seq_len - len(ids)))
        x = row[None].expand(n, -1)
        gen = torch.Generator().manual_seed(seed)
        out = method.infill(x, x == method.mask_id, settings=settings, generator=gen, **extra).x.cpu()
        return method.decode_text(out[:, : len(ids)], eos=EOS_TEXT)

    def info(self) -> dict:
        """Recipe, parameter counts (trained and frozen), step and the last metrics row."""
        metrics = self.path / "metrics.jsonl"
        rows = [r for r in metrics.read_text().splitlines() if r.strip()] if metrics.is_file() else []
        return {
            "run": str(self.path),
            "checkpoint": str(ckpt_io.find_checkpoint(self.path)),
            "step": self.step,
            "parameters": sum(p.numel() for p in self.method.parameters() if p.requires_grad),
            # frozen parts (a teacher, an autoencoder, a text encoder run) are stored with the run but not trained
            "frozen_parameters": sum(p.numel() for p in self.method.parameters() if not p.requires_grad),
            "last_metrics": json.loads(rows[-1]) if rows else None,
            "recipe": recipe_to_dict(self.recipe),
        }

    def replace(self, **changes: Any) -> Run:
        return dataclasses.replace(self, **changes)


def format_texts(texts: list[str]) -> str:
    """Texts one after another, each under a '----- sample i -----' line (i from 1)."""
    return "".join(f"----- sample {i} -----\n{t}\n\n" for i, t in enumerate(texts, 1))


def write_texts(texts: list[str], out: str | Path) -> Path:
    """Write `format_texts(texts)` to `out` atomically."""
    return atomic_write_text(out, format_texts(texts))


def samples_path(out: str | Path, n: int | None = None) -> Path:
    """`out` as a Path, if (n) samples can be written there (a .png grid of at most PNG_LIMIT images, or .npz
    arrays); else the error that says so."""
    out = Path(out)
    if out.suffix not in (".png", ".npz"):
        raise GenlabError(f"-o {out}: use a .png (grid) or .npz (arrays) file name")
    if out.suffix == ".png" and n is not None and n > PNG_LIMIT:
        raise GenlabError(f"--n {n}: a .png grid holds at most {PNG_LIMIT} images; write a .npz for more")
    return out


def write_samples(x: torch.Tensor, labels: torch.Tensor | None, out: str | Path, *, nrow: int = 8) -> Path:
    """Write in-memory samples to `out` atomically: .png (grid / scatter) or .npz (images uint8 NHWC or x float32)."""
    from genlab.data.images import tensor_to_uint8
    from genlab.plots import save_samples

    out = samples_path(out)
    with atomic_path(out) as tmp:
        if out.suffix == ".png" and x.dim() == 5:  # videos (n, T, C, H, W): one per row, frames left to right
            save_samples(x.flatten(0, 1), tmp, nrow=x.shape[1])
        elif out.suffix == ".png":
            save_samples(x, tmp, nrow=nrow)
        else:
            arrays = {"images": tensor_to_uint8(x)} if x.dim() == 4 else {"x": x.float().numpy()}
            if labels is not None:
                arrays["labels"] = labels.numpy().astype(np.int64)
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
    return out


def write_npz_stream(out: Path, chunks: Iterator[Samples], *, n: int, shape: tuple, image: bool) -> None:
    """An .npz written chunk by chunk (each member a .npy whose header, fixed by n, is written first), atomically."""
    from genlab.data.images import tensor_to_uint8

    name, dtype = ("images", np.uint8) if image else ("x", np.float32)
    full = (n, *shape[1:], shape[0]) if image else (n, *shape)
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        label_rows = []
        with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_2_0(
                f, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": full}
            )
            for part in chunks:
                arr = tensor_to_uint8(part.x) if image else part.x.float().numpy().astype(np.float32)
                f.write(np.ascontiguousarray(arr).tobytes())
                if torch.is_tensor(part.cond):
                    label_rows.append(part.cond.numpy().astype(np.int64))
        if label_rows:
            with zf.open("labels.npy", "w") as f:
                np.lib.format.write_array(f, np.concatenate(label_rows))


#: recipe sections that may change when a run is resumed (the rest would make its weights mean something else)
RESUMABLE = ("train.",)


def recipe_for(recipe_file: str | None, overrides: list[str], *, resume: str | None = None) -> Recipe:
    """The recipe to train: `recipe_file` with dotted overrides, or the recipe of run folder `resume` with
    overrides of the RESUMABLE sections only."""
    from genlab.config import apply_override, load_recipe

    bad = [o for o in overrides if not o.startswith("--") or "=" not in o]
    if bad:
        raise GenlabError(f"unexpected argument {bad[0]!r}: overrides look like --section.key=value")
    if resume is None:
        if not recipe_file:
            raise GenlabError("give a recipe (e.g. genlab train recipes/digits-flow.yaml) or --resume RUN")
        return load_recipe(recipe_file, overrides)
    if recipe_file:
        raise GenlabError("--resume takes the run folder only: drop RECIPE and --out")
    fixed = [o for o in overrides if not o.lstrip("-").startswith(RESUMABLE)]
    if fixed:
        raise GenlabError(f"{fixed[0]}: only {', '.join(s + '*' for s in RESUMABLE)} keys can change when resuming")
    tree = recipe_to_dict(read_run(resume)[0])
    for o in overrides:
        apply_override(tree, o)
    return recipe_from_dict(tree, "command line")
