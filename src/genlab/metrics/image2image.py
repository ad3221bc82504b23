"""Held-out metrics of an image-to-image method (Palette's protocol, Saharia et al. 2022, in spirit).

For n held-out images y (seeded subset), the method's own degradation makes the input s = degrade(y); k outputs
ŷ_1..k = translate(s) are drawn per input from one seeded generator. Reported:
- psnr_db / ssim: of the first output against the truth (mean over inputs);
- diversity: mean over inputs of the mean pairwise RMS distance between the k outputs (0 for a deterministic
  method; data range 2, so 2 is the largest possible);
- nfe: network evaluations per output;
- fd: Fréchet distance between the first outputs and the truths in a feature network (photos: genlab's photo
  patch network below; digits: the shipped digits network; other images: 8×8 pixels); fd_floor: FD between the
  truths and as many other held-out images, what a perfect translator scores at this n (None if too few).
  Photo patches larger than a fixed-size network's input s (64-pixel patches, s = 32) are not resized: each of
  their (S/s)² non-overlapping s×s tiles is one sample of the FD (outputs, truths and floor alike). `photos` views
  every photograph at shorter side `side` = 256 and cuts a size-S patch from round(S·min(H, W)/256) of its pixels,
  so a patch pixel is one view pixel at every S: a 64-patch's tiles are at the scale of the 32-pixel patches the
  network was trained on, and keep the detail that resizing to 32 would average away;
- seam (inpaint / outpaint): gradient energy across the mask boundary relative to the truth's at the same pixel
  pairs, Σ‖ŷ_p − ŷ_q‖² / Σ‖y_p − y_q‖² over neighbouring pixels p, q on opposite sides of the mask (m > ½) and over
  all k outputs: 1 = as smooth as the real image there, > 1 a visible seam, < 1 smoother than real (blur);
  interior: the same ratio over neighbours both made (the made texture's roughness; grain raises both, a seam
  only `seam`);
- colorfulness (colorize): Hasler & Süsstrunk's (2003) M = σ_rgyb + 0.3·μ_rgyb on 8-bit RGB (rg = R − G,
  yb = (R + G)/2 − B), mean over first outputs, beside the truths' (a regression to the mean desaturates).

Photo feature network: photo patches carry no labels, so the network is a SmallCNN (genlab.metrics.features)
trained on a free proxy label, (which of the seven training photographs a 32×32 patch was cut from, how it was
rendered: as is, blurred by bicubic 2× or 4× down and up, or with Gaussian noise), 21 classes. Colour alone nearly
names the photograph, so half of each batch also has its colours scrambled (channels permuted, saturation
rescaled): the features must carry colour, texture and sharpness, which is what FD should compare. The held-out
photographs (chelsea, rocket, flower) are none of its classes, as ImageNet classes are not CIFAR's for
Inception-FD. It ships as assets/features-photos.safetensors (benchmarks/photo_features.py retrains it; the JSON
sidecar holds its held-out accuracies on fresh patch positions of the training photographs).
"""

from __future__ import annotations

import itertools
from importlib.resources import files
from pathlib import Path

import torch
from torch import Tensor

from genlab.data.base import Dataset
from genlab.errors import GenlabError
from genlab.metrics.features import FeatureNet, SmallCNN, extract, load_feature_net, resolve_feature_net
from genlab.metrics.fid import frechet_distance
from genlab.metrics.image import psnr, ssim
from genlab.settings import DEFAULT_SETTINGS, SampleSettings

PHOTOS_ASSET = "assets/features-photos.safetensors"


