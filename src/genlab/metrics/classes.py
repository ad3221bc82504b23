"""Class metrics from a feature classifier's logits, p(y | x) = softmax(logits).

Inception-style score IS = exp(E_x KL(p(y|x) ‖ p(y))) with p(y) = E_x p(y|x) (Salimans et al. 2016; one split,
computed with the dataset's own classifier instead of Inception). Class accuracy (class-conditional samples only) =
mean 1[argmax_y p(y|x) = requested label]. Mode coverage: the entropy H(q) = −Σ_y q(y) ln q(y) of the histogram q of
predicted classes, ln K when all K classes are equally frequent (ln 5 when only 5 of them appear).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genlab.errors import GenlabError


def class_metrics(logits: Tensor, *, labels: Tensor | None = None) -> dict[str, float]:
    """IS, predicted-class histogram entropy (and its maximum ln K) and, given labels, class accuracy."""
    logp = torch.log_softmax(logits.double(), dim=1)  # (N, K)
    p = logp.exp()
    log_marginal = p.mean(0).clamp_min(1e-300).log()  # (K,)
    kl = (p * (logp - log_marginal)).sum(1)  # (N,)
    predicted = logits.argmax(1)
    hist = torch.bincount(predicted, minlength=logits.shape[1]).double() / len(predicted)
    entropy = -(hist[hist > 0] * hist[hist > 0].log()).sum()
    out = {
        "inception_score": float(kl.mean().exp()),
        "class_entropy": float(entropy),
        "class_entropy_max": math.log(logits.shape[1]),
    }
    if labels is not None:
        if len(labels) != len(logits) or int(labels.max()) >= logits.shape[1]:
            raise GenlabError(
                f"labels must be {len(logits)} class ids below {logits.shape[1]} (the feature net's classes), "
                f"got {len(labels)} with max {int(labels.max())}; drop 'labels' from the samples file or fix them"
            )
        out["class_accuracy"] = float((predicted == labels).double().mean())
    return out
