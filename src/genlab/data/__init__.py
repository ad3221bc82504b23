"""Built-in datasets. Each kind has a config dataclass (DATA_CONFIGS) and a builder (DATASETS).

All datasets are held in memory as tensors (`genlab.data.base.Dataset`): images (N, C, H, W) in
[-1, 1], videos (N, T, C, H, W), vectors (N, D), optional integer labels and captions.
"""

from genlab.data.arrays import ArraysConfig, build_arrays
from genlab.data.base import Dataset
from genlab.data.digits import DigitsConfig, build_digits
from genlab.data.faces import FacesConfig, build_faces
from genlab.data.folder import ImageFolderConfig, build_imagefolder
from genlab.data.photos import PhotosConfig, build_photos
from genlab.data.shapes import ShapesConfig, build_shapes
from genlab.data.text import TextConfig, build_text
from genlab.data.toy2d import Toy2DConfig, build_toy2d
from genlab.data.unpaired import UnpairedConfig, build_unpaired
from genlab.data.video_folder import VideoFolderConfig, build_video_folder
from genlab.data.videos import VideosConfig, build_videos

DATA_CONFIGS = {
    "toy2d": Toy2DConfig,
    "digits": DigitsConfig,
    "imagefolder": ImageFolderConfig,
    "npz": ArraysConfig,
    "shapes": ShapesConfig,
    "photos": PhotosConfig,
    "faces": FacesConfig,
    "unpaired": UnpairedConfig,
    "text": TextConfig,
    "videos": VideosConfig,
    "video_folder": VideoFolderConfig,
}
DATASETS = {
    "toy2d": build_toy2d,
    "digits": build_digits,
    "imagefolder": build_imagefolder,
    "npz": build_arrays,
    "shapes": build_shapes,
    "photos": build_photos,
    "faces": build_faces,
    "unpaired": build_unpaired,
    "text": build_text,
    "videos": build_videos,
    "video_folder": build_video_folder,
}


def build_dataset(cfg, split: str = "train") -> Dataset:
    """Build the dataset a recipe's `data` section describes; split is 'train' or 'test' (shapes: or 'heldout';
    text: or 'validation')."""
    return DATASETS[cfg.kind](cfg, split=split)


__all__ = ["DATA_CONFIGS", "DATASETS", "Dataset", "build_dataset"]
