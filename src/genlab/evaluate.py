"""One evaluator for every family: sample a run (or read a samples file) and measure it against a dataset.

A run is measured against its own recipe's data: train split = reference R, test split = held-out H. A samples
.npz (`images` uint8 (N, H, W, C) or `x` float (N, D), optional `labels`) is measured against a dataset named by
`--data`: `digits[:SIZE]`, `toy2d:NAME`, an image folder or an .npz file (for the last two a seeded 10 % is held
out). The maths lives in `genlab.metrics`; see `genlab.metrics.report` for what is measured on which sets.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from genlab.checkpoint import is_shipped
from genlab.data import build_dataset
from genlab.data.arrays import ArraysConfig, read_npz
from genlab.data.base import Dataset
from genlab.data.digits import DigitsConfig
from genlab.data.folder import ImageFolderConfig
from genlab.data.images import uint8_to_tensor
from genlab.data.photos import PhotosConfig
from genlab.data.shapes import ShapesConfig
from genlab.data.toy2d import SAMPLERS as TOY_NAMES
from genlab.data.toy2d import Toy2DConfig
from genlab.errors import GenlabError
from genlab.methods.base import Method
from genlab.metrics.features import FeatureNet, accuracy, fit_feature_net, save_feature_net
from genlab.metrics.inception import inception_feature_net
from genlab.metrics.output import write_report
from genlab.metrics.report import evaluate_sets
from genlab.runs import Run, load_run

HELDOUT_FRACTION = 0.1  # for folders and .npz files named by --data
DATA_HELP = "digits, digits:SIZE, toy2d:NAME, shapes, shapes:N, photos, photos:SIZE, an image folder or an .npz file"


def eval_folder(run: Run) -> Path:
    """Where a run's evaluation goes by default: RUN/eval, or ./eval for a checkpoint shipped in the package."""
    return Path("eval") if is_shipped(run.path) else run.path / "eval"


def data_config(spec: str, *, like: torch.Tensor | None = None):
    """The data config a `--data` string names; `like` (samples) sets an image folder's size and channels."""
    name, _, arg = spec.partition(":")
    if name == "digits" and (not arg or arg.isdigit()):
        return DigitsConfig(size=int(arg or 8))
    if name == "shapes" and (not arg or arg.isdigit()):  # labelled (first shape's kind × colour) for feature nets
        return ShapesConfig(n=int(arg or 5000), labels=True)
    if name == "photos" and arg in ("", "32", "64"):  # SIZE defaults to the samples' size
        return PhotosConfig(size=int(arg or (like.shape[-1] if like is not None and like.dim() == 4 else 32)))
    if name == "toy2d":
        if arg not in TOY_NAMES:
            raise GenlabError(
                f"--data {spec}: unknown toy distribution; use toy2d:NAME with NAME one of {', '.join(TOY_NAMES)}"
            )
        return Toy2DConfig(name=arg)
    path = Path(spec).expanduser()
    if path.is_dir():
        image = like is not None and like.dim() == 4 and like.shape[1] in (1, 3)
        return ImageFolderConfig(
            path=str(path),
            size=like.shape[-1] if image else None,
            channels=like.shape[1] if image else 3,
            test_fraction=HELDOUT_FRACTION,
        )
    if path.suffix == ".npz" and path.is_file():
        return ArraysConfig(path=str(path), test_fraction=HELDOUT_FRACTION)
    raise GenlabError(f"--data {spec}: unknown dataset (and no such folder or .npz file); use {DATA_HELP}")


def load_splits(cfg) -> tuple[Dataset, Dataset | None]:
    """(train, test) splits; test is None when the data holds none out (test_fraction = 0)."""
    train = build_dataset(cfg, split="train")
    heldout = None if getattr(cfg, "test_fraction", None) == 0.0 else build_dataset(cfg, split="test")
    return train, heldout


