"""The model side of `genlab serve`, without Gradio: which runs there are, loaded runs cached, one image drawn
with its settings record, the input limits, and `reproduce` (`genlab generate --from-png`).

Every image of a request is drawn on its own, image i from seed + i with n = 1, so that the seed recorded in its
PNG regenerates exactly that image (`reproduce`). All drawing goes through the runs API (Run.sample_chunks through
Run.sample / genlab.generate.generate; edits through genlab.edit.translate.edit_files).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.errors import GenlabError
from genlab.generate import SHIPPED, SHIPPED_T2I


def shipped_label(name: str) -> str:
    """How the app lists the checkpoint shipped as genlab/assets/NAME."""
    return f"{name} (shipped)"


# a settings record names a checkpoint shipped with genlab (its folder differs per install) "shipped:NAME"; records
# written before a second one shipped say "shipped", which was shapes-t2i
LEGACY_RECORDS = {"shipped": "shipped:shapes-t2i"}
SHIPPED_LABEL = shipped_label(SHIPPED)  # the default run, listed first and selected
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")
NOT_IMAGES = {"text": "a language model", "toy2d": "a 2-D point model", "videos": "a text-to-video model"}


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; beyond these the page shows a message."""

    prompt_chars: int = 200
    n: int = 8
    steps: int = 64
    guidance: float = 20.0
    image_side: int = 1024  # uploads: longest side in pixels
    image_bytes: int = 8 * 2**20  # uploads: file size
    compare_runs: int = 6
    best_of: int = 4  # text-to-image: each image the best of at most this many draws (genlab.rerank)
    queue: int = 8  # jobs queued or running at once, all users together
    workers: int = 1  # jobs running at once


def check_request(
    limits: Limits, *, prompt: str | None, n: int, steps: int | None, guidance: float | None, seed, best_of: int = 1
) -> None:
    """A GenlabError naming the first request field out of limits."""
    if prompt is not None and len(prompt) > limits.prompt_chars:
        raise GenlabError(f"the prompt has {len(prompt)} characters; shorten it to at most {limits.prompt_chars}")
    if not isinstance(n, int) or not 1 <= n <= limits.n:
        raise GenlabError(f"images per request must be between 1 and {limits.n}, got {n}")
    if steps is not None and (not isinstance(steps, int) or not 1 <= steps <= limits.steps):
        raise GenlabError(f"steps must be between 1 and {limits.steps}, got {steps}")
    if guidance is not None and not 0 <= guidance <= limits.guidance:
        raise GenlabError(f"guidance must be between 0 and {limits.guidance:g}, got {guidance}")
    if not isinstance(seed, int) or not 0 <= seed < 2**31 - limits.n:
        raise GenlabError(f"the seed must be an integer between 0 and {2**31 - limits.n - 1}, got {seed}")
    if not isinstance(best_of, int) or not 1 <= best_of <= limits.best_of:
        raise GenlabError(f"best of must be between 1 and {limits.best_of} draws per image, got {best_of}")


