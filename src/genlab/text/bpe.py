"""Byte-level BPE: a tokenizer for the language models, trained by `train_bpe(texts, merges)`.

Vocabulary, V = 256 + M + 2 ids for M merges:
    0..255           the bytes of UTF-8 text
    256..256+M-1     one id per merge, in merge order: merge k joins the pair (a, b) of ids < 256 + k
    256+M            `<eos>`: end of a document, also the padding token
    256+M+1          `<mask>`: the absorbing state of masked diffusion LMs
`encode` never produces a special; `decode` drops them.

Pre-split: text is cut into chunks by `CHUNK` before it becomes bytes, and merges never cross a chunk
boundary. A chunk is one of: an optional single space followed by a run of letters (underscore counts as a
letter, so `__init__` stays whole), an optional space and a run of digits, an optional space and a run of
other symbols (punctuation), or a run of whitespace. A whitespace run before a word leaves its last space to
the word (" " + "word" is one chunk, as in GPT-2), so merges learn words with their leading space and
indentation runs, never "word + following space" or "letters + punctuation". The chunks concatenate
back to the text exactly.

Training: the corpus is reduced to a table {chunk bytes: frequency}; each merge takes the most frequent
adjacent pair over that table (count = Σ frequency × occurrences), ties broken by the smaller pair (a, b),
and updates the pair counts only for the chunks that contain the pair (an inverted index), so nothing is
re-encoded. Training stops early when no adjacent pair is left (`num_merges` is then < the request).
Encoding applies, within each chunk, the lowest-ranked present pair until none is left; this equals
applying the merges in training order.

Unicode: any str round trips (`decode(encode(s)) == s`) except lone surrogates (U+D800..U+DFFF, which
UTF-8 cannot encode: Python strs may hold them, e.g. from `surrogateescape`); `encode` replaces each one by
U+FFFD, the character `decode` also uses for byte sequences that are not valid UTF-8 (errors="replace").
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from collections.abc import Iterable

from genlab.errors import GenlabError

CHUNK = re.compile(r" ?[^\W\d]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
SPECIALS = ("<eos>", "<mask>")
ENCODE_CACHE_LIMIT = 200_000  # cached chunk encodings per tokenizer; cleared when it grows past this


def chunks(text: str) -> list[str]:
    """The pre-split of `text` (see the module docstring); "".join(chunks(text)) == text."""
    return CHUNK.findall(text)


def utf8(text: str) -> bytes:
    """UTF-8 bytes of `text`, lone surrogates replaced by U+FFFD (they have no UTF-8 encoding)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return LONE_SURROGATE.sub("\ufffd", text).encode("utf-8")


