"""Networks. Each kind has a config dataclass (MODEL_CONFIGS) and an nn.Module class (MODELS).

Every denoiser has `forward(x, t, label=None)`: x (B, ...) noisy input, t (B,) float in [0, 1],
label (B,) int64 where the value `num_classes` is the null (unconditional) class. Output has x's
shape. Config fields left as None (`in_channels`, `image_size`, `dim`, `num_classes`) are filled
from the dataset when a recipe is resolved.
"""

from genlab.models.mlp import MLP, MLPConfig
from genlab.models.unet import UNet, UNetConfig

MODEL_CONFIGS = {"mlp": MLPConfig, "unet": UNetConfig}
MODELS = {"mlp": MLP, "unet": UNet}


def build_model(cfg):
    return MODELS[cfg.kind](cfg)


def data_shape(cfg) -> tuple[int, ...]:
    """Shape of one data point the model consumes: (C, H, W) for images, (D,) for vectors."""
    if cfg.kind == "mlp":
        return (cfg.dim,)
    return (cfg.in_channels, cfg.image_size, cfg.image_size)


__all__ = ["MODEL_CONFIGS", "MODELS", "build_model", "data_shape"]
