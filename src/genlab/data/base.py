"""The in-memory dataset every method trains on.

Images are float32 (N, C, H, W) in [-1, 1]; videos (N, T, C, H, W); vector data is float32 (N, D). Labels, when present,
are int64 (N,) in [0, num_classes). Captions (for text-conditional data) are a list of N strings.
Unpaired two-domain data (CycleGAN) holds domain A in `x` and domain B in `y`, both (N, C, H, W).
Text data (genlab.data.text) is int64 token ids (N, seq_len) with its `tokenizer` and `bytes_per_token`.
Instruction data (text, `format: instructions`) adds `prompt_length` int64 (N,), the prompt tokens of each row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Dataset:
    x: torch.Tensor
    labels: torch.Tensor | None = None
    num_classes: int = 0
    class_names: list[str] = field(default_factory=list)
    texts: list[str] | None = None
    name: str = "data"
    y: torch.Tensor | None = None  # a second, unpaired image domain with as many items as x (row i is not x's pair)
    tokenizer: dict | None = None  # text data: the serialized tokenizer (genlab.text.bpe.BPETokenizer.to_dict())
    bytes_per_token: float | None = None  # text data: UTF-8 bytes / tokens; bits/byte = nats/token / ln 2 / this
    prompt_length: torch.Tensor | None = None  # instruction data: int64 (N,) prompt tokens at the start of each row

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def is_image(self) -> bool:
        return self.x.dim() == 4

    @property
    def is_video(self) -> bool:
        """Videos (N, T, C, H, W) in [-1, 1] (genlab.data.videos)."""
        return self.x.dim() == 5

    def batch(self, idx: torch.Tensor) -> dict:
        """The batch dict methods receive: {'x': ..., 'label': ... (if labelled), 'text': [str] (if captioned),
        'y': ... (unpaired data: rows of the second domain), 'prompt_length': ... (instruction data)}."""
        out = {"x": self.x[idx]}
        if self.y is not None:
            out["y"] = self.y[idx]
        if self.labels is not None:
            out["label"] = self.labels[idx]
        if self.texts is not None:
            out["text"] = [self.texts[i] for i in idx.tolist()]
        if self.prompt_length is not None:
            out["prompt_length"] = self.prompt_length[idx]
        return out
