"""Minimax vs non-saturating GAN loss: the generator's gradient norm as the discriminator wins.

recipes/digits-gan.yaml's networks at initialisation; G is held fixed while D trains alone for k
steps (D's own loss, the recipe's optimizer settings). At each checkpoint k, on one fixed batch of
latents, record mean D(G(z)) and |grad_theta_G L_G| for L_G = E log(1 - D(G(z))) (minimax) and
-E log D(G(z)) (non-saturating). Run with spectral norm on D (the recipe) and without it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402
from genlab.config import load_recipe  # noqa: E402
from genlab.data import build_dataset  # noqa: E402
from genlab.methods.gan import gen_loss  # noqa: E402
from genlab.runs import build_method  # noqa: E402
from genlab.train import resolve  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def g_grad_norm(method, z, label, kind: str) -> float:
    gen = method.nets.generator
    gen.zero_grad(set_to_none=True)
    logits = method.nets.discriminator(gen(z, label), label)
    gen_loss(kind, logits).backward()
    return float(torch.sqrt(sum(p.grad.pow(2).sum() for p in gen.parameters())))


def run(spectral_norm: bool, checkpoints: list[int], batch: int) -> list[dict]:
    recipe = load_recipe(ROOT / "recipes" / "digits-gan.yaml", [f"--model.spectral_norm={str(spectral_norm).lower()}"])
    data = build_dataset(recipe.data, split="train")
    recipe = resolve(recipe, data)
    torch.manual_seed(0)
    method = build_method(recipe)
    opt = torch.optim.AdamW(method.optimizer_groups()["disc"], lr=recipe.train.lr, betas=recipe.train.betas)
    z, label = torch.randn(batch, recipe.model.latent_dim), torch.arange(batch) % 10
    rows, done = [], 0
    for k in checkpoints:
        for step in range(done, k):
            torch.manual_seed(step)
            loss, _ = method.loss(data.batch(torch.randint(len(data), (batch,))), "disc")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        done = k
        with torch.no_grad():
            d_fake = float(torch.sigmoid(method.nets.discriminator(method.nets.generator(z, label), label)).mean())
        norms = {kind: g_grad_norm(method, z, label, kind) for kind in ("minimax", "non_saturating")}
        rows.append(
            {"d_steps": k, "d_fake": round(d_fake, 5), **{f"grad_g_{n}": round(v, 6) for n, v in norms.items()}}
        )
        print(spectral_norm, rows[-1])
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checkpoints", default="0,10,25,50,100")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gan_gradients.json"))
    args = p.parse_args()
    ks = [int(k) for k in args.checkpoints.split(",")]
    write_json(
        args.out,
        {
            "recipe": "recipes/digits-gan.yaml",
            "batch": args.batch,
            "spectral_norm": run(True, ks, args.batch),
            "no_spectral_norm": run(False, ks, args.batch),
        },
    )


if __name__ == "__main__":
    main()