@torch.no_grad()
def translate_heldout(
    method, data, *, n: int, k: int, seed: int, batch: int = 64, settings: SampleSettings = DEFAULT_SETTINGS
) -> dict:
    """{'truth': (n, C, H, W), 'source': ..., 'mask': ... or None, 'outputs': (k, n, C, H, W), 'nfe': int, 'index':
    (n,) the truths' indices in `data`} on a seeded n-subset of `data` (all on the CPU); `settings` go to every
    `translate` call."""
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    truth = data.x[pick]
    gen = torch.Generator(device="cpu").manual_seed(seed)
    inputs = [method.degrade(c.to(method.device), generator=gen) for c in truth.split(batch)]
    source = torch.cat([i["source"].cpu() for i in inputs])
    mask = torch.cat([i["mask"].cpu() for i in inputs]) if "mask" in inputs[0] else None
    outputs, nfe = [], 0
    for _ in range(k):
        parts = []
        for part in inputs:
            out = method.translate(part["source"], mask=part.get("mask"), settings=settings, generator=gen)
            parts.append(out.x.cpu())
            nfe = out.nfe
        outputs.append(torch.cat(parts))
    return {"truth": truth, "source": source, "mask": mask, "outputs": torch.stack(outputs), "nfe": nfe, "index": pick}


def diversity(outputs: torch.Tensor) -> float:
    """Mean pairwise RMS distance between the k outputs (k, n, ...) of each input, averaged over inputs."""
    k = outputs.shape[0]
    if k < 2:
        return 0.0
    dists = [(outputs[i] - outputs[j]).pow(2).flatten(1).mean(1).sqrt() for i, j in itertools.combinations(range(k), 2)]
    return float(torch.stack(dists).mean())


def translation_metrics(
    method,
    data,
    *,
    seed: int = 0,
    n: int = 256,
    k: int = 4,
    settings: SampleSettings = DEFAULT_SETTINGS,
    feature_net: FeatureNet | None = None,
) -> dict:
    """PSNR / SSIM of the first output, diversity of k outputs per input, NFE, FD (+ floor), and the seam (mask
    tasks) or colourfulness (colorize) (see the module docstring). `feature_net` None: `default_feature_net`."""
    res = translate_heldout(method, data, n=min(n, len(data)), k=k, seed=seed, settings=settings)
    return score_translations(res, data, task=method.image_task, seed=seed, feature_net=feature_net)


def score_translations(res: dict, data, *, task: str, seed: int = 0, feature_net: FeatureNet | None = None) -> dict:
    """The metrics of `translation_metrics` from `translate_heldout`'s result `res` (`seed` must be the one that
    picked its truths, so that the FD floor uses other held-out images)."""
    outputs, truth = res["outputs"], res["truth"]
    first = outputs[0]
    metrics = {
        "task": task,
        "psnr_db": float(psnr(first, truth).mean()),
        "ssim": float(ssim(first, truth).mean()) if truth.shape[-1] >= 11 else None,
        "diversity": diversity(outputs),
        "outputs_per_input": len(outputs),
        "nfe": res["nfe"],
        "n": len(truth),
    }
    metrics.update(fd_metrics(first, truth, data, seed=seed, feature_net=feature_net))
    if res["mask"] is not None:
        metrics["seam"] = seam(outputs, truth, res["mask"])
        metrics["interior"] = interior(outputs, truth, res["mask"])
    if task == "colorize":
        metrics["colorfulness"] = float(colorfulness(first).mean())
        metrics["colorfulness_truth"] = float(colorfulness(truth).mean())
    return metrics


# -- FD in a feature network


def photo_feature_net() -> FeatureNet:
    """The shipped photo-patch network (32×32 RGB inputs; `fd_metrics` cuts larger photo patches into 32×32 tiles,
    `extract` resizes other inputs to 32×32)."""
    path = Path(str(files("genlab").joinpath(PHOTOS_ASSET)))
    if not path.is_file():
        raise GenlabError(f"{path} is missing: run benchmarks/photo_features.py to train the photo feature net")
    return load_feature_net(path)


def default_feature_net(data: Dataset) -> FeatureNet | None:
    """The photo network for RGB photo patches, else what `genlab eval` uses for the data (digits net, pixels)."""
    if data.name == "photos" and data.x.shape[1] == 3:
        return photo_feature_net()
    return resolve_feature_net(None, data)


def tile_side(net: FeatureNet, x: Tensor, data: Dataset) -> int | None:
    """The tile side s when `data` is photo patches x (N, C, S, S) larger than the net's fixed input s with S a
    multiple of s (the photo views' pixel scale makes the tiles look like the net's training patches; see the module
    docstring), else None (`extract` resizes to the net's size as before)."""
    s = net.image_size
    if data.name != "photos" or s is None or x.shape[-1] <= s or x.shape[-1] % s or x.shape[-2] != x.shape[-1]:
        return None
    return s


