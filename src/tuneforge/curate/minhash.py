"""Vectorised shingling, MinHash and LSH banding.

Everything runs on whole batches of documents in numpy; no Python loop touches a shingle:

1. each document is normalised (NFKC, lower case, punctuation and spacing to one space) and split
   into tokens: words, or characters for CJK text (no spaces to split on);
2. all documents of a batch are concatenated into one code-point array; a polynomial prefix hash
   (mod 2^64) gives the hash of any token window in O(1), so every n-gram shingle of every document
   is hashed in a handful of array operations, then mixed down to 32 bits;
3. signatures use datasketch's "affine32" permutations (MurmurHash3 finalizer pre-mix, then
   `a * h + b mod 2^32`, same seed -> same `a`, `b`): our signature for a set of 32-bit shingle
   hashes equals datasketch's `MinHash(seed=seed, hashfunc=int)` for the same set;
4. bands of `rows` signature values are hashed to one uint64 each; equal band hashes are candidates,
   which the caller verifies with the exact Jaccard similarity of the shingle sets.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tuneforge.text import is_cjk, normalise

Tokens = Literal["auto", "words", "chars"]
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, so it is invertible mod 2^64
_BASE_INV = np.uint64(pow(0x9E3779B97F4A7C15, -1, 1 << 64))
_pows: list[np.ndarray] = [np.ones(1, np.uint64), np.ones(1, np.uint64)]  # B^k, B^-k (cached)


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    if len(_pows[0]) < n:
        size = max(n, 2 * len(_pows[0]))
        for i, base in enumerate((_BASE, _BASE_INV)):
            p = np.full(size, base, np.uint64)
            p[0] = 1
            _pows[i] = np.cumprod(p, dtype=np.uint64)  # wraps mod 2^64, as intended
    return _pows[0][:n], _pows[1][:n]


def _fmix64(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def _fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


@dataclass
class Shingles:
    """Sorted unique 32-bit shingle hashes of n documents: doc i owns `hashes[offsets[i]:offsets[i+1]]`."""

    hashes: np.ndarray  # (M,) uint32
    offsets: np.ndarray  # (n + 1,) int64

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def doc(self, i: int) -> np.ndarray:
        bounds = self._bounds
        return self.hashes[bounds[i]:bounds[i + 1]]

    @functools.cached_property
    def _bounds(self) -> list[int]:
        # Python ints: indexing a numpy array per call costs more than the slice itself
        return self.offsets.tolist()

    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)


def shingle(texts: list[str], word_ngram: int = 3, char_ngram: int = 3, tokens: Tokens = "auto") -> Shingles:
    """Shingle hashes of each text: word n-grams, or character n-grams for CJK text.
    A text with fewer tokens than n has one shingle (all of it); an empty text has none."""
    norm = [normalise(t) for t in texts]
    as_chars = [tokens == "chars" or (tokens == "auto" and is_cjk(t)) for t in norm]
    docs, hashes = [], []
    for chars, n in ((False, word_ngram), (True, char_ngram)):
        idx = [i for i, c in enumerate(as_chars) if c == chars]
        if idx:
            pieces = [norm[i].replace(" ", "") if chars else norm[i] for i in idx]
            d, h = _window_hashes(pieces, n, chars)
            docs.append(np.asarray(idx, np.int64)[d])
            hashes.append(h)
    doc = np.concatenate(docs) if docs else np.zeros(0, np.int64)
    h = np.concatenate(hashes) if hashes else np.zeros(0, np.uint32)
    key = sorted_unique((doc.astype(np.uint64) << np.uint64(32)) | h.astype(np.uint64))  # by (doc, hash)
    counts = np.bincount((key >> np.uint64(32)).astype(np.int64), minlength=len(texts))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Shingles((key & np.uint64(0xFFFFFFFF)).astype(np.uint32), offsets)


def _window_hashes(pieces: list[str], n: int, chars: bool) -> tuple[np.ndarray, np.ndarray]:
    """(document index, 32-bit hash) of every n-token window of every piece."""
    text = "\n".join(pieces)  # pieces hold no newline, so it separates documents
    cp = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    sep = cp == 10
    if chars:
        start = np.flatnonzero(~sep)
        end = start + 1
    else:
        boundary = np.flatnonzero(sep | (cp == 32))
        start = np.concatenate([[0], boundary + 1])
        end = np.concatenate([boundary, [len(cp)]])
        keep = end > start  # an empty document leaves an empty token
        start, end = start[keep], end[keep]
    tok_doc = np.cumsum(sep)[start] if len(start) else np.zeros(0, np.int64)
    pw, inv = _powers(len(cp) + 1)
    prefix = np.zeros(len(cp) + 1, np.uint64)
    np.cumsum((cp.astype(np.uint64) + np.uint64(1)) * pw[: len(cp)], out=prefix[1:])

    counts = np.bincount(tok_doc, minlength=len(pieces))
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    if len(start) >= n:  # full windows: tokens i .. i+n-1 of one document
        ok = tok_doc[: len(start) - n + 1] == tok_doc[n - 1:]
        w_start = np.flatnonzero(ok)
        s, e = start[w_start], end[w_start + n - 1]
        d = tok_doc[w_start]
    else:
        s = e = d = np.zeros(0, np.int64)
    short = np.flatnonzero((counts > 0) & (counts < n))  # the whole document is its one shingle
    s = np.concatenate([s, start[first[short]]])
    e = np.concatenate([e, end[first[short] + counts[short] - 1]])
    d = np.concatenate([d, short])
    h = (prefix[e] - prefix[s]) * inv[s]  # hash of text[s:e], independent of its position
    h = h + (e - s).astype(np.uint64)  # the length, so that zero-padding cannot collide
    return d.astype(np.int64), (_fmix64(h) >> np.uint64(32)).astype(np.uint32)


def permutations(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 parameters for this seed (same generator, same draws)."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def signatures(sh: Shingles, a: np.ndarray, b: np.ndarray, chunk: int = 1 << 14) -> np.ndarray:
    """(n, num_perm) uint32 MinHash signatures; an empty document gets all 0xFFFFFFFF."""
    n, p = len(sh), len(a)
    sig = np.full((n, p), 0xFFFFFFFF, np.uint32)
    nonempty = np.flatnonzero(sh.sizes() > 0)
    starts = sh.offsets[nonempty]
    mixed = _fmix32(sh.hashes)
    buf = np.empty((chunk, p), np.uint32)
    i = 0
    while i < len(nonempty):
        # as many documents as fit in `chunk` shingles (at least one)
        j = max(i + 1, int(np.searchsorted(starts, starts[i] + chunk, side="right")) - 1)
        j = min(j, len(nonempty))
        lo, hi = starts[i], sh.offsets[nonempty[j - 1] + 1]
        m = hi - lo
        out = buf[:m] if m <= chunk else np.empty((m, p), np.uint32)
        np.multiply(mixed[lo:hi, None], a[None, :], out=out)  # (m, P)
        out += b
        sig[nonempty[i:j]] = np.minimum.reduceat(out, starts[i:j] - lo, axis=0)
        i = j
    return sig


@dataclass
class LSH:
    """One shingling and banding scheme: what two sides must share to be compared."""

    word_ngram: int
    char_ngram: int
    tokens: Tokens
    bands: int
    rows: int
    a: np.ndarray
    b: np.ndarray

    def sketch(self, texts: list[str]) -> tuple[Shingles, np.ndarray]:
        """Shingles and (n, bands) band hashes of a batch of texts."""
        sh = shingle(texts, self.word_ngram, self.char_ngram, self.tokens)
        return sh, band_hashes(signatures(sh, self.a, self.b), self.bands, self.rows)


def band_hashes(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64: each band's `rows` values hashed together (band index salted in)."""
    n = len(sig)
    mult = np.random.RandomState(0x5EED).randint(1, 1 << 62, size=(bands, rows), dtype=np.int64)
    mult = mult.astype(np.uint64) * np.uint64(2) + np.uint64(1)
    v = sig[:, : bands * rows].reshape(n, bands, rows).astype(np.uint64)
    h = (v * mult[None]).sum(axis=2, dtype=np.uint64) + np.arange(bands, dtype=np.uint64)
    return _fmix64(h)


