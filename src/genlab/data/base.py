"""The in-memory dataset every method trains on.

Images are float32 (N, C, H, W) in [-1, 1]; vector data is float32 (N, D). Labels, when present,
are int64 (N,) in [0, num_classes). Captions (for text-conditional data) are a list of N strings.
Unpaired two-domain data (CycleGAN) holds domain A in `x` and domain B in `y`, both (N, C, H, W).
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

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def is_image(self) -> bool:
        return self.x.dim() == 4

    def batch(self, idx: torch.Tensor) -> dict:
        """The batch dict methods receive: {'x': ..., 'label': ... (if labelled), 'text': [str] (if captioned),
        'y': ... (unpaired data: rows of the second domain)}."""
        out = {"x": self.x[idx]}
        if self.y is not None:
            out["y"] = self.y[idx]
        if self.labels is not None:
            out["label"] = self.labels[idx]
        if self.texts is not None:
            out["text"] = [self.texts[i] for i in idx.tolist()]
        return out