class BPETokenizer:
    """A byte-level BPE over `merges` (a list of id pairs, in merge order); see the module docstring."""

    def __init__(self, merges: Iterable[tuple[int, int]]):
        self.merges: list[tuple[int, int]] = []
        self._pieces: list[bytes] = [bytes([i]) for i in range(256)]  # id -> bytes it stands for
        for k, pair in enumerate(merges):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(_is_int(i) for i in pair)):
                raise GenlabError(f"tokenizer merge {k} is {pair!r}: each merge must be a pair of token ids [a, b]")
            a, b = int(pair[0]), int(pair[1])
            if not (0 <= a < 256 + k and 0 <= b < 256 + k):
                raise GenlabError(f"tokenizer merge {k} = [{a}, {b}] refers to an id that is not defined before it")
            self.merges.append((a, b))
            self._pieces.append(self._pieces[a] + self._pieces[b])
        self._rank = {pair: k for k, pair in enumerate(self.merges)}
        self._cache: dict[str, list[int]] = {}

    # -- the vocabulary

    @property
    def num_merges(self) -> int:
        return len(self.merges)

    @property
    def eos_id(self) -> int:
        return 256 + self.num_merges

    @property
    def mask_id(self) -> int:
        return 257 + self.num_merges

    @property
    def vocab_size(self) -> int:
        return 256 + self.num_merges + len(SPECIALS)

    def token_bytes(self, i: int) -> bytes:
        """The bytes token `i` stands for (b"" for a special)."""
        if not 0 <= i < self.vocab_size:
            raise GenlabError(f"token id {i} is outside the vocabulary [0, {self.vocab_size}): wrong tokenizer?")
        return self._pieces[i] if i < self.eos_id else b""

    def byte_lengths(self) -> list[int]:
        """len(token_bytes(i)) for every id i (0 for the specials): (vocab_size,)."""
        return [len(p) for p in self._pieces] + [0] * len(SPECIALS)

    # -- text <-> ids

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (no specials added)."""
        ids: list[int] = []
        for chunk in chunks(text):
            cached = self._cache.get(chunk)
            if cached is None:
                if len(self._cache) >= ENCODE_CACHE_LIMIT:
                    self._cache.clear()
                cached = self._cache[chunk] = self._encode_chunk(list(utf8(chunk)))
            ids.extend(cached)
        return ids

    def _encode_chunk(self, ids: list[int]) -> list[int]:
        """Merge the lowest-ranked adjacent pair (all its occurrences, left to right) until no pair has a rank."""
        while len(ids) > 1:
            best = min(zip(ids, ids[1:]), key=lambda p: self._rank.get(p, len(self._rank)))
            if best not in self._rank:
                break
            ids = merge_pair(ids, best, 256 + self._rank[best])
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids` (a list, or a tensor's `.tolist()`); specials dropped, bad UTF-8 -> U+FFFD."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        return b"".join(self.token_bytes(int(i)) for i in ids).decode("utf-8", errors="replace")

    # -- serialisation

    def to_dict(self) -> dict:
        """JSON-able form: {"kind": "bpe", "merges": [[a, b], ...]}."""
        return {"kind": "bpe", "merges": [[a, b] for a, b in self.merges]}

    @classmethod
    def from_dict(cls, d: dict) -> BPETokenizer:
        if not isinstance(d, dict) or d.get("kind") != "bpe" or not isinstance(d.get("merges"), list):
            raise GenlabError('a tokenizer must be {"kind": "bpe", "merges": [[a, b], ...]}: retrain or fix it')
        return cls(d["merges"])

    def __repr__(self) -> str:
        return f"BPETokenizer(num_merges={self.num_merges}, vocab_size={self.vocab_size})"


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def merge_pair(ids: list[int], pair: tuple[int, int], new: int) -> list[int]:
    """`ids` with every non-overlapping occurrence of `pair`, scanned left to right, replaced by `new`."""
    a, b = pair
    out, i, n = [], 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _pair_counts(ids: list[int]) -> Counter:
    return Counter(zip(ids, ids[1:]))


def train_bpe(texts: list[str], merges: int) -> BPETokenizer:
    """Learn up to `merges` merges on `texts` (deterministic: the most frequent pair, ties -> smaller pair)."""
    if merges < 0:
        raise GenlabError(f"the number of BPE merges must be >= 0, got {merges}")
    table = Counter(c for text in texts for c in chunks(text))
    words = [list(utf8(c)) for c in sorted(table)]  # sorted: the same table gives the same word order
    freqs = [table[c] for c in sorted(table)]
    counts: Counter = Counter()
    where: dict[tuple[int, int], set[int]] = {}  # pair -> words that held it (stale entries are skipped)
    for w, ids in enumerate(words):
        for pair, n in _pair_counts(ids).items():
            counts[pair] += n * freqs[w]
            where.setdefault(pair, set()).add(w)
    heap = [(-n, a, b) for (a, b), n in counts.items()]
    heapq.heapify(heap)
    learned: list[tuple[int, int]] = []
    while len(learned) < merges and heap:
        neg, a, b = heapq.heappop(heap)
        if counts.get((a, b), 0) != -neg or neg == 0:
            continue  # a stale entry: the pair's count changed after it was pushed
        pair, new = (a, b), 256 + len(learned)
        learned.append(pair)
        changed = set()
        for w in sorted(where.pop(pair)):
            old = words[w]
            before = _pair_counts(old)
            if pair not in before:
                continue
            words[w] = merge_pair(old, pair, new)
            after = _pair_counts(words[w])
            for p in before.keys() | after.keys():
                delta = (after.get(p, 0) - before.get(p, 0)) * freqs[w]
                if delta:
                    counts[p] += delta
                    changed.add(p)
                    if counts[p] <= 0:
                        del counts[p]
            for p in after.keys() - before.keys():
                where.setdefault(p, set()).add(w)
        for p in changed:
            if p in counts:
                heapq.heappush(heap, (-counts[p], *p))
    return BPETokenizer(learned)


__all__ = ["BPETokenizer", "chunks", "train_bpe", "utf8"]
