"""Using a genlab CLIP run (method.kind clip) for zero-shot classification and text→image retrieval.

Zero-shot (Radford et al. 2021): each label l becomes a prompt per template ("{}" alone by default, so the label
is the prompt); its class embedding is w_l = normalise(mean over templates of the unit text embeddings) (a prompt
ensemble, averaged in embedding space and renormalised); p(l | image) = softmax_l(exp(s)·cos(u, w_l)) with the
run's learned logit scale s. Retrieval ranks images by cos(u, v) against the query's unit embedding v.

    from genlab.clip_tasks import zero_shot, retrieve
    probs = zero_shot("runs/shapes-clip", ["a.png", "b.png"], ["a red circle", "a blue square"], templates="builtin")
    top = retrieve("runs/shapes-clip", "my_images/", "a red circle", k=5)   # [(path, cosine), ...]

Image files are decoded by genlab.data.images (grey or RGB as the run's data), centre-cropped to a square and
resized to the run's image size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.errors import GenlabError
from genlab.methods.clip import ClipMethod

#: the prompt ensemble of `templates="builtin"`; "{}" is replaced by the label
BUILTIN_TEMPLATES = ("{}", "a picture of {}", "{} on a black background", "a photo of {}", "an image of {}")
BATCH = 256


def clip_method(run) -> ClipMethod:
    """The CLIP method of a run folder, a loaded `Run`, or a `ClipMethod` (in eval mode)."""
    if isinstance(run, ClipMethod):
        return run.eval()
    from genlab.runs import method_of_kind

    return method_of_kind(run, "clip", "not a CLIP: name a run of recipes/shapes-clip.yaml or recipes/digits-clip.yaml")


def parse_labels(labels: str | Sequence[str]) -> list[str]:
    """Labels from a comma-separated string or a list: stripped, non-empty, each once."""
    items = labels.split(",") if isinstance(labels, str) else list(labels)
    items = [str(s).strip() for s in items]
    if not items or any(not s for s in items):
        raise GenlabError('--labels needs non-empty, comma-separated labels, e.g. "a red circle,a blue square"')
    if len(set(items)) != len(items):
        raise GenlabError("--labels lists a label twice: give each label once")
    return items


def parse_templates(templates: str | Sequence[str] | None) -> list[str]:
    """None → ["{}"] (the label alone); "builtin" → BUILTIN_TEMPLATES; otherwise ";"-separated templates or a list,
    each with exactly one "{}"."""
    if templates is None:
        return ["{}"]
    if isinstance(templates, str):
        items = list(BUILTIN_TEMPLATES) if templates.strip() == "builtin" else templates.split(";")
    else:
        items = list(templates)
    items = [t.strip() for t in items]
    if not items or any(t.count("{}") != 1 for t in items):
        raise GenlabError(
            '--templates: use "builtin" or ";"-separated templates with one {} each, e.g. "a picture of {}"'
        )
    return items


@torch.no_grad()
def class_embeddings(clip: ClipMethod, labels: Sequence[str], templates: Sequence[str]) -> Tensor:
    """(L, D) unit class embeddings: the mean of each label's unit prompt embeddings, renormalised."""
    prompts = [t.replace("{}", label) for label in labels for t in templates]
    v = torch.cat([clip.embed_texts(prompts[i : i + BATCH]) for i in range(0, len(prompts), BATCH)])  # (L·T, D)
    return F.normalize(v.view(len(labels), len(templates), -1).mean(1), dim=-1)


@torch.no_grad()
def image_embeddings(clip: ClipMethod, images: Tensor) -> Tensor:
    """(N, D) unit image embeddings of images (N, C, H, W) in [-1, 1], in chunks on the CLIP's device."""
    dtype = next(clip.parameters()).dtype
    return torch.cat([clip.embed_images(c.to(clip.device, dtype)) for c in images.split(BATCH)])


def image_files(folder: str | Path) -> list[Path]:
    """The image files directly in `folder`, sorted by name."""
    from genlab.data.images import IMAGE_SUFFIXES

    folder = Path(folder)
    if not folder.is_dir():
        raise GenlabError(f"{folder} is not a folder: --retrieve takes a folder of images")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise GenlabError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}): point --retrieve at image files")
    return files