def check_upload(limits: Limits, path: str | Path, what: str = "the image") -> None:
    """An uploaded image file within the size and format limits, else a GenlabError."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    size = path.stat().st_size
    if size > limits.image_bytes:
        raise GenlabError(f"{what} is {size / 2**20:.1f} MB; upload at most {limits.image_bytes / 2**20:g} MB")
    try:
        with Image.open(path) as im:
            fmt, (w, h) = im.format, im.size
    except (UnidentifiedImageError, OSError):
        raise GenlabError(f"{what} is not a readable image: upload a PNG or JPEG") from None
    if fmt not in IMAGE_FORMATS:
        raise GenlabError(f"{what} is a {fmt} file: upload one of {', '.join(IMAGE_FORMATS)}")
    if max(w, h) > limits.image_side:
        raise GenlabError(f"{what} is {w}×{h}; upload one at most {limits.image_side} pixels on its longest side")


def default_sampling():
    """The default run's sample settings (its recipe's), where the steps and guidance sliders start."""
    from genlab.runs import read_run, shipped_asset

    return read_run(shipped_asset(SHIPPED))[0].sample


def start_best_of(folder: str | Path, limits: Limits) -> int:
    """Where the best-of slider starts for the run in `folder`: its recipe's `sample.best_of` (the shipped run: 4;
    runs whose recipe does not set it, class-conditional ones among them: 1), within the limit."""
    from genlab.runs import read_run

    return max(1, min(read_run(folder)[0].sample.best_of, limits.best_of))


def find_runs(runs_dir: str | Path | None, *, depth: int = 3) -> dict[str, Path]:
    """{label: folder}: the shipped text-to-image runs first (the default first, "NAME (shipped)"), then every run
    folder under `runs_dir` (at most `depth` levels down), labelled by its path relative to runs_dir."""
    from genlab.runs import shipped_asset

    found = {shipped_label(name): shipped_asset(name) for name in SHIPPED_T2I}
    root = Path(runs_dir) if runs_dir is not None else None
    if root is None or not root.is_dir():
        return found
    level = [root]
    for _ in range(depth):
        nxt = []
        for folder in level:
            for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
                if is_run(sub):
                    found[sub.relative_to(root).as_posix()] = sub
                elif sub.name not in ("checkpoint", "checkpoint.old", "eval", "samples"):
                    nxt.append(sub)
        level = nxt
    return found


def is_run(folder: Path) -> bool:
    return any(
        (c / "config.json").is_file() and (c / "ema.safetensors").is_file() for c in (folder, folder / "checkpoint")
    )


def find_compares(runs_dir: str | Path | None, *, depth: int = 3) -> dict[str, Path]:
    """{label: folder} of the `genlab compare` folders (holding compare.md) under `runs_dir`."""
    root = Path(runs_dir) if runs_dir is not None else None
    if root is None or not root.is_dir():
        return {}
    return {
        p.parent.relative_to(root).as_posix() or ".": p.parent
        for p in sorted(root.glob("compare.md"))
        + [q for k in range(1, depth + 1) for q in sorted(root.glob("/".join(["*"] * k) + "/compare.md"))]
    }


class RunCache:
    """Loaded runs by folder, the `size` most recently used kept (loading reads weights and builds encoders)."""

    def __init__(self, size: int = 4, device: str | None = None):
        self.size, self.device = size, device
        self._runs: OrderedDict[Path, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, folder: str | Path):
        from genlab.runs import load_run

        key = Path(folder).resolve()
        with self._lock:
            if key in self._runs:
                self._runs.move_to_end(key)
                return self._runs[key]
            run = load_run(key, device=self.device)
            self._runs[key] = run
            while len(self._runs) > self.size:
                self._runs.popitem(last=False)
            return run


def record_name(folder: Path) -> str:
    """How a settings record names a run folder: "shipped:NAME" for a checkpoint shipped in the package, else its
    absolute path."""
    from genlab.checkpoint import SHIPPED_PREFIX, is_shipped

    folder = Path(folder).resolve()
    return SHIPPED_PREFIX + folder.name if is_shipped(folder) else str(folder)


def recorded_folder(name: str) -> Path:
    """The run folder a settings record's "run" names (the inverse of record_name; "shipped" is shapes-t2i)."""
    from genlab.checkpoint import run_folder

    return run_folder(LEGACY_RECORDS.get(name, name))


def check_family(run) -> None:
    kind = run.recipe.data.kind
    if kind in NOT_IMAGES:
        raise GenlabError(f"{run.path} is {NOT_IMAGES[kind]}: the web app draws images; use the genlab CLI for it")


def used_settings(run, *, sampler: str | None, steps: int | None, guidance: float | None) -> dict:
    """The sampler settings the run reads, from the request (None: the run's recipe value), resolved."""
    given = {"sampler": sampler, "steps": steps, "guidance_scale": guidance}
    reads = run.method.sample_settings
    resolved = run.resolve_settings(**{k: v for k, v in given.items() if k in reads})
    return {k: v for k, v in resolved.as_dict(reads).items()}


