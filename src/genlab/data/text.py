"""English text for language models: documents -> byte-level BPE tokens -> fixed-length windows.

Sources (`data.source`):
  topics      Python's help topics, `pydoc_data.topics.topics` (one document per topic, named "topics/KEY")
  docstrings  the docstrings of the standard-library modules in `DOCSTRING_MODULES` (one document per
              module, "docstrings/MODULE": its module docstring, then for each class and function defined
              in it or in its C accelerator _MODULE, sorted by name, its docstring followed by those of
              a class's methods and properties, sorted by name; each `inspect.cleandoc`ed, joined by
              blank lines; modules that fail to import are skipped)
  both        topics and docstrings
  FILE.txt    a UTF-8 file of documents separated by blank lines (lines holding only whitespace);
              document i (from 1) is named "FILE.txt#i" (the file's name, not its folder)
  FILE.jsonl  one JSON object {"text": "..."} per line (blank lines skipped); named "FILE.jsonl#LINE"
Both stdlib sources are those of the running Python, so their text (and every number below) depends on
its version.

Splits, by document, balanced by characters: the documents are ordered by u = the first 8 bytes of
sha256("SEED:NAME") / 2**64 (stable across runs and machines, unlike hash()) and laid end to end; a document
whose middle character falls in the first 10 % of all characters is "test", in the next 10 % "validation",
else "train". (A split by u alone would give the handful of long topics a lumpy test share.)
The tokenizer (`train_bpe(..., data.merges)`) is trained on the train documents only and cached in
memory per (source, seed, merges), so every split of a run shares it; `Dataset.tokenizer` holds its dict.

Windows: a split's documents, in name order, are tokenized and concatenated with `<eos>` after each one,
then cut into non-overlapping windows x int64 (N, seq_len), N = tokens // seq_len; the last
tokens % seq_len tokens (< seq_len, the end of the last document and its `<eos>`) are dropped. A window may
start or end mid-document and hold several documents. `Dataset.bytes_per_token` = UTF-8 bytes of the kept
tokens / kept tokens (`<eos>` counted as a token of 0 bytes), so bits per byte =
nats per token / ln 2 / bytes_per_token.

Instructions (`data.format: instructions`, for supervised fine-tuning as in LLaDA): one example per paragraph
(blank-line separated, whitespace-only ones skipped) of each of the split's documents, in name order: prompt =
"Explain TOPIC:\\n" with TOPIC the document's name after its last "/" ("topics/assert" -> "assert", a module name
for docstrings, "FILE.jsonl#LINE" for files), response = the paragraph. Each window x (N, seq_len) holds the
prompt's tokens, then the response's and `<eos>`, cut at seq_len or padded with `<eos>` (LLaDA pads with EOS
and trains on the padding, so the model learns where a response ends); `Dataset.prompt_length` (N,) int64 counts
the prompt tokens, and batches carry it as "prompt_length", so the methods train on the response only. Prompt and
response are tokenized separately (the boundary never merges). Examples whose prompt fills the window are dropped.
The split and the tokenizer are those of the plain windows. bytes_per_token counts the response tokens up to and
including its `<eos>` (the padding after it is left out). topics at seed 0, 2000 merges, seq_len 64: 2183 train,
281 validation and 144 test pairs (prompts of about 9 tokens; 63 % of the train positions are not padding).

Measured at the defaults (seed 0, merges 2000, seq_len 128) on Python 3.11; tokens include the <eos>s;
training the 2000 merges on a train split takes about 1-1.5 s on one CPU core:
  source      split       documents  characters   tokens  windows  bytes/token
  topics      train              61     372,748  101,644      794         3.68
              validation         11      55,835   15,924      124         3.52
              test                7      36,387    9,799       76         3.72
  docstrings  train              84     831,569  256,613     2004         3.24
              validation         13     108,110   33,580      262         3.22
              test               16     102,977   34,139      266         3.02
  both        train             145   1,210,847  369,949     2890         3.28
              validation         28     143,897   44,829      350         3.21
              test               19     152,882   47,022      367         3.25
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import torch
from torch import Tensor

from genlab.constraints import NonEmpty, OneOf, Range, Seed, require
from genlab.data.base import Dataset
from genlab.errors import GenlabError
from genlab.text.bpe import BPETokenizer, train_bpe

SOURCES = ("topics", "docstrings", "both")
SPLITS = ("train", "validation", "test")
FORMATS = ("windows", "instructions")
INSTRUCTION_PROMPT = "Explain {topic}:\n"
TEST_FRACTION = 0.1
VALIDATION_FRACTION = 0.1
DOCSTRING_MODULES = (
    "abc", "argparse", "array", "ast", "asyncio", "base64", "bdb", "bisect", "builtins", "bz2", "calendar", "cmd",
    "code", "codecs", "codeop", "collections", "compileall", "configparser", "contextlib", "copy", "csv", "ctypes",
    "dataclasses", "datetime", "decimal", "difflib", "dis", "doctest", "enum", "filecmp", "fileinput", "fractions",
    "ftplib", "functools", "getopt", "glob", "graphlib", "gzip", "hashlib", "heapq", "hmac", "html", "http.client",
    "imaplib", "inspect", "io", "ipaddress", "itertools", "json", "locale", "logging", "lzma", "mailbox", "math",
    "mimetypes", "numbers", "operator", "optparse", "os", "pathlib", "pdb", "pickle", "pickletools", "pkgutil",
    "platform", "plistlib", "poplib", "pprint", "profile", "pstats", "py_compile", "pyclbr", "pydoc", "queue",
    "random", "re", "rlcompleter", "runpy", "sched", "selectors", "shelve", "shutil", "signal", "site", "smtplib",
    "socket", "socketserver", "statistics", "string", "struct", "subprocess", "symtable", "sysconfig", "tarfile",
    "tempfile", "textwrap", "threading", "time", "timeit", "tokenize", "trace", "traceback", "types", "typing",
    "unicodedata", "unittest.case", "urllib.parse", "uuid", "warnings", "wave", "weakref", "zipfile", "zlib",
)  # fmt: skip


@dataclass
class TextConfig:
    kind: str = "text"
    source: Annotated[str, NonEmpty()] = "topics"  # topics | docstrings | both | a .txt or .jsonl file
    seq_len: Annotated[int, Range(2)] = 128  # tokens per window
    merges: Annotated[int, Range(0, 100_000)] = 2000  # BPE merges (vocab_size = 256 + merges + 2)
    seed: Seed = 0  # picks the document split
    format: Annotated[str, OneOf(FORMATS)] = "windows"  # windows of the token stream | instructions (SFT)

    def __post_init__(self) -> None:
        require(
            self.source in SOURCES or self.source.endswith((".txt", ".jsonl")),
            "source",
            f"must be one of {', '.join(SOURCES)} or a path to a .txt or .jsonl file, got {self.source!r}",
        )


# ----------------------------------------------------------------------------- documents


def topic_documents() -> dict[str, str]:
    """Python's help topics: {"topics/KEY": text}."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise GenlabError("data.source topics needs pydoc_data, missing from this Python: use a .txt file") from None
    return {f"topics/{key}": text for key, text in topics.items()}


