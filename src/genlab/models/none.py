"""`model: {kind: none}`: no network, only the data's shape, for closed-form methods such as the GMM.

The trainer fills in_channels / image_size (images) or dim (vectors) and num_classes from the dataset, so a
network-free method learns its data shape the same way every other method does.
"""

from __future__ import annotations

from dataclasses import dataclass

from genlab.constraints import OptCount, OptPositiveInt
from genlab.errors import GenlabError


@dataclass
class NoModelConfig:
    kind: str = "none"
    in_channels: OptPositiveInt = None  # filled from image data
    image_size: OptPositiveInt = None  # filled from image data
    dim: OptPositiveInt = None  # filled from vector data
    num_classes: OptCount = None  # filled from the dataset


def no_model(cfg: NoModelConfig):
    raise GenlabError("model.kind=none has no network: use it only with a network-free method (method.kind=gmm)")