def draw_one(
    run,
    folder: Path,
    *,
    prompt: str | None,
    label: int | None,
    seed: int,
    sampler: str | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    best_of: int = 1,
    callback=None,
) -> tuple[np.ndarray, dict, int]:
    """One image (uint8 H, W, C) from `run` with its settings record and its NFE. Text-to-image runs take the
    prompt (the label is ignored) and `best_of` (the best of K draws as the model judges them, genlab.rerank; 1:
    plain generation); others the label (None: unconditional or the class-0 default of n=1)."""
    from genlab.data.images import tensor_to_uint8
    from genlab.generate import check_prompt
    from genlab.rerank import best_of as search

    check_family(run)
    settings = used_settings(run, sampler=sampler, steps=steps, guidance=guidance)
    if run.text_conditional:
        check_prompt(prompt or "")
        label = None
        out = search(run, [prompt], k=best_of, seed=seed, callback=callback, **settings)
    else:
        if best_of != 1:
            raise GenlabError(f"{run.path} is not a text-to-image run: best of K judges prompts; set it to 1")
        prompt = None
        if run.num_classes and label is None:
            label = 0
        if not run.num_classes:
            label = None
        out = run.sample(1, label=label, seed=seed, callback=callback, **settings)
    if out.x.dim() != 4:
        raise GenlabError(f"{run.path} makes {tuple(out.x.shape[1:])}-shaped samples, not images: use genlab sample")
    record = {
        "run": record_name(folder),
        "step": run.step,
        "prompt": prompt,
        "label": label,
        "sampler": settings.get("sampler", out.sampler),
        "steps": settings.get("steps"),
        "guidance": settings.get("guidance_scale"),
        "seed": seed,
        "settings": settings,
        **({"best_of": best_of} if run.text_conditional else {}),
    }
    return tensor_to_uint8(out.x)[0], record, out.nfe


def preview(run, x_hat: torch.Tensor | None) -> np.ndarray | None:
    """The sampler's current estimate of the data (the first sample) as uint8 (H, W, C); None if it has none."""
    from genlab.data.images import tensor_to_uint8

    if x_hat is None or x_hat.dim() != 4:
        return None
    with torch.no_grad():
        x = run.method.finish(x_hat[:1]) if hasattr(run.method, "finish") else x_hat[:1]
    return tensor_to_uint8(x.clamp(-1, 1))[0] if x.dim() == 4 else None


def reproduce(png: str | Path, *, run: str | Path | None = None) -> tuple[np.ndarray, dict]:
    """The image a PNG from `genlab serve` records, drawn again from its settings (`run` overrides the recorded
    folder); a GenlabError if the run is gone or its weights changed."""
    from genlab.runs import load_run
    from genlab.serve.pngmeta import read_settings

    record = read_settings(png)
    folder = Path(run) if run is not None else recorded_folder(record["run"])
    if not folder.exists():
        raise GenlabError(f"{png} was made by run {record['run']}, which is not here: pass --run FOLDER")
    loaded = load_run(folder)
    if loaded.step != record["step"]:
        raise GenlabError(
            f"{png} was made at step {record['step']} but {folder} is at step {loaded.step}: the weights differ, "
            "so the image cannot be reproduced exactly"
        )
    settings = record.get("settings") or {}
    image, again, _ = draw_one(
        loaded,
        folder,
        prompt=record["prompt"],
        label=record["label"],
        seed=int(record["seed"]),
        sampler=settings.get("sampler", record["sampler"]),
        steps=settings.get("steps", record["steps"]),
        guidance=settings.get("guidance_scale", record["guidance"]),
        best_of=int(record.get("best_of", 1)),  # PNGs written before best of K record none: plain generation
    )
    again["run"] = record["run"] if run is None else again["run"]
    return image, again


def upscale(image: np.ndarray, min_side: int = 128) -> np.ndarray:
    """A small image enlarged by an integer nearest-neighbour factor for display (PNG downloads stay 1:1)."""
    k = max(1, -(-min_side // max(image.shape[:2])))
    return image.repeat(k, axis=0).repeat(k, axis=1)