def _doc(obj) -> str:
    doc = getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def _defined_in(obj, module: str) -> bool:
    """A class or function of `module` itself or of its C accelerator `_module` (bisect's from _bisect)."""
    home = getattr(obj, "__module__", None)
    return (inspect.isclass(obj) or inspect.isroutine(obj)) and home in (module, f"_{module}")


def module_document(name: str) -> str:
    """The docstrings of one module, in a fixed order (see the module docstring); "" if it has none."""
    module = importlib.import_module(name)
    parts = [_doc(module)]
    for _, obj in sorted(vars(module).items()):
        if not _defined_in(obj, name):
            continue
        parts.append(_doc(obj))
        if inspect.isclass(obj):
            parts += [_doc(m) for _, m in sorted(vars(obj).items()) if inspect.isroutine(m) or isinstance(m, property)]
    return "\n\n".join(p for p in parts if p.strip())


@functools.cache
def docstring_documents() -> dict[str, str]:
    """{"docstrings/MODULE": docstrings} for the modules of DOCSTRING_MODULES that import."""
    docs = {}
    for name in DOCSTRING_MODULES:
        try:
            with warnings.catch_warnings():  # reading a deprecated alias (typing.io) warns
                warnings.simplefilter("ignore", DeprecationWarning)
                text = module_document(name)
        except Exception:  # a module missing from this Python (or broken on this platform) is skipped
            continue
        if text:
            docs[f"docstrings/{name}"] = text
    return docs