def tiles(x: Tensor, side: int) -> Tensor:
    """The non-overlapping side×side tiles of images x (N, C, H, W), H and W multiples of `side`:
    (N·(H/side)·(W/side), C, side, side), image by image, each image's tiles in row-major order."""
    n, c, h, w = x.shape
    if h % side or w % side:
        raise GenlabError(f"cannot cut {h}x{w} images into {side}x{side} tiles: the sides must be multiples of {side}")
    grid = x.reshape(n, c, h // side, side, w // side, side)  # (N, C, rows, side, cols, side)
    return grid.permute(0, 2, 4, 1, 3, 5).reshape(-1, c, side, side)


def fd_features(net: FeatureNet, x: Tensor, *, tile: int | None) -> Tensor:
    """Features (M, F) float64 for FD of images x (N, C, S, S): of each image whole (M = N) when `tile` is None, else
    of its tile×tile tiles, each a sample (M = N·(S/tile)²)."""
    return extract(net, x if tile is None else tiles(x, tile))[0]


def fd_metrics(outputs: Tensor, truth: Tensor, data: Dataset, *, seed: int, feature_net=None) -> dict:
    """{'fd', 'fd_floor', 'fd_features'}: FD(outputs, truth) and FD(truth, as many other held-out images of `data`)
    in the feature network; fd_floor is None when `data` holds fewer than 2n images. Needs n >= 2. Photo patches
    larger than the net's input are compared tile by tile (`tile_side`; all three sets alike), which
    'fd_features' names ('photos-cnn64 on 32x32 tiles')."""
    net = feature_net or default_feature_net(data)
    if net is None or len(truth) < 2:
        return {"fd": None, "fd_floor": None, "fd_features": None}
    tile = tile_side(net, truth, data)
    f_truth = fd_features(net, truth, tile=tile)
    fd = frechet_distance(fd_features(net, outputs, tile=tile), f_truth)
    floor = None
    if len(data) >= 2 * len(truth):
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
        others = data.x[order[len(truth) : 2 * len(truth)]]  # translate_heldout's truths are order[:n]
        floor = frechet_distance(fd_features(net, others, tile=tile), f_truth)
    name = net.name if tile is None else f"{net.name} on {tile}x{tile} tiles"
    return {"fd": fd, "fd_floor": floor, "fd_features": name}


def scramble_colour(x: Tensor, gen: torch.Generator) -> Tensor:
    """Augmentation of RGB images (B, 3, H, W): each image's channels permuted at random, then its saturation scaled
    by a uniform factor in [0, 1.5] about its luminance (0 = grey), so colour alone cannot name the photograph."""
    from genlab.edit.degrade import grey

    perm = torch.rand(len(x), 3, generator=gen).argsort(1)  # (B, 3)
    x = x.gather(1, perm[:, :, None, None].expand_as(x))
    luma = grey(x)  # (B, 1, H, W)
    scale = 1.5 * torch.rand(len(x), 1, 1, 1, generator=gen)
    return (luma + scale * (x - luma)).clamp(-1, 1)


RENDERINGS = ("as is", "blurred", "noisy")  # the second half of the proxy label


def render(x: Tensor, kind: Tensor, gen: torch.Generator) -> Tensor:
    """Images (B, C, H, W) rendered per `kind` (B,) ∈ {0 as is, 1 blurred: bicubic down by 2 or 4 and back up,
    2 noisy: + N(0, σ²), σ uniform in [0.03, 0.2]}."""
    from genlab.edit.degrade import downsample, upsample

    out = x.clone()
    quarter = (kind == 1) & (torch.rand(len(x), generator=gen) < 0.5)
    for factor, pick in ((2, (kind == 1) & ~quarter), (4, quarter)):
        if pick.any():
            out[pick] = upsample(downsample(x[pick], factor), x.shape[-1])
    sigma = 0.03 + 0.17 * torch.rand(len(x), 1, 1, 1, generator=gen)
    noisy = (x + sigma * torch.randn(x.shape, generator=gen)).clamp(-1, 1)
    return torch.where((kind == 2)[:, None, None, None], noisy, out)


def augment_photos(x: Tensor, gen: torch.Generator) -> Tensor:
    """Translations by up to 2 pixels (replicate-padded), horizontal flips, and `scramble_colour` on a random half."""
    side = x.shape[-1]
    pad = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate")  # (B, C, H+4, W+4)
    dy, dx = torch.randint(0, 5, (2,), generator=gen).tolist()
    x = pad[..., dy : dy + side, dx : dx + side]
    flip = torch.rand(len(x), generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    scramble = torch.rand(len(x), generator=gen) < 0.5
    return torch.where(scramble[:, None, None, None], scramble_colour(x, gen), x)


def fit_photo_feature_net(
    *, size: int = 32, n: int = 8192, n_val: int = 1024, epochs: int = 10, batch: int = 64, seed: int = 0
) -> tuple[SmallCNN, dict]:
    """(SmallCNN, info): trained (AdamW, one-cycle lr 3e-3, `augment_photos`, then `render` at random) to name the
    training photograph and the rendering of n patches (see the module docstring); its accuracies are measured on
    n_val patches at fresh positions (another seed) of the same photographs, rendered at random."""
    import torch.nn.functional as F

    from genlab.data.images import uint8_to_tensor
    from genlab.data.photos import TRAIN_PHOTOS, PhotosConfig, photo_patches
    from genlab.metrics.features import CNNConfig

    def labelled(count: int, patch_seed: int) -> tuple[Tensor, Tensor]:
        images, origins = photo_patches(PhotosConfig(size=size, n=count, seed=patch_seed), "train")
        return uint8_to_tensor(images), torch.tensor([TRAIN_PHOTOS.index(o.photo) for o in origins])

    x, labels = labelled(n, seed)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = SmallCNN(CNNConfig(in_channels=3, image_size=size, num_classes=len(TRAIN_PHOTOS) * len(RENDERINGS)))
    per_epoch = n // batch
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * per_epoch)
    net.train()
    for step in range(epochs * per_epoch):
        if step % per_epoch == 0:
            order = torch.randperm(n, generator=gen)
        idx = order[(step % per_epoch) * batch :][:batch]
        kind = torch.randint(0, len(RENDERINGS), (len(idx),), generator=gen)
        images = render(augment_photos(x[idx], gen), kind, gen)
        loss = F.cross_entropy(net.logits(images), labels[idx] * len(RENDERINGS) + kind)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    x_val, labels_val = labelled(n_val, seed + 1)
    joint, photo = proxy_accuracy(net, x_val, labels_val, seed=seed)
    info = {
        "name": f"photos-cnn{net.num_features}",
        "dataset": f"photos:{size} train split; label = (source photograph, rendering)",
        "class_names": [f"{p} ({r})" for p in TRAIN_PHOTOS for r in RENDERINGS],
        "heldout_accuracy": joint,
        "heldout_photo_accuracy": photo,
        "heldout_rendering_accuracy": proxy_accuracy(net, x_val, labels_val, seed=seed, rendering_only=True)[0],
        "heldout": f"{n_val} patches at fresh positions (seed {seed + 1}) of the same photographs",
        "num_features": net.num_features,
        "feature": "penultimate layer (ReLU of linear 4w -> num_features)",
        "augmentation": "shifts <= 2 px, horizontal flips, colour scrambled on half (channel permutation, saturation)",
        "parameters": sum(p.numel() for p in net.parameters()),
        "train_patches": n,
        "epochs": epochs,
        "seed": seed,
    }
    return net, info


@torch.no_grad()
def proxy_accuracy(net, x: Tensor, photos: Tensor, *, seed: int, rendering_only: bool = False) -> tuple[float, float]:
    """(accuracy on the joint (photograph, rendering) label, accuracy on the photograph alone) of images x rendered
    at random (seeded); rendering_only: (accuracy on the rendering alone, same)."""
    gen = torch.Generator().manual_seed(seed)
    kind = torch.randint(0, len(RENDERINGS), (len(x),), generator=gen)
    pred = net.logits(render(x, kind, gen)).argmax(1)
    if rendering_only:
        acc = float((pred % len(RENDERINGS) == kind).double().mean())
        return acc, acc
    joint = float((pred == photos * len(RENDERINGS) + kind).double().mean())
    return joint, float((pred // len(RENDERINGS) == photos).double().mean())


# -- seams and colour


def boundary_pairs(mask: Tensor) -> tuple[Tensor, Tensor]:
    """Boolean (B, 1, H, W−1) and (B, 1, H−1, W): horizontal and vertical neighbours on opposite sides of the
    mask (m > ½ made, else kept)."""
    made = mask > 0.5
    return made[..., :, 1:] != made[..., :, :-1], made[..., 1:, :] != made[..., :-1, :]


def interior_pairs(mask: Tensor) -> tuple[Tensor, Tensor]:
    """As `boundary_pairs`, for neighbours that are both made."""
    made = mask > 0.5
    return made[..., :, 1:] & made[..., :, :-1], made[..., 1:, :] & made[..., :-1, :]


def pair_energy(x: Tensor, pairs: tuple[Tensor, Tensor]) -> Tensor:
    """Per image (B,): Σ over the marked neighbour pairs (p, q) of ‖x_p − x_q‖² (summed over channels)."""
    across, down = pairs
    dx = (x[..., :, 1:] - x[..., :, :-1]).pow(2).sum(1, keepdim=True)  # (B, 1, H, W−1)
    dy = (x[..., 1:, :] - x[..., :-1, :]).pow(2).sum(1, keepdim=True)  # (B, 1, H−1, W)
    return (dx * across).flatten(1).sum(1) + (dy * down).flatten(1).sum(1)


def boundary_energy(x: Tensor, mask: Tensor) -> Tensor:
    """Per image (B,): the gradient energy of x across the mask boundary."""
    return pair_energy(x, boundary_pairs(mask))


def energy_ratio(outputs: Tensor, truth: Tensor, pairs: tuple[Tensor, Tensor]) -> float | None:
    """Σ pair energy of the outputs (k, n, C, H, W) or (n, C, H, W), per output, over the truth's (n, C, H, W) at the
    same pairs; None when there are no pairs or the truth is flat there."""
    outputs = outputs if outputs.dim() == 5 else outputs[None]
    real = float(pair_energy(truth.double(), pairs).sum())
    if real == 0:
        return None
    return sum(float(pair_energy(o.double(), pairs).sum()) for o in outputs) / (len(outputs) * real)


def seam(outputs: Tensor, truth: Tensor, mask: Tensor) -> float | None:
    """Gradient energy of the outputs across the boundary of mask (n, 1, H, W) relative to the truth's there (see the
    module docstring); None when the mask has no boundary or the truth is flat along it."""
    return energy_ratio(outputs, truth, boundary_pairs(mask))


def interior(outputs: Tensor, truth: Tensor, mask: Tensor) -> float | None:
    """The same ratio for neighbours both inside the made region: how rough or smooth the made texture is. A seam
    shows as `seam` well above `interior`; grain or blur moves both."""
    return energy_ratio(outputs, truth, interior_pairs(mask))


def colorfulness(x: Tensor) -> Tensor:
    """Hasler & Süsstrunk (2003) colourfulness of RGB images x (B, 3, H, W) in [-1, 1], per image (B,)."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise GenlabError(f"colorfulness needs RGB images (B, 3, H, W), got {tuple(x.shape)}")
    r, g, b = ((x.double().clamp(-1, 1) + 1) * 127.5).unbind(1)  # 8-bit scale
    rg, yb = (r - g).flatten(1), (0.5 * (r + g) - b).flatten(1)
    spread = (rg.var(1, unbiased=False) + yb.var(1, unbiased=False)).sqrt()
    centre = (rg.mean(1).pow(2) + yb.mean(1).pow(2)).sqrt()
    return spread + 0.3 * centre
