"""Held-out metrics of an image-to-image method (Palette's protocol, Saharia et al. 2022, in spirit).

For n held-out images y (seeded subset), the method's own degradation makes the input s = degrade(y); k outputs
ŷ_1..k = translate(s) are drawn per input from one seeded generator. Reported:
- psnr_db / ssim: of the first output against the truth (mean over inputs);
- diversity: mean over inputs of the mean pairwise RMS distance between the k outputs (0 for a deterministic
  method; data range 2, so 2 is the largest possible);
- nfe: network evaluations per output.
"""

from __future__ import annotations

import itertools

import torch

from genlab.metrics.image import psnr, ssim


@torch.no_grad()
def translate_heldout(method, data, *, n: int, k: int, seed: int, batch: int = 64) -> dict:
    """{'truth': (n, C, H, W), 'source': ..., 'mask': ... or None, 'outputs': (k, n, C, H, W), 'nfe': int} on a
    seeded n-subset of `data` (all on the CPU)."""
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
            out = method.translate(part["source"], mask=part.get("mask"), generator=gen)
            parts.append(out.x.cpu())
            nfe = out.nfe
        outputs.append(torch.cat(parts))
    return {"truth": truth, "source": source, "mask": mask, "outputs": torch.stack(outputs), "nfe": nfe}


def diversity(outputs: torch.Tensor) -> float:
    """Mean pairwise RMS distance between the k outputs (k, n, ...) of each input, averaged over inputs."""
    k = outputs.shape[0]
    if k < 2:
        return 0.0
    dists = [(outputs[i] - outputs[j]).pow(2).flatten(1).mean(1).sqrt() for i, j in itertools.combinations(range(k), 2)]
    return float(torch.stack(dists).mean())


def translation_metrics(method, data, *, seed: int = 0, n: int = 256, k: int = 4) -> dict:
    """PSNR / SSIM of the first output, diversity of k outputs per input, NFE (see the module docstring)."""
    res = translate_heldout(method, data, n=min(n, len(data)), k=k, seed=seed)
    first, truth = res["outputs"][0], res["truth"]
    return {
        "task": method.image_task,
        "psnr_db": float(psnr(first, truth).mean()),
        "ssim": float(ssim(first, truth).mean()) if truth.shape[-1] >= 11 else None,
        "diversity": diversity(res["outputs"]),
        "outputs_per_input": k,
        "nfe": res["nfe"],
        "n": len(truth),
    }
