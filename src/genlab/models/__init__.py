"""Networks. Each kind has a config dataclass (MODEL_CONFIGS) and an nn.Module class (MODELS).

Every denoiser has `forward(x, t, cond=None)`: x (B, ...) noisy input, t (B,) float in [0, 1],
cond (B,) int64 class labels where the value `num_classes` is the null (unconditional) class. Output has x's
shape. Config fields left as None (`in_channels`, `image_size`, `dim`, `num_classes`) are filled
from the dataset when a recipe is resolved.
"""

from genlab.errors import GenlabError
from genlab.models.autoencoder import Autoencoder, AutoencoderConfig
from genlab.models.captioner import CaptionerConfig, CaptionerNet
from genlab.models.clip import CLIP, ClipConfig
from genlab.models.dit import DiT, DiTConfig
from genlab.models.gan import GAN, DCGANConfig, StyleGANConfig
from genlab.models.lm import LMConfig, TextTransformer
from genlab.models.mlp import MLP, MLPConfig
from genlab.models.none import NoModelConfig, no_model
from genlab.models.patchgan import PatchGAN, PatchGANConfig
from genlab.models.pixelcnn import PixelCNN, PixelCNNConfig
from genlab.models.transformer import Transformer, TransformerConfig
from genlab.models.unet import UNet, UNetConfig
from genlab.models.vae import MLPVAE, ConvVAE, ConvVAEConfig, MLPVAEConfig
from genlab.models.verifier import VerifierConfig, VerifierNet
from genlab.models.video_autoencoder import VideoAutoencoder, VideoAutoencoderConfig
from genlab.models.video_dit import VideoDiT, VideoDiTConfig
from genlab.models.vit import ViT, ViTConfig
from genlab.models.vq import VQAutoencoder, VQConfig

MODEL_CONFIGS = {
    "dcgan": DCGANConfig,
    "stylegan": StyleGANConfig,
    "mlp": MLPConfig,
    "unet": UNetConfig,
    "pixelcnn": PixelCNNConfig,
    "transformer": TransformerConfig,
    "vq": VQConfig,
    "conv_vae": ConvVAEConfig,
    "mlp_vae": MLPVAEConfig,
    "none": NoModelConfig,
    "autoencoder": AutoencoderConfig,
    "dit": DiTConfig,
    "clip": ClipConfig,
    "verifier": VerifierConfig,
    "patchgan": PatchGANConfig,
    "lm": LMConfig,
    "vit": ViTConfig,
    "captioner": CaptionerConfig,
    "video_dit": VideoDiTConfig,
    "video_autoencoder": VideoAutoencoderConfig,
}
MODELS = {
    "dcgan": GAN,
    "stylegan": GAN,
    "mlp": MLP,
    "unet": UNet,
    "pixelcnn": PixelCNN,
    "transformer": Transformer,
    "vq": VQAutoencoder,
    "conv_vae": ConvVAE,
    "mlp_vae": MLPVAE,
    "none": no_model,
    "autoencoder": Autoencoder,
    "dit": DiT,
    "clip": CLIP,
    "verifier": VerifierNet,  # built with its text encoder by method.kind verifier, never by build_model
    "patchgan": PatchGAN,
    "lm": TextTransformer,  # built causal or bidirectional by its method (ar_lm, mdlm), never by build_model
    "vit": ViT,  # an image classifier (method.kind classifier)
    "captioner": CaptionerNet,  # built with its image encoder by method.kind captioner, never by build_model
    "video_dit": VideoDiT,  # space-time DiT over videos (B, T, C, H, W)
    "video_autoencoder": VideoAutoencoder,  # causal KL autoencoder of videos, time and space compressed
}


def build_model(cfg):
    if cfg.kind == "lm":
        raise GenlabError("model.kind=lm is the backbone of method.kind ar_lm or mdlm: use one of those methods")
    if cfg.kind == "verifier":
        raise GenlabError("model.kind=verifier is built with its text encoder by method.kind verifier: use it")
    if cfg.kind == "captioner":
        raise GenlabError("model.kind=captioner is built with its image encoder by method.kind captioner: use it")
    return MODELS[cfg.kind](cfg)


def data_shape(cfg) -> tuple[int, ...]:
    """Shape of one data point the model consumes: (C, H, W) for images, (T, C, H, W) for videos, (D,) for vectors."""
    if cfg.kind in ("video_dit", "video_autoencoder"):
        return (cfg.frames, cfg.in_channels, cfg.image_size, cfg.image_size)
    if cfg.kind in ("mlp", "mlp_vae") or (cfg.kind == "none" and cfg.dim is not None):
        return (cfg.dim,)
    return (cfg.in_channels, cfg.image_size, cfg.image_size)


__all__ = ["MODEL_CONFIGS", "MODELS", "build_model", "data_shape"]
