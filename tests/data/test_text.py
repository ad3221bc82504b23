"""Text data: documents from files and the standard library, splits by document, windows, tokenizer, resolve."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

import pytest
import torch

from genlab.data import DATA_CONFIGS, Dataset, build_dataset
from genlab.data.text import (
    TextConfig,
    assign_splits,
    build_text,
    documents,
    split_documents,
    text_tokenizer,
    token_stream,
)
from genlab.errors import GenlabError
from genlab.text.bpe import BPETokenizer, train_bpe

WORDS = "the a model of text learns words from many small documents and some larger ones with numbers 42".split()


def paragraphs(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        "\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) for _ in range(rng.randint(1, 3)))
        for _ in range(n)
    ]


@pytest.fixture
def txt(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(paragraphs(40)) + "\n \n\n\n")  # a whitespace-only line separates too
    return path


def tiny(path, **kw) -> TextConfig:
    return TextConfig(source=str(path), **{"seq_len": 16, "merges": 20, **kw})


def test_registered():
    assert DATA_CONFIGS["text"] is TextConfig and TextConfig().kind == "text"


def test_txt_documents_are_blank_line_separated(txt):
    docs = documents(str(txt))
    assert list(docs.values()) == paragraphs(40)
    assert list(docs)[:2] == ["corpus.txt#1", "corpus.txt#2"]


def test_splits_disjoint_by_document_and_cover_all(txt):
    docs = documents(str(txt))
    parts = {s: split_documents(str(txt), s, seed=0) for s in ("train", "validation", "test")}
    names = assign_splits(docs, 0)
    for s, texts in parts.items():
        assert texts == [docs[n] for n in sorted(docs) if names[n] == s] and texts
    assert sum(map(len, parts.values())) == len(docs)
    chars = {s: sum(map(len, t)) for s, t in parts.items()}
    total = sum(chars.values())
    assert 0.03 < chars["test"] / total < 0.2 and chars["train"] / total > 0.6
    assert assign_splits(docs, 0) == names and assign_splits(docs, 1) != names  # stable; the seed reshuffles


def test_windows_hold_the_documents_with_eos_after_each(txt):
    cfg = tiny(txt)
    tok = text_tokenizer(cfg)
    for split in ("train", "validation", "test"):
        ds = build_dataset(cfg, split=split)
        texts = split_documents(cfg.source, split, cfg.seed)
        stream = token_stream(texts, tok)
        n = len(stream) // cfg.seq_len
        assert ds.x.dtype == torch.int64 and ds.x.shape == (n, cfg.seq_len)
        assert ds.x.flatten().tolist() == stream[: n * cfg.seq_len]  # the remainder (< seq_len tokens) is dropped
        assert int(ds.x.max()) <= tok.eos_id  # never <mask>
        flat = ds.x.flatten().tolist()
        ends = [i for i, t in enumerate(flat) if t == tok.eos_id]
        starts = [0] + [e + 1 for e in ends[:-1]]
        assert [tok.decode(flat[a:b]) for a, b in zip(starts, ends)] == texts[: len(ends)]
        nbytes = sum(len(tok.token_bytes(t)) for t in flat)
        assert ds.bytes_per_token == pytest.approx(nbytes / len(flat))
        assert ds.tokenizer == tok.to_dict() and ds.labels is None and ds.name == "text-corpus.txt"


def test_tokenizer_from_train_only_and_cached(txt):
    cfg = tiny(txt)
    expected = train_bpe(split_documents(cfg.source, "train", cfg.seed), cfg.merges)
    assert text_tokenizer(cfg).merges == expected.merges
    assert text_tokenizer(tiny(txt)) is text_tokenizer(cfg)  # equal configs share one tokenizer
    assert build_text(cfg, split="train").tokenizer == build_text(cfg, split="test").tokenizer
    assert text_tokenizer(tiny(txt, merges=5)).merges == expected.merges[:5]
    # editing the file changes the corpus: no stale cache
    txt.write_text("\n\n".join(paragraphs(40, seed=1)))
    assert text_tokenizer(tiny(txt)).merges != expected.merges


def test_jsonl_source(tmp_path):
    path = tmp_path / "docs.jsonl"
    texts = paragraphs(30, seed=2)
    path.write_text("\n".join(json.dumps({"text": t}) for t in texts) + "\n\n")
    docs = documents(str(path))
    assert list(docs.values()) == texts and "docs.jsonl#1" in docs
    assert build_text(tiny(path), split="test").x.shape[1] == 16


@pytest.mark.parametrize(
    "content, match",
    [('{"text": "ok"}\n{oops\n', "docs.jsonl:2 is not valid JSON"), ('{"txt": "x"}\n', 'needs a string "text"')],
)
def test_jsonl_errors(tmp_path, content, match):
    path = tmp_path / "docs.jsonl"
    path.write_text(content)
    with pytest.raises(GenlabError, match=match):
        documents(str(path))


def test_user_errors(tmp_path, txt):
    with pytest.raises(GenlabError, match="is not a file"):
        build_text(tiny(tmp_path / "missing.txt"))
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(GenlabError, match="not UTF-8"):
        build_text(tiny(bad))
    few = tmp_path / "few.txt"
    few.write_text("only one document")
    with pytest.raises(GenlabError, match="no test documents"):
        build_text(tiny(few), split="test")
    with pytest.raises(GenlabError, match="lower data.seq_len"):
        build_text(tiny(txt, seq_len=100_000), split="test")
    with pytest.raises(GenlabError, match="split must be one of"):
        build_text(tiny(txt), split="heldout")


def test_config_rejects_unknown_sources():
    from genlab.config import parse_dataclass

    with pytest.raises(GenlabError, match="source must be one of topics, docstrings, both or a path"):
        parse_dataclass(TextConfig, {"source": "wikipedia"}, "r.yaml: data")
    with pytest.raises(GenlabError, match="seq_len"):
        parse_dataclass(TextConfig, {"seq_len": 1}, "r.yaml: data")
    assert parse_dataclass(TextConfig, {"source": "x/y.jsonl", "merges": 0}, "r.yaml: data").merges == 0


def test_topics_default_corpus():
    pytest.importorskip("pydoc_data.topics")
    cfg = TextConfig()
    train, test = build_dataset(cfg, split="train"), build_dataset(cfg, split="test")
    tok = BPETokenizer.from_dict(train.tokenizer)
    assert tok.num_merges == 2000 and train.x.shape[1] == test.x.shape[1] == 128
    assert len(test) > 0.05 * len(train) and 3.0 < test.bytes_per_token < 4.5
    names = assign_splits(documents("topics"), 0)
    assert {"train", "validation", "test"} == set(names.values())


def test_docstrings_source_is_deterministic():
    docs = documents("docstrings")
    assert len(docs) > 30 and "docstrings/json" in docs
    assert docs["docstrings/json"].startswith("JSON (JavaScript Object Notation)")
    from genlab.data.text import module_document

    assert module_document("json") == docs["docstrings/json"]


# ----------------------------------------------------------------------------- resolve


@dataclass
class _Model:
    kind: str = "lm"
    vocab_size: int | None = None
    seq_len: int | None = None


@dataclass
class _Flow:
    kind: str = "flow"


@dataclass
class _Method:
    kind: str = "ar_lm"
    tokenizer: dict = field(default_factory=dict)


def _recipe(data_cfg, model=None, method=None):
    from genlab.config import Recipe

    return Recipe(name="t", data=data_cfg, model=model or _Model(), method=method or _Method())


def test_resolve_fills_vocab_seq_len_and_tokenizer(txt):
    from genlab.train import resolve

    cfg = tiny(txt)
    data = build_text(cfg)
    recipe = _recipe(cfg)
    out = resolve(recipe, data)
    tok = text_tokenizer(cfg)
    assert (out.model.vocab_size, out.model.seq_len) == (tok.vocab_size, 16) == (20 + 258, 16)
    assert out.method.tokenizer == tok.to_dict() and recipe.method.tokenizer == {}  # the input is not changed
    assert resolve(out, data).method.tokenizer == out.method.tokenizer  # idempotent (a resumed run)
    with pytest.raises(GenlabError, match="model.seq_len=8 but the text data has seq_len=16"):
        resolve(_recipe(cfg, model=_Model(seq_len=8)), data)
    other = _Method(tokenizer=train_bpe(["something else"], 3).to_dict())
    with pytest.raises(GenlabError, match="method.tokenizer is not the tokenizer of this data"):
        resolve(_recipe(cfg, method=other), data)
    with pytest.raises(GenlabError, match="does not fit text data"):
        resolve(_recipe(cfg, method=_Flow()), data)


def test_resolve_with_the_real_lm_recipe(txt):
    from genlab.config import recipe_from_dict
    from genlab.train import resolve

    tree = {
        "name": "tiny-lm",
        "data": {"kind": "text", "source": str(txt), "seq_len": 16, "merges": 20},
        "model": {"kind": "lm", "dim": 16, "depth": 1, "heads": 2},
        "method": {"kind": "ar_lm"},
    }
    recipe = recipe_from_dict(tree, "test")
    out = resolve(recipe, build_dataset(recipe.data, split="train"))
    assert out.model.vocab_size == 278 and out.model.seq_len == 16
    assert out.method.tokenizer == text_tokenizer(recipe.data).to_dict()
    with pytest.raises(GenlabError, match="needs text data"):
        resolve(recipe, Dataset(x=torch.zeros(10, 2)))