def file_documents(path: Path) -> dict[str, str]:
    """The documents of a user's .txt (blank-line separated) or .jsonl ({"text": ...} per line) file."""
    if not path.is_file():
        raise GenlabError(f"data.source {str(path)!r} is not a file: give a .txt or .jsonl path or topics/docstrings")
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise GenlabError(f"data.source {path} is not UTF-8 text (byte {e.start}): convert it to UTF-8") from None
    if path.suffix == ".txt":
        docs = [d.strip("\n") for d in re.split(r"\n[^\S\n]*\n", raw)]
        return {f"{path.name}#{i}": d for i, d in enumerate((d for d in docs if d.strip()), 1)}
    docs = {}
    for line_no, line in enumerate(raw.split("\n"), 1):  # not splitlines(): U+2028 may sit inside a string
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            raise GenlabError(
                f'{path}:{line_no} is not valid JSON: write one {{"text": ...}} object per line'
            ) from None
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise GenlabError(f'{path}:{line_no} needs a string "text" key: write one {{"text": ...}} per line')
        if item["text"]:
            docs[f"{path.name}#{line_no}"] = item["text"]
    return docs


def _source_key(source: str) -> tuple:
    """What identifies a source's content: the name, or a file's resolved path, size and modification time."""
    if source in SOURCES:
        return (source,)
    path = Path(source).expanduser().resolve()
    stat = path.stat() if path.is_file() else None
    return (str(path), stat and stat.st_size, stat and stat.st_mtime_ns)


@functools.cache
def _documents(key: tuple) -> dict[str, str]:
    source = key[0]
    if source == "topics":
        return topic_documents()
    if source == "docstrings":
        return docstring_documents()
    if source == "both":
        return {**topic_documents(), **docstring_documents()}
    return file_documents(Path(source))


def documents(source: str) -> dict[str, str]:
    """All documents of a source, {name: text}, before splitting."""
    docs = _documents(_source_key(source))
    if not docs:
        raise GenlabError(f"data.source {source!r} holds no documents (no non-empty text): add some text")
    return docs


# ----------------------------------------------------------------------------- splits