def read_images(paths: Sequence[str | Path], clip: ClipMethod) -> Tensor:
    """Image files as (N, C, S, S) in [-1, 1] for the CLIP: its channels, centre-cropped and resized to its size."""
    from genlab.data.images import load_images

    return load_images(paths, channels=clip.model.cfg.in_channels, size=clip.model.cfg.image_size)


def _images(clip: ClipMethod, images) -> tuple[Tensor, list[str]]:
    """(images tensor, names) from a tensor (N, C, H, W), a folder, or a list of image files."""
    if isinstance(images, Tensor):
        cfg = clip.model.cfg
        if images.dim() != 4 or tuple(images.shape[1:]) != (cfg.in_channels, cfg.image_size, cfg.image_size):
            raise GenlabError(
                f"images must be (N, {cfg.in_channels}, {cfg.image_size}, {cfg.image_size}) in [-1, 1] for this CLIP, "
                f"got {tuple(images.shape)}"
            )
        return images, [str(i) for i in range(len(images))]
    if isinstance(images, (str, Path)):
        if not Path(images).is_dir():
            images = [images]
        else:
            files = image_files(images)
            return read_images(files, clip), [str(p) for p in files]
    paths = list(images)
    return read_images(paths, clip), [str(p) for p in paths]


@torch.no_grad()
def zero_shot(run, images, labels: str | Sequence[str], templates: str | Sequence[str] | None = None) -> Tensor:
    """Probabilities (N, L) of the labels for each image (rows sum to 1), on the CPU.

    `run`: a CLIP run folder, Run or ClipMethod; `images`: a tensor (N, C, H, W) in [-1, 1], image files or a
    folder; `templates`: None (the label is the prompt), "builtin" (a prompt ensemble) or a list with "{}"."""
    clip = clip_method(run)
    x, _ = _images(clip, images)
    w = class_embeddings(clip, parse_labels(labels), parse_templates(templates))
    return clip.logits(image_embeddings(clip, x), w).float().softmax(-1).cpu()


@torch.no_grad()
def retrieve(run, images, query: str, k: int = 5) -> list[tuple[str, float]]:
    """The k images most similar to the text `query`: [(name, cosine)], best first. Names are the file paths (a
    folder or a list of files) or the row indices (a tensor)."""
    if not isinstance(query, str) or not query.strip():
        raise GenlabError('--query needs some text, e.g. --query "a red circle"')
    if k < 1:
        raise GenlabError(f"-k must be >= 1, got {k}")
    clip = clip_method(run)
    x, names = _images(clip, images)
    scores = (image_embeddings(clip, x) @ clip.embed_texts([query.strip()])[0]).float().cpu()  # (N,)
    top = scores.topk(min(k, len(scores)))
    return [(names[i], float(s)) for s, i in zip(top.values.tolist(), top.indices.tolist())]


def classify_table(names: Sequence[str], probs: Tensor, labels: Sequence[str], top: int = 3) -> str:
    """A plain-text table: one row per image with its `top` labels and their probabilities."""
    top = max(1, min(top, len(labels)))
    width = max(5, *(len(n) for n in names))
    lines = [f"{'image':<{width}}  top labels (probability)"]
    for name, p in zip(names, probs):
        best = p.topk(top)
        cells = [f"{labels[i]} {v:.3f}" for v, i in zip(best.values.tolist(), best.indices.tolist())]
        lines.append(f"{name:<{width}}  {' | '.join(cells)}")
    return "\n".join(lines)


def retrieve_table(hits: Sequence[tuple[str, float]], query: str) -> str:
    """A plain-text table of retrieved images: rank, cosine, file."""
    lines = [f"top {len(hits)} images for {query!r}", f"{'rank':>4}  {'cosine':>7}  file"]
    return "\n".join(lines + [f"{r:>4}  {s:>7.4f}  {n}" for r, (n, s) in enumerate(hits, 1)])
