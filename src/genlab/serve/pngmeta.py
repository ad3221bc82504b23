"""PNG files that carry the settings that made them, in PNG text chunks.

One chunk `genlab` holds the whole record as JSON (what `read_settings` parses); one readable chunk per field
(`genlab.run`, `genlab.seed`, ...) repeats it for image viewers and `exiftool`. `genlab generate --from-png FILE`
draws the image again from the record (genlab.serve.core.reproduce).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from genlab.atomic import atomic_path
from genlab.errors import GenlabError

KEY = "genlab"
FORMAT = 1
#: the fields every record holds (prompt or label may be None: an unconditional run has neither)
FIELDS = ("run", "step", "prompt", "label", "sampler", "steps", "guidance", "seed")


def write_png(path: str | Path, image: np.ndarray, settings: dict) -> Path:
    """Write uint8 (H, W, C) `image` to `path` atomically, `settings` (JSON-serialisable) in text chunks."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    missing = [k for k in FIELDS if k not in settings]
    if missing:
        raise ValueError(f"PNG settings lack {missing}")
    info = PngInfo()
    info.add_text(KEY, json.dumps({"format": FORMAT, **settings}, sort_keys=True))
    for k, v in settings.items():
        if v is not None:
            info.add_text(f"{KEY}.{k}", str(v))
    arr = np.ascontiguousarray(image)
    im = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG", pnginfo=info)
    return Path(path)


def read_settings(path: str | Path) -> dict:
    """The settings record of a PNG written by `write_png`; a GenlabError if the file is not one."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            text = dict(getattr(im, "text", {}) or {})
    except FileNotFoundError:
        raise GenlabError(f"{path}: file not found; pass a PNG downloaded from genlab serve") from None
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise GenlabError(f"{path}: not a readable PNG; pass a PNG downloaded from genlab serve") from None
    if KEY not in text:
        raise GenlabError(f"{path}: the PNG carries no genlab settings; pass a PNG downloaded from genlab serve")
    try:
        record = json.loads(text[KEY])
    except json.JSONDecodeError:
        raise GenlabError(f"{path}: its genlab settings are not valid JSON; the file was altered") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT or any(k not in record for k in FIELDS):
        raise GenlabError(f"{path}: its genlab settings are not format {FORMAT}; regenerate it with genlab serve")
    return {k: v for k, v in record.items() if k != "format"}


def read_pixels(path: str | Path) -> np.ndarray:
    """The pixels of a PNG as uint8 (H, W, C)."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im)
    return arr[:, :, None] if arr.ndim == 2 else arr
