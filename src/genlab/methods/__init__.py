"""Methods: one module per family. METHOD_CONFIGS / METHODS are plain registries keyed by `kind`."""

from genlab.methods.adapters import GligenConfig, GligenMethod, IPAdapterConfig, IPAdapterMethod
from genlab.methods.autoencoder import AutoencoderMethod, AutoencoderMethodConfig
from genlab.methods.base import Method
from genlab.methods.captioner import CaptionerMethod, CaptionerMethodConfig
from genlab.methods.classifier import Classifier, ClassifierConfig, NoisyClassifier, NoisyClassifierConfig
from genlab.methods.clip import ClipMethod, ClipMethodConfig
from genlab.methods.consistency import ConsistencyConfig, ConsistencyMethod
from genlab.methods.cyclegan import CycleGANConfig, CycleGANMethod
from genlab.methods.flow import FlowConfig, FlowMethod
from genlab.methods.gan import GANConfig, GANMethod
from genlab.methods.gmm import GMMConfig, GMMMethod
from genlab.methods.guidance_distill import GuidanceDistillConfig, GuidanceDistillMethod
from genlab.methods.image2image import PairedFlowConfig, PairedFlowMethod, RegressionConfig, RegressionMethod
from genlab.methods.latent import LatentFlowConfig, LatentFlowMethod
from genlab.methods.lm import ARLMConfig, ARLMMethod, MDLMConfig, MDLMMethod
from genlab.methods.meanflow import MeanFlowConfig, MeanFlowMethod
from genlab.methods.pix2pix import Pix2PixConfig, Pix2PixMethod
from genlab.methods.pixelcnn import PixelCNNMethod, PixelCNNMethodConfig
from genlab.methods.progressive import ProgressiveConfig, ProgressiveMethod
from genlab.methods.reflow import ReflowConfig, ReflowMethod
from genlab.methods.text_gan import TextGANConfig, TextGANMethod
from genlab.methods.token_prior import TextTokenPriorConfig, TextTokenPriorMethod, TokenPriorConfig, TokenPriorMethod
from genlab.methods.vae import VAEConfig, VAEMethod
from genlab.methods.verifier import VerifierMethod, VerifierMethodConfig
from genlab.methods.video import VideoFlowConfig, VideoFlowMethod
from genlab.methods.video_autoencoder import VideoAutoencoderMethod, VideoAutoencoderMethodConfig
from genlab.methods.vqvae import VQVAEConfig, VQVAEMethod

METHOD_CONFIGS = {
    "gan": GANConfig,
    "text_gan": TextGANConfig,  # text-conditional GAN (conditioning augmentation, matching-aware D)
    "flow": FlowConfig,
    "noisy_classifier": NoisyClassifierConfig,
    "classifier": ClassifierConfig,  # a plain image classifier (ViT or U-Net encoder)
    "pixelcnn": PixelCNNMethodConfig,
    "vqvae": VQVAEConfig,
    "token_prior": TokenPriorConfig,
    "text_token_prior": TextTokenPriorConfig,  # Parti-style text-to-image over the tokenizer's codes
    "vae": VAEConfig,
    "gmm": GMMConfig,
    "autoencoder": AutoencoderMethodConfig,
    "latent_flow": LatentFlowConfig,
    "clip": ClipMethodConfig,
    "verifier": VerifierMethodConfig,  # image x caption -> is it true? (best-of-K text-to-image, genlab.rerank)
    # few-step students of a frozen teacher run (genlab distill)
    "reflow": ReflowConfig,
    "progressive": ProgressiveConfig,
    "consistency": ConsistencyConfig,
    "guidance_distill": GuidanceDistillConfig,
    "meanflow": MeanFlowConfig,
    "paired_flow": PairedFlowConfig,  # trained image-to-image (SR3 / Palette) and its regression baseline
    "regression": RegressionConfig,
    "pix2pix": Pix2PixConfig,  # paired and unpaired GAN translation (pix2pix, CycleGAN)
    "cyclegan": CycleGANConfig,
    "ar_lm": ARLMConfig,  # language models on text data: autoregressive and masked diffusion (one backbone)
    "mdlm": MDLMConfig,
    "captioner": CaptionerMethodConfig,  # LLaVA-style image captioner over a frozen CLIP image tower
    "gligen": GligenConfig,  # adapters trained on a frozen text-to-image run: grounded boxes, image prompts
    "ip_adapter": IPAdapterConfig,
    "video_flow": VideoFlowConfig,  # text-to-video: latent_flow over per-frame latents with a video DiT
    "video_autoencoder": VideoAutoencoderMethodConfig,  # causal video KL autoencoder (time and space compressed)
}
METHODS = {
    "gan": GANMethod,
    "text_gan": TextGANMethod,
    "flow": FlowMethod,
    "noisy_classifier": NoisyClassifier,
    "classifier": Classifier,
    "pixelcnn": PixelCNNMethod,
    "vqvae": VQVAEMethod,
    "token_prior": TokenPriorMethod,
    "text_token_prior": TextTokenPriorMethod,
    "vae": VAEMethod,
    "gmm": GMMMethod,
    "autoencoder": AutoencoderMethod,
    "latent_flow": LatentFlowMethod,
    "clip": ClipMethod,
    "verifier": VerifierMethod,
    "reflow": ReflowMethod,
    "progressive": ProgressiveMethod,
    "consistency": ConsistencyMethod,
    "guidance_distill": GuidanceDistillMethod,
    "meanflow": MeanFlowMethod,
    "paired_flow": PairedFlowMethod,
    "regression": RegressionMethod,
    "pix2pix": Pix2PixMethod,
    "cyclegan": CycleGANMethod,
    "ar_lm": ARLMMethod,
    "mdlm": MDLMMethod,
    "captioner": CaptionerMethod,
    "gligen": GligenMethod,
    "ip_adapter": IPAdapterMethod,
    "video_flow": VideoFlowMethod,
    "video_autoencoder": VideoAutoencoderMethod,
}

# methods are built by genlab.runs.build_method, which also hands them their frozen parts

__all__ = ["METHOD_CONFIGS", "METHODS", "Method"]