def read_samples(path: str | Path, *, n: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The first n samples of a .npz file: images uint8 (N, H, W, C) or vectors float (N, D), labels optional."""
    if not Path(path).is_file():
        raise GenlabError(f"--samples {path}: file not found; write samples with 'genlab sample RUN -o FILE.npz'")
    arrays = read_npz(path)
    if ("images" in arrays) == ("x" in arrays):
        raise GenlabError(
            f"{path}: needs exactly one of 'images' (uint8 N,H,W,C) or 'x' (float N,D); "
            f"has {sorted(arrays)}; write it with 'genlab sample -o FILE.npz'"
        )
    data = arrays["images"] if "images" in arrays else arrays["x"]
    data = data[..., None] if "images" in arrays and data.ndim == 3 else data
    if ("images" in arrays and (data.dtype != np.uint8 or data.ndim != 4)) or ("x" in arrays and data.ndim != 2):
        raise GenlabError(
            f"{path}: 'images' must be uint8 (N, H, W, C) and 'x' float (N, D), got {data.dtype} {data.shape}"
        )
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise GenlabError(f"{path}: 'x' contains NaN or inf values; the sampler diverged, fix or drop those rows")
    if n is not None and n > len(data):
        raise GenlabError(f"{path} holds {len(data)} samples but --n asks for {n}; lower --n or drop it")
    count = n or len(data)
    x = uint8_to_tensor(data[:count]) if data.dtype == np.uint8 else torch.from_numpy(data[:count].astype(np.float32))
    labels = arrays.get("labels")
    if labels is not None and (labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(data)):
        raise GenlabError(f"{path}: 'labels' must be integers (N,) = ({len(data)},), got {labels.dtype} {labels.shape}")
    return x, None if labels is None else torch.from_numpy(labels[:count].astype(np.int64))


def sample_for_eval(run: Run, *, n: int, seed: int, **opts) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """(samples, labels, settings) from a run: classes cycled evenly; NFE and ms per sample measured."""
    start = time.perf_counter()
    settings = run.resolve_settings(**opts)
    samples = run.sample(n, seed=seed, settings=settings)
    ms = (time.perf_counter() - start) * 1000 / n
    return (
        samples.x,  # images in [-1, 1]: every method's sample says so
        samples.cond if torch.is_tensor(samples.cond) else None,
        {
            "source": "run",
            "run": str(run.path),
            "step": run.step,
            **run.describe(settings, samples),
            "ms_per_sample": round(ms, 3),
            "ms_per_sample_note": "wall time of Run.sample / n (the run already loaded)",
        },
    )


def heldout_likelihood(method: Method, heldout: Dataset | None, *, n: int, seed: int = 0, **opts) -> dict:
    """Mean log-likelihood of a seeded n-subset of the held-out split under `method`, in bits/dim for images
    (nats/dim for vectors), exact or a bound as the method says; {'kind': ..., 'reason': ...} when there is none.
    opts go to `method.log_likelihood`, which also fills `stats` (nfe, estimator)."""
    kind = method.likelihood
    for skip, reason in (
        (n == 0, "disabled (--likelihood-n 0)"),
        (kind is None, f"{method.kind} defines no likelihood"),
        (heldout is None, "the data holds no test split"),
    ):
        if skip:
            return {"kind": kind, "reason": reason}
    pick = torch.randperm(len(heldout), generator=torch.Generator().manual_seed(seed))[:n]
    x = heldout.x[pick]  # unconditional density, also for class-conditional runs
    stats: dict = {}
    start = time.perf_counter()
    lp = method.log_likelihood(x, None, stats=stats, **opts).double().cpu()
    per_dim = -lp / (math.prod(x.shape[1:]) * (math.log(2) if heldout.is_image else 1.0))
    unit = "bits_per_dim" if heldout.is_image else "nats_per_dim"
    return {
        "kind": kind,
        unit: float(per_dim.mean()),
        f"{unit}_std_err": float(per_dim.std() / math.sqrt(len(lp))),
        "nats": float(lp.mean()),
        "n": len(lp),
        "split": "test",
        "seed": seed,
        "conditioning": "unconditional",
        "seconds": round(time.perf_counter() - start, 2),
        **stats,
        "reason": None,
    }


def evaluate(
    run: str | Path | Run | None = None,
    *,
    samples: str | Path | None = None,
    data: str | None = None,
    out: str | Path | None = None,
    n: int | None = None,
    seed: int = 0,
    features: str | nn.Module | FeatureNet | None = None,
    inception_weights: str | None = None,
    likelihood_n: int = 64,
    likelihood_opts: dict | None = None,
    **sampler_opts,
) -> Path:
    """Evaluate a run (sampling n = 1000 by default) or a samples file; write the report, return eval.json's path.

    A run's method also scores likelihood_n held-out items (0: skip) with `log_likelihood(**likelihood_opts)`."""
    if inception_weights is not None:
        if features is not None:
            raise GenlabError("--inception-weights and --features both pick the feature net: keep one")
        features = inception_feature_net(inception_weights)
    if (run is None) == (samples is None):
        raise GenlabError("give a RUN folder or --samples FILE.npz --data DATASET (one of them)")
    if likelihood_n < 0:
        raise GenlabError(f"--likelihood-n must be >= 0 (0 disables the likelihood), got {likelihood_n}")
    if n is not None and n < 10:
        raise GenlabError(f"--n must be at least 10 (k-NN metrics need neighbours), got {n}")
    if run is not None:
        if data is not None:
            raise GenlabError("--data is for --samples; a run is always measured against its own dataset")
        run = run if isinstance(run, Run) else load_run(run)
        cfg = run.recipe.data
        out = out or eval_folder(run)
        if run.method.makes_text:  # a language model (ar_lm, mdlm)
            return evaluate_text(
                run, out=out, n=n, seed=seed, likelihood_n=likelihood_n, likelihood_opts=likelihood_opts, **sampler_opts
            )
        if not run.method.generates or run.method.shows_reconstructions or run.method.image_task:
            return evaluate_heldout(run, out=out, seed=seed, n=n, sampler_opts=sampler_opts)
        if run.method.makes_video:  # the motion checker on videos sampled for the test captions
            return evaluate_heldout(run, out=out, seed=seed, n=n, sampler_opts=sampler_opts)
        x, labels, settings = sample_for_eval(run, n=n or 1000, seed=seed, **sampler_opts)
    else:
        if data is None:
            raise GenlabError(f"--samples needs --data DATASET ({DATA_HELP})")
        x, labels = read_samples(samples, n=n)
        cfg, settings, out = data_config(data, like=x), {"source": "samples", "samples": str(samples)}, out or "eval"
    train, heldout = load_splits(cfg)
    report = evaluate_sets(x, labels, train=train, heldout=heldout, seed=seed, feature_net=features)
    report["settings"].update(settings)
    if run is not None:
        report["likelihood"] = heldout_likelihood(
            run.method, heldout, n=likelihood_n, seed=seed, **(likelihood_opts or {})
        )
    else:
        report["likelihood"] = {"kind": None, "reason": "samples file: no model to score the held-out data"}
    return write_report(report, x=x, labels=labels, train=train, out=out)


TEXT_N = 64  # samples a language-model run's evaluation draws by default
TEXT_SHOWN = 16  # of them written to samples.txt


def evaluate_text(
    run: Run,
    *,
    out: str | Path,
    n: int | None,
    seed: int,
    likelihood_n: int,
    likelihood_opts: dict | None,
    **sampler_opts,
) -> Path:
    """eval.json / eval.md / samples.txt of a language-model run. Metrics: the sample statistics of n samples
    (genlab.metrics.text.sample_statistics: unigram entropy in bits, distinct-1/2/3, repetition of 4-grams) beside
    those of n real test windows (`test_data/...`, the same count: these statistics depend on it), and the
    test split's cost under the model (likelihood_n windows): nats per token and bits per byte, exact for an
    ar_lm, the ELBO bound for an mdlm (the true value is at most the bound)."""
    from genlab.metrics.text import bits_per_byte, sample_statistics
    from genlab.runs import EOS_TEXT, write_texts

    n = n or TEXT_N
    train, heldout = load_splits(run.recipe.data)
    x, _, settings = sample_for_eval(run, n=n, seed=seed, **sampler_opts)
    cfg = run.method.cfg  # the settings left to the method (None) and an mdlm's remasking, as used
    settings.update({k: getattr(cfg, k) for k in ("temperature", "top_k", "top_p") if settings.get(k) is None})
    if run.recipe.method.kind == "mdlm":
        settings.update(remasking=cfg.remasking, block_length=cfg.block_length)
    metrics = sample_statistics(x)
    real = heldout.x[torch.randperm(len(heldout), generator=torch.Generator().manual_seed(seed))[:n]]
    metrics.update({f"test_data/{k}": v for k, v in sample_statistics(real).items()})
    lik = heldout_likelihood(run.method, heldout, n=likelihood_n, seed=seed, **(likelihood_opts or {}))
    if lik.get("nats_per_dim") is not None:  # a token is a dimension
        per_token, bpt = lik["nats_per_dim"], heldout.bytes_per_token
        lik.update(
            nats_per_token=per_token,
            bits_per_token=per_token / math.log(2),
            bits_per_byte=bits_per_byte(per_token, bpt),
            bits_per_byte_std_err=bits_per_byte(lik["nats_per_dim_std_err"], bpt),
            bytes_per_token=bpt,
            note="exact" if lik["kind"] == "exact" else "the ELBO bound: the exact value is at most this",
        )
        metrics.update(
            test_bits_per_byte=lik["bits_per_byte"], test_nats_per_token=per_token, test_likelihood=lik["note"]
        )
    report = {
        "settings": {**settings, "data": train.name, "n": len(x), "test_windows": len(real), "seed": seed},
        "metrics": metrics,
        "likelihood": lik,
    }
    path = write_report(report, x=None, labels=None, train=train, out=out)
    write_texts(run.method.decode_text(x[:TEXT_SHOWN], eos=EOS_TEXT), Path(out) / "samples.txt")
    return path


def evaluate_heldout(run: Run, *, out: str | Path, seed: int, n: int | None, sampler_opts: dict) -> Path:
    """eval.json / eval.md of a run that makes no samples (a tokenizer, a noisy classifier, a CLIP) or translates
    images: the method's own `heldout_metrics` on (n items of) the test split of its data; an image-to-image run
    translates with its recipe's sample settings and the given overrides."""
    given = sorted(k for k, v in sampler_opts.items() if v is not None)
    samples = run.method.image_task or run.method.makes_video
    if given and not samples:
        raise GenlabError(f"a {run.method.kind} run makes no samples: --{given[0].replace('_', '-')} does not apply")
    settings = run.resolve_settings(**sampler_opts)
    train, heldout = load_splits(run.recipe.data)
    data = heldout if heldout is not None else train
    metrics = run.method.heldout_metrics(data, seed=seed, n=n, settings=settings)
    split = "test" if heldout is not None else "train (the data holds no test split)"
    report = {
        "settings": {
            "source": "run",
            "run": str(run.path),
            "step": run.step,
            "data": train.name,
            "split": split,
            "n": metrics.pop("n", None),
            "seed": seed,
            **({"sample_settings": settings.as_dict(run.method.sample_settings)} if samples else {}),
        },
        "metrics": metrics,
    }
    return write_report(report, x=None, labels=None, train=train, out=out)


def train_features(data: str, *, out: str | Path | None = None, epochs: int = 40, seed: int = 0) -> tuple[Path, float]:
    """Train a SmallCNN feature classifier on a labelled dataset's train split; (weights path, held-out accuracy)."""
    train, heldout = load_splits(data_config(data))
    if not train.is_image or train.labels is None or heldout is None:
        raise GenlabError(f"--data {data}: a feature net needs labelled images with a test split (e.g. digits)")
    start = time.perf_counter()
    net = fit_feature_net(train.x, train.labels, num_classes=train.num_classes, epochs=epochs, seed=seed)
    acc = accuracy(net, heldout.x, heldout.labels)
    info = {
        "name": f"{train.name}-cnn{net.num_features}",
        "dataset": data,
        "heldout_accuracy": acc,
        "train_accuracy": accuracy(net, train.x, train.labels),
        "heldout_size": len(heldout),
        "num_features": net.num_features,
        "feature": "penultimate layer (ReLU of linear 4w -> num_features)",
        "parameters": sum(p.numel() for p in net.parameters()),
        "epochs": epochs,
        "seed": seed,
        "train_seconds": round(time.perf_counter() - start, 1),
        "class_names": train.class_names,
    }
    path = save_feature_net(net, out or f"features-{train.name}.safetensors", info=info)
    return path, acc


def latent_roundtrip(method, batch: int = 256):
    """encode -> decode (images in [-1, 1] on any device, back on theirs) through a latent method's autoencoder or
    an autoencoder run's own (`reconstruct`), or None for a method that samples pixels."""
    if hasattr(method, "to_latent") and hasattr(method, "from_latent"):
        step = lambda x: method.from_latent(method.to_latent(x))  # noqa: E731
    elif type(method).reconstruct is not Method.reconstruct:  # an autoencoder run (or a VQ tokenizer's)
        step = method.reconstruct
    else:
        return None

    @torch.no_grad()
    def roundtrip(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([step(part.to(method.device)).to(x.device) for part in x.split(batch)])

    return roundtrip


def evaluate_geneval(
    run: str | Path | Run | None = None,
    *,
    prompts: str | Path = "builtin",
    n_per_prompt: int = 4,
    out: str | Path | None = None,
    seed: int = 0,
    best_of: int | None = None,
    verifier: str | Path | None = None,
    **sampler_opts,
) -> Path:
    """The GenEval-style suite (`genlab.metrics.geneval`) on a text-to-image run (default: the shipped one):
    each prompt sampled n_per_prompt times with the run's sample settings and the given overrides, scored
    beside the real-render ceiling and the shuffled-caption chance row; geneval.json / geneval.md written into
    `out` (default RUN/eval; ./eval for the shipped run); returns geneval.json's path. `best_of` K > 1: each image
    the best of K candidates by `verifier` (a verifier run) or, by default, by the generator itself (genlab.rerank);
    None: the run's own `sample.best_of`."""
    from genlab.generate import text_run
    from genlab.metrics.geneval import geneval, load_suite, write_geneval
    from genlab.rerank import best_of as search
    from genlab.rerank import check_best_of, resolve_best_of, verifier_run

    suite = load_suite(prompts)  # a bad file fails before the model loads
    if n_per_prompt < 1:
        raise GenlabError(f"--n-per-prompt must be >= 1, got {n_per_prompt}")
    check_best_of(best_of)  # before the model loads
    run = text_run(run)
    best_of = resolve_best_of(run, best_of, verifier)
    settings = run.resolve_settings(**sampler_opts)
    judge = None if verifier is None else verifier_run(verifier)

    def generate(texts: list[str], seed: int) -> torch.Tensor:
        return search(run, texts, k=best_of, verifier=judge, seed=seed, settings=settings).x

    report = geneval(
        generate,
        suite,
        n_per_prompt=n_per_prompt,
        seed=seed,
        image_size=run.method.image_shape[-1],
        reconstruct=latent_roundtrip(run.method),
    )
    used = settings.as_dict(run.method.sample_settings)
    report["settings"] = {"run": str(run.path), "step": run.step, "recipe": run.recipe.name, **used}
    report["settings"]["best_of"] = best_of
    if best_of > 1:
        report["settings"]["verifier"] = "the generator" if judge is None else str(judge.path)
    return write_geneval(report, out or eval_folder(run))