def hash_fraction(name: str, seed: int) -> float:
    """u in [0, 1): the first 8 bytes of sha256("SEED:NAME") over 2**64 (stable, unlike hash())."""
    digest = hashlib.sha256(f"{seed}:{name}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(docs: dict[str, str], seed: int) -> dict[str, str]:
    """{name: 'train' | 'validation' | 'test'}: documents laid end to end in hash order, each to the split whose
    share of the characters holds its midpoint (test the first 10 %, validation the next 10 %)."""
    total = sum(len(t) for t in docs.values())
    out, before = {}, 0
    for name in sorted(docs, key=lambda n: (hash_fraction(n, seed), n)):
        mid = (before + len(docs[name]) / 2) / total
        before += len(docs[name])
        if mid < TEST_FRACTION:
            out[name] = "test"
        elif mid < TEST_FRACTION + VALIDATION_FRACTION:
            out[name] = "validation"
        else:
            out[name] = "train"
    return out


def split_documents(source: str, split: str, seed: int) -> list[str]:
    """The texts of one split's documents, in name order."""
    if split not in SPLITS:
        raise GenlabError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    docs = documents(source)
    splits = assign_splits(docs, seed)
    texts = [docs[name] for name in sorted(docs) if splits[name] == split]
    if not texts:
        raise GenlabError(
            f"data.source {source!r} has no {split} documents of {len(docs)} (the {split} split holds about "
            f"{TEST_FRACTION:.0%} of the characters): give more documents or change data.seed"
        )
    return texts


@functools.cache
def _tokenizer(key: tuple, seed: int, merges: int) -> BPETokenizer:
    return train_bpe(split_documents(key[0], "train", seed), merges)


def text_tokenizer(cfg: TextConfig) -> BPETokenizer:
    """The tokenizer of `cfg`: trained on its train split only, cached per (source, seed, merges)."""
    return _tokenizer(_source_key(cfg.source), cfg.seed, cfg.merges)


# ----------------------------------------------------------------------------- windows


def token_stream(texts: list[str], tok: BPETokenizer) -> list[int]:
    """The documents' tokens, concatenated, with `<eos>` after each document."""
    ids: list[int] = []
    for text in texts:
        ids += tok.encode(text)
        ids.append(tok.eos_id)
    return ids


def split_names(source: str, split: str, seed: int) -> list[str]:
    """The names of one split's documents, in name order (a GenlabError when the split is empty)."""
    split_documents(source, split, seed)  # checks the split name and that the split holds documents
    splits = assign_splits(documents(source), seed)
    return [name for name in sorted(splits) if splits[name] == split]


def paragraphs(text: str) -> list[str]:
    """The blank-line separated paragraphs of a text that hold more than whitespace."""
    return [p.strip("\n") for p in re.split(r"\n[^\S\n]*\n", text) if p.strip()]


def instruction_pairs(source: str, split: str, seed: int) -> list[tuple[str, str]]:
    """(prompt, response) pairs of one split: "Explain TOPIC:\\n" and each paragraph of the document TOPIC names."""
    docs = documents(source)
    return [
        (INSTRUCTION_PROMPT.format(topic=name.rsplit("/", 1)[-1]), para)
        for name in split_names(source, split, seed)
        for para in paragraphs(docs[name])
    ]


def instruction_windows(pairs: list[tuple[str, str]], tok: BPETokenizer, seq_len: int) -> tuple[Tensor, Tensor, int]:
    """(x int64 (N, seq_len), prompt_length int64 (N,), response bytes) of (prompt, response) pairs: prompt tokens,
    response tokens and <eos>, cut at seq_len or padded with <eos>; pairs whose prompt fills seq_len are dropped.
    The response bytes are those of the kept response tokens (so bytes per token = bytes / kept response tokens
    up to and including the first <eos>)."""
    rows, lengths, nbytes = [], [], 0
    sizes = tok.byte_lengths()
    for prompt, response in pairs:
        p = tok.encode(prompt)
        if len(p) >= seq_len:
            continue
        r = (tok.encode(response) + [tok.eos_id])[: seq_len - len(p)]
        rows.append(p + r + [tok.eos_id] * (seq_len - len(p) - len(r)))
        lengths.append(len(p))
        nbytes += sum(sizes[i] for i in r)
    x = torch.tensor(rows, dtype=torch.int64).view(-1, seq_len)
    return x, torch.tensor(lengths, dtype=torch.int64), nbytes


def response_tokens(x: Tensor, prompt_length: Tensor, eos_id: int) -> Tensor:
    """(N, L) bool: each row's response tokens up to and including its first <eos> (the padding after it left out)."""
    pos = torch.arange(x.shape[1], device=x.device)[None]
    resp = pos >= prompt_length[:, None].to(x.device)
    first_eos = torch.where(resp & (x == eos_id), pos, x.shape[1]).min(1).values
    return resp & (pos <= first_eos[:, None])


def build_instructions(cfg: TextConfig, split: str, tok: BPETokenizer) -> Dataset:
    """Prompt + response windows x int64 (N, seq_len) with prompt_length (N,) (see the module docstring)."""
    x, lengths, nbytes = instruction_windows(instruction_pairs(cfg.source, split, cfg.seed), tok, cfg.seq_len)
    if not len(x):
        raise GenlabError(
            f"no instruction of the {split} split of {cfg.source!r} fits data.seq_len={cfg.seq_len}: raise data.seq_len"
        )
    name = cfg.source if cfg.source in SOURCES else Path(cfg.source).name
    ntokens = int(response_tokens(x, lengths, tok.eos_id).sum())
    return Dataset(
        x=x,
        name=f"instructions-{name}",
        tokenizer=tok.to_dict(),
        bytes_per_token=nbytes / ntokens,
        prompt_length=lengths,
    )


def build_text(cfg: TextConfig, *, split: str = "train") -> Dataset:
    """Windows int64 (N, seq_len) of one split's tokens, or its instructions (see the module docstring)."""
    tok = text_tokenizer(cfg)
    if cfg.format == "instructions":
        return build_instructions(cfg, split, tok)
    stream = torch.tensor(token_stream(split_documents(cfg.source, split, cfg.seed), tok), dtype=torch.int64)
    n = stream.numel() // cfg.seq_len
    if n == 0:
        raise GenlabError(
            f"the {split} split of {cfg.source!r} has {stream.numel()} tokens, fewer than data.seq_len={cfg.seq_len}:"
            " lower data.seq_len or add text"
        )
    x = stream[: n * cfg.seq_len].view(n, cfg.seq_len)
    nbytes = torch.tensor(tok.byte_lengths(), dtype=torch.int64)[x].sum().item()
    name = cfg.source if cfg.source in SOURCES else Path(cfg.source).name
    return Dataset(x=x, name=f"text-{name}", tokenizer=tok.to_dict(), bytes_per_token=nbytes / x.numel())