def candidate_pairs(bh: np.ndarray, valid: np.ndarray, max_bucket: int = 64) -> np.ndarray:
    """(k, 2) int64 unique pairs i < j that share at least one band hash, one band at a time."""
    idx = np.flatnonzero(valid)
    n = len(bh)
    codes = []
    for k in range(bh.shape[1]):
        order = np.argsort(bh[idx, k], kind="stable")  # stable: each bucket stays in index order
        a, b = bucket_pairs([bh[idx, k][order]], idx[order], max_bucket)
        codes.append(sorted_unique(a * n + b))
    code = sorted_unique(np.concatenate(codes)) if codes else np.zeros(0, np.int64)
    return np.stack([code // n, code % n], axis=1)


def bucket_pairs(keys: list[np.ndarray], members: np.ndarray, max_bucket: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (a, b) of the record indices in `members`, sorted by bucket (equal values in every
    array of `keys`) and within a bucket by index, so that a < b. Buckets up to `max_bucket` give all
    their pairs; larger ones (templated boilerplate) pair every member with its neighbours in index
    order and with the first, which keeps the work linear and still links the cluster. No Python
    loop runs per bucket: pairs are generated with index arithmetic. The Ray executor calls this on
    its band-bucket partitions, so both executors compare exactly the same pairs."""
    m = len(members)
    change = np.zeros(max(m - 1, 0), bool)
    for key in keys:
        change |= key[1:] != key[:-1]
    starts = np.flatnonzero(np.concatenate([[True], change])) if m else np.zeros(0, np.int64)
    sizes = np.diff(np.concatenate([starts, [m]]))
    # small buckets: the member at position p pairs with every later member of its bucket
    small = (sizes >= 2) & (sizes <= max_bucket)
    pos = _ranges(starts[small], sizes[small])
    later = np.repeat(starts[small] + sizes[small], sizes[small]) - pos - 1
    first = np.repeat(pos, later)
    second = first + 1 + _ranges(np.zeros(len(later), np.int64), later)
    # large buckets: consecutive members, and the first member with every member from the third on
    big = sizes > max_bucket
    chain = _ranges(starts[big], sizes[big] - 1)
    head = np.repeat(starts[big], sizes[big] - 2)
    tail = _ranges(starts[big] + 2, sizes[big] - 2)
    a = members[np.concatenate([first, chain, head])].astype(np.int64)
    b = members[np.concatenate([second, chain + 1, tail])].astype(np.int64)
    return a, b


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + l) for each (s, l), without a Python loop."""
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, np.int64)
    shift = np.repeat(np.asarray(starts, np.int64) - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(total, dtype=np.int64) + shift


def sorted_unique(x: np.ndarray) -> np.ndarray:
    # np.unique goes through a hash table on numpy 2.x, several times slower than sorting here
    x = np.sort(x)
    return x[np.concatenate([[True], x[1:] != x[:-1]])] if len(x) else x


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted unique hash arrays."""
    # What np.intersect1d(assume_unique=True) does, without its per-call checks (a third of its
    # time on the ~50-element sets that near-dedup compares a million times)
    both = np.concatenate((a, b))
    both.sort()
    inter = int(np.count_nonzero(both[1:] == both[:-1]))
    union = len(a) + len(b) - inter
    return inter / union if union else 0.0


def may_reach(size_a: np.ndarray, size_b: np.ndarray | int, threshold: float) -> np.ndarray:
    """Whether sets of these sizes can reach the Jaccard threshold at all: |A ∩ B| <= min and
    |A ∪ B| >= max, so sizes that differ too much cannot (a cheap test before the exact one)."""
    return np.minimum(size_a, size_b) >= threshold * np.maximum(size_a, size_b)


def clusters(n: int, edges: np.ndarray, accept: Callable[[int, int], bool] | None = None) -> np.ndarray:
    """Connected components: (n,) int64 root per node (the smallest index of its component).
    `accept(i, j)`, when given, is asked only about an edge whose ends are not yet connected: an edge
    inside a component changes nothing, so a cluster of k near-copies costs k - 1 checks, not k^2 / 2."""
    parent = np.arange(n)

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    for i, j in edges.tolist():
        ri, rj = find(i), find(j)
        if ri != rj and (accept is None or accept(i, j)):
            parent[max(ri, rj)] = min(ri, rj)
    roots = np.arange(n, dtype=np.int64)
    for x in np.unique(edges).tolist():
        roots[x] = find(x)
    return roots
