"""Best-of-K on the GenEval-style shapes suite (genlab.rerank): every judge on the same candidates.

    python benchmarks/t2i_rerank.py pool [--seeds 0 1 2 3] [--k 4] [--threads 1]
    python benchmarks/t2i_rerank.py docs    (docs/rerank.md and the .md again from the JSON)
    python benchmarks/t2i_rerank.py score [--verifier NAME=RUN ...] [--no-self] [--seeds 0 1 2 3] [--k 4] [--threads 1]

`pool` draws K candidates of every suite image (4 per prompt) with the default run and its recipe's sampling
(`genlab.rerank.candidates`: candidate 0 is exactly the image `geneval_shapes.py` scores for that seed set) and
keeps them in runs/bench-t2i-rerank/pool-SEED.safetensors. `score` reads the pools and writes
benchmarks/results/t2i_rerank.json (+ .md): per seed set, the suite's table for
- one draw: candidate 0 (`--best-of 1`: plain generation);
- best of k by each judge, for k = 2, 4, ... (the first k candidates): the generator itself (`genlab generate
  --best-of k`: against each prompt's contradictions, by the log ratio of the errors), the generator by the error
  difference (the previous default) and with fewer references (GENERATOR_JUDGES: the relation and exchanged
  colours only; the empty prompt only, the judge before contradictions) and each verifier run given
  (`--verifier RUN`, e.g. recipes/shapes-verifier.yaml trained);
- best of K by the checker itself: the ceiling of search over these candidates, not a method (the checker is the
  judge, so choosing with it is no measurement of the model);
and how often a judge's choice is right when some candidate is right; each verifier's own held-out metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from common import write_json
from genlab.atomic import atomic_path, atomic_write_text
from genlab.data.images import tensor_to_uint8
from genlab.data.shapes import NULL_CAPTION, text_contradictions
from genlab.generate import SHIPPED, text_run
from genlab.metrics.geneval import builtin_suite, report_row, score_image
from genlab.rerank import (
    CONTRASTS,
    SELF_TIMES,
    candidates,
    choose,
    judge_errors,
    margins,
    references,
    scores,
    verifier_run,
)

POOLS = Path("runs/bench-t2i-rerank")
OUT = Path("benchmarks/results/t2i_rerank.json")
DOCS = Path("docs/rerank.md")
KEYS = ("overall", "heldout_gap", "extra_rate")
CATEGORIES = ("single_object", "two_objects", "counting", "colours", "position", "colour_attribution")


# the generator's judgements, {name: (contrasts, margin)}: `genlab generate --best-of K` (all contradictions, the log
# ratio of the errors), and ablations: the error difference (the previous default), fewer references
GENERATOR_JUDGES = {
    "generator": (CONTRASTS, "log"),
    "generator, error difference": (CONTRASTS, "difference"),
    "generator, relation and exchanged colours only": (("relation", "colours"), "log"),
    "generator vs the empty prompt": ((), "log"),
    "generator vs the empty prompt, error difference": ((), "difference"),
}


def all_captions(texts: list[str]) -> list[list[str]]:
    """Each image's captions: its prompt, the empty prompt, then every contradiction, so that one `judge_errors` pass
    serves every judge of GENERATOR_JUDGES (`judge_columns` picks a judge's columns)."""
    return [[t, NULL_CAPTION, *(c for _, c in text_contradictions(t))] for t in texts]


def judge_columns(captions: list[list[str]], contrasts: tuple[str, ...]) -> torch.Tensor:
    """(N, C) the columns of `all_captions` a judge with `contrasts` reads: the prompt and its references
    (genlab.rerank.references)."""
    cols = torch.zeros(len(captions), max(map(len, captions)), dtype=torch.bool)
    for i, row in enumerate(captions):
        refs = set(references(row[0], contrasts))
        cols[i, : len(row)] = torch.tensor([c == 0 or text in refs for c, text in enumerate(row)])
    return cols


def evaluations(contrasts: tuple[str, ...]) -> float:
    """The generator's DiT evaluations per candidate when it judges with `contrasts`, mean over the suite."""
    prompts = builtin_suite().prompts
    return len(SELF_TIMES) * sum(1 + len(references(p.text, contrasts)) for p in prompts) / len(prompts)


def suite_prompts(n_per_prompt: int = 4):
    return [p for p in builtin_suite().prompts for _ in range(n_per_prompt)]


def pool_path(seed: int) -> Path:
    return POOLS / f"pool-{seed}.safetensors"


def make_pool(seed: int, k: int) -> None:
    """The seed set's pool of k candidates per image; a pool already there with fewer is extended by the missing
    ones (candidate j is always drawn with seed + 100·j, so the first candidates stay what they were)."""
    run = text_run(f"shipped:{SHIPPED}")
    prompts = suite_prompts()
    have = load_file(str(pool_path(seed)))["pool"] if pool_path(seed).exists() else None
    if have is not None and have.shape[0] >= k:
        print(f"seed {seed}: {tuple(have.shape)} already", flush=True)
        return
    first = 0 if have is None else have.shape[0]
    start = time.perf_counter()
    pool, _ = candidates(run, [p.text for p in prompts], k=k, seed=seed, start=first, settings=run.resolve_settings())
    seconds = time.perf_counter() - start
    pool = pool if have is None else torch.cat([have, pool])
    with atomic_path(pool_path(seed)) as tmp:
        save_file({"pool": pool.contiguous()}, str(tmp), metadata={"seconds": f"{seconds:.1f}"})
    print(f"seed {seed}: {tuple(pool.shape)}, {k - first} drawn in {seconds:.0f} s", flush=True)


def summary(row: dict) -> dict:
    cats = row["categories"]
    return {
        **{key: row[key] for key in KEYS},
        **{c: cats[c]["accuracy"] for c in CATEGORIES},
        "overall_ci": row.get("overall_ci"),
    }


def verifier_report(run) -> dict:
    """The verifier's own held-out metrics (`genlab eval`) on the test split (seen colour×shape pairs) and on the
    held-out pairs, its size and its training time."""
    from genlab.data.shapes import build_shapes
    from genlab.runs import train_seconds

    out = {
        split: run.method.heldout_metrics(build_shapes(run.recipe.data, split=split)) for split in ("test", "heldout")
    }
    out["parameters"] = sum(p.numel() for p in run.method.model.parameters())
    out["train_minutes"] = round(train_seconds(run.path) / 60, 1)
    return out


def score_seed(seed: int, judges: dict, ks: list[int], noises: dict) -> dict:
    """The suite's rows for one seed set's pool: one draw, best of k by each judge ({name: fn(pool, texts) -> (K, N)
    scores}), and the checker's ceiling; `noises` ({seed: fn}): the generator's judgement with other noises, whose
    best-of-k overall scores are recorded beside. Every candidate is checked once; a row gathers its choices."""
    prompts = suite_prompts()
    texts = [p.text for p in prompts]
    pool = load_file(str(pool_path(seed)))["pool"]  # (K, N, C, H, W)
    k_all = pool.shape[0]
    scored = [[score_image(img, p) for img, p in zip(tensor_to_uint8(c), prompts)] for c in pool]  # K lists of N
    right = torch.tensor([[bool(s["correct"]) for s in row] for row in scored])  # (K, N)

    def row(index: torch.Tensor) -> dict:  # the suite's report of candidate index[i] for each image i
        return report_row([scored[j][i] for i, j in enumerate(index.tolist())], prompts, seed=seed)

    rows = {"one draw": summary(row(torch.zeros(pool.shape[1], dtype=torch.long)))}
    judged = {}
    for name, judge in judges.items():
        logits = judge(pool, texts)  # (K, N)
        for k in (k for k in ks if k <= k_all):
            _, index = choose(pool[:k], logits[:k])
            rows[f"best of {k} ({name})"] = summary(row(index))
            some = right[:k].any(0)
            judged[f"best of {k} ({name})"] = {
                "some_candidate_right": float(some.float().mean()),
                "chosen_right_when_some_right": float(right[index, torch.arange(len(index))][some].float().mean()),
            }
    other = {}
    for judge_seed, judge in noises.items():  # the generator's judgement with other noises: how much the choice moves
        logits = judge(pool, texts)
        other[str(judge_seed)] = {
            f"best of {k}": row(choose(pool[:k], logits[:k])[1])["overall"] for k in ks if k <= k_all
        }
    oracle = right.float().argmax(0)  # the first right candidate, else candidate 0
    rows[f"best of {k_all} (checker: the ceiling)"] = summary(row(oracle))
    return {
        "rows": rows,
        "judges": judged,
        "generator_other_noises": other,
        "single_draw_accuracy": float(right.float().mean()),
    }


def pct(v: float) -> str:
    return f"{100 * v:.1f}"


def verifier_lines(result: dict) -> list[str]:
    """What each learned verifier measures on its own held-out captions (seen pairs vs held-out pairs)."""
    lines = []
    for name, v in result["judges"].items():
        if not isinstance(v, dict):
            continue
        test, held = v["test"], v["heldout"]
        lines += [
            f"Verifier `{name}` ({v['parameters']:,} parameters, {v['train_minutes']} minutes of training): the true "
            f"caption outscores its contradiction for {pct(test['ranked'])} % of test images (seen colour×shape "
            f"pairs) but {pct(held['ranked'])} % of held-out-pair images; by change on test images: "
            + ", ".join(f"{k[len('ranked_') :]} {pct(x)} %" for k, x in test.items() if k.startswith("ranked_"))
            + ".",
            "",
        ]
    return lines


def markdown(result: dict, source: Path = OUT) -> str:
    lines = [
        "# Best of K: search over candidates with a judge (GenEval-style shapes suite)",
        "",
        f"Generated by `benchmarks/t2i_rerank.py` from `{source}` ({result['threads']} thread(s), load average "
        f"{result['load_average']} at the start). Generator: the default run with its recipe's sampling; candidate j "
        "of an image is drawn with seed + 100·j (`genlab.rerank.candidates`), so candidate 0 is the image "
        "`geneval_shapes.py` scores and every row of a seed set chooses among the same candidates. Judges: "
        + "; ".join(f"{k}: `{v['run'] if isinstance(v, dict) else v}`" for k, v in result["judges"].items())
        + ". The generator judges a candidate by how much better it predicts the flow's target from the noised "
        "candidate with the prompt than with each of its references (the prompt's contradictions made from its "
        "words: a relation turned over, colours or sizes exchanged, a colour, kind or size changed, a count one "
        "lower or higher; the empty prompt where none applies), the least of these margins, each the mean over "
        "the times of log(error with the reference / error with the prompt) (margin 'log', the default) or of "
        "their difference ('difference', the previous default); every generator judge of a seed set reads the "
        "same errors (one pass per noise); a verifier run is one forward pass. The checker's row chooses with the "
        "suite's own checker: it is the ceiling of search over these candidates, not a method.",
        "",
        *verifier_lines(result),
    ]
    for seed, res in result["seeds"].items():
        lines += [
            f"## Seed set {seed}",
            "",
            "| row | overall | " + " | ".join(CATEGORIES) + " | held-out gap | extra |",
        ]
        lines.append("|---" * (len(CATEGORIES) + 4) + "|")
        for name, r in res["rows"].items():
            cells = " | ".join(pct(r[c]) for c in CATEGORIES)
            lines.append(
                f"| {name} | {pct(r['overall'])} | {cells} | {100 * r['heldout_gap']:+.1f} | {pct(r['extra_rate'])} |"
            )
        judged = ", ".join(
            f"{k}: {pct(v['chosen_right_when_some_right'])} % (some right: {pct(v['some_candidate_right'])} %)"
            for k, v in res["judges"].items()
        )
        lines += ["", f"Right choices where some candidate is right: {judged}."]
        if res.get("generator_other_noises"):
            other = "; ".join(
                f"noise {j}: " + ", ".join(f"{k} {pct(v)} %" for k, v in row.items())
                for j, row in res["generator_other_noises"].items()
            )
            lines.append(f"The generator judging with other noises (overall): {other}.")
        lines.append("")
    return "\n".join(lines) + "\n"


def write_markdown(result: dict, json_path) -> str:
    """The Markdown of `result` beside its JSON (.md), and as docs/rerank.md for the default --out; returns it."""
    text = markdown(result, Path(json_path))
    atomic_write_text(Path(json_path).with_suffix(".md"), text)
    if Path(json_path).resolve() == OUT.resolve():
        atomic_write_text(DOCS, text)
    return text


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("phase", choices=("pool", "score", "docs"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--verifier", nargs="+", default=[], metavar="[NAME=]RUN", help="verifier runs that judge too")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-self", action="store_true", help="leave out the generator as its own judge")
    p.add_argument(
        "--judge-seeds", type=int, nargs="*", default=[1, 2], help="other noises of the generator's judgement"
    )
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.phase == "docs":  # the Markdown again from the JSON
        write_markdown(json.loads(Path(args.out).read_text()), args.out)
        return
    if args.phase == "pool":
        for seed in args.seeds:
            make_pool(seed, args.k)
        return
    judges, named = {}, {}
    for item in args.verifier:
        name, _, path = item.rpartition("=")
        run = verifier_run(path)
        named[name or "verifier"] = {"run": str(run.path), **verifier_report(run)}
        judges[name or "verifier"] = lambda pool, texts, run=run: scores(run, pool, texts)
    noises = {}
    if not args.no_self:
        generator = text_run(f"shipped:{SHIPPED}")
        computed: dict = {"pool": None}  # the pool being judged (held, so it is the same object) and its errors

        def judged(pool, texts, contrasts, margin, noise=0):  # one judge_errors pass per pool and noise serves all
            if computed["pool"] is not pool:
                computed.clear()
                computed.update(pool=pool, captions=all_captions(texts))
            if noise not in computed:
                computed[noise] = judge_errors(generator, pool, computed["captions"], seed=noise)
            return margins(computed[noise], margin, judge_columns(computed["captions"], contrasts))

        noises = {j: (lambda pool, texts, j=j: judged(pool, texts, CONTRASTS, "log", j)) for j in args.judge_seeds}
        for name, (contrasts, margin) in GENERATOR_JUDGES.items():
            named[name] = (
                f"the default run as its own judge (genlab.rerank.self_scores) at t = {list(SELF_TIMES)} against "
                + (f"the prompt's contradictions {list(contrasts)}" if contrasts else "the empty prompt")
                + f", margin {margin!r}: {evaluations(contrasts):.1f} DiT evaluations per candidate on the suite's "
                "prompts"
            )
            judges[name] = lambda pool, texts, c=contrasts, m=margin: judged(pool, texts, c, m)
    ks = [k for k in (2, 4, 8, 16) if k <= args.k]
    result = {
        "judges": named,
        "threads": args.threads,
        "load_average": round(os.getloadavg()[0], 2),
        "seeds": {str(s): score_seed(s, judges, ks, noises) for s in args.seeds},
    }
    print(write_markdown(result, write_json(args.out, result)))


if __name__ == "__main__":
    main()
