"""Deduplicators (global operators): exact (normalised hash) and near-duplicate (MinHash LSH with
exact-Jaccard verification). Each keeps one representative per cluster by `keep:` rule.

Records from every input of a recipe flow through one run, so dedup is cross-dataset by default.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import model_validator

from tuneforge.curate import minhash as mh
from tuneforge.curate.base import OpConfig, register
from tuneforge.curate.text import joined_text, resolve_fields
from tuneforge.text import normalise
from tuneforge.types import Sample

Keep = Literal["first", "longest", "score"]


class DedupConfig(OpConfig):
    keep: Keep = "first"
    """Which record of a duplicate cluster stays: the first seen, the longest, or the highest `meta[score_key]`."""
    score_key: str = "score"
    is_global = True


@dataclass
class KeepFacts:
    """Per-record facts every deduplicator keeps for the `keep` rule."""

    lengths: np.ndarray
    scores: np.ndarray

    @staticmethod
    def concat(parts: list[KeepFacts]) -> KeepFacts:
        return KeepFacts(np.concatenate([p.lengths for p in parts]), np.concatenate([p.scores for p in parts]))


def keep_facts(samples: list[Sample], texts: list[str], score_key: str) -> KeepFacts:
    scores = [s.meta.get(score_key) for s in samples]
    return KeepFacts(np.array([len(t) for t in texts], np.int64),
                 np.array([float(v) if isinstance(v, (int, float)) else -np.inf for v in scores]))


def representatives(roots: np.ndarray, base: KeepFacts, keep: Keep) -> np.ndarray:
    """dup_of (-1 for kept) given each record's cluster root, choosing the winner by rule;
    ties go to the earliest record, so the result does not depend on worker count."""
    n = len(roots)
    if keep == "first":
        best = roots
    else:
        value = base.lengths if keep == "longest" else base.scores
        # sort by (root, -value, index); the first row of each root is its winner
        order = np.lexsort((np.arange(n), -value, roots))
        first = np.concatenate([[True], roots[order][1:] != roots[order][:-1]])
        winner = np.empty(n, np.int64)
        winner[roots[order][first]] = order[first]
        best = winner[roots]
    return np.where(best == np.arange(n), -1, best)


# ---------------------------------------------------------------- exact


@register
class ExactDedup(DedupConfig):
    """Drop records whose selected text is identical after normalisation (NFKC, case, punctuation
    and spacing ignored), keeping one per group."""

    op: Literal["exact_dedup"] = "exact_dedup"
    normalise: bool = True

    def build(self) -> _ExactDedup:
        return _ExactDedup(self)


class _ExactDedup:
    reason = "exact_duplicate"

    def __init__(self, cfg: ExactDedup):
        self.cfg, self.name, self.fields = cfg, cfg.label, resolve_fields(cfg.fields)

    def keys(self, samples: list[Sample]) -> tuple[np.ndarray, KeepFacts]:
        texts = [joined_text(s, self.fields) for s in samples]
        norm = [normalise(t) if self.cfg.normalise else t for t in texts]
        digests = [int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little") for t in norm]
        return np.array(digests, np.uint64), keep_facts(samples, texts, self.cfg.score_key)

    def decide(self, keys: list[tuple[np.ndarray, KeepFacts]]) -> np.ndarray:
        digests = np.concatenate([k[0] for k in keys])
        base = KeepFacts.concat([k[1] for k in keys])
        _, first, inverse = np.unique(digests, return_index=True, return_inverse=True)
        return representatives(first[inverse].astype(np.int64), base, self.cfg.keep)


# ---------------------------------------------------------------- near (MinHash LSH)


class MinHashParams(OpConfig):
    """Shingling, MinHash and LSH banding, shared by near-dedup and reference matching."""

    threshold: float = 0.5
    """Exact Jaccard similarity of the shingle sets at or above which two records are duplicates."""
    tokens: mh.Tokens = "auto"
    word_ngram: int = 3
    char_ngram: int = 3
    num_perm: int = 128
    bands: int = 42
    rows: int = 3
    """42 bands of 3 rows find a pair at Jaccard 0.5 with probability 0.996 (0.7: 1 - 1e-9); the
    exact check then rejects the extra candidates, so recall is bought with a little CPU. 0.5 on
    word trigrams is the default because SFT records are short: one edited word in an eight-word
    instruction already changes three of its six trigrams."""
    seed: int = 1

    @model_validator(mode="after")
    def _check(self) -> MinHashParams:
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands * rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        if not 0 < self.threshold <= 1:
            raise ValueError("threshold must be in (0, 1]")
        return self

    def lsh(self) -> mh.LSH:
        return mh.LSH(self.word_ngram, self.char_ngram, self.tokens, self.bands, self.rows,
                      *mh.permutations(self.num_perm, self.seed))


@register
class MinHashDedup(DedupConfig, MinHashParams):
    """Near-duplicates: MinHash over word n-grams (character n-grams for Chinese), LSH banding for
    candidates, exact Jaccard of the shingle sets to confirm, connected components as clusters."""

    op: Literal["minhash_dedup"] = "minhash_dedup"

    def build(self) -> _MinHashDedup:
        return _MinHashDedup(self)


@dataclass
class NearKeys:
    bands: np.ndarray  # (n, bands) uint64
    shingles: mh.Shingles
    base: KeepFacts


class _MinHashDedup:
    reason = "near_duplicate"

    def __init__(self, cfg: MinHashDedup):
        self.cfg, self.name, self.fields = cfg, cfg.label, resolve_fields(cfg.fields)
        self.lsh = cfg.lsh()

    def keys(self, samples: list[Sample]) -> NearKeys:
        texts = [joined_text(s, self.fields) for s in samples]
        sh, bands = self.lsh.sketch(texts)
        return NearKeys(bands, sh, keep_facts(samples, texts, self.cfg.score_key))

    def decide(self, keys: list[NearKeys]) -> np.ndarray:
        return near_duplicates(keys, self.cfg.threshold, self.cfg.keep)


def merge(keys: list[NearKeys]) -> NearKeys:
    sizes = [k.shingles.offsets[-1] for k in keys]
    shift = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    offsets = np.concatenate([[0]] + [k.shingles.offsets[1:] + s for k, s in zip(keys, shift)])
    return NearKeys(np.concatenate([k.bands for k in keys]),
                    mh.Shingles(np.concatenate([k.shingles.hashes for k in keys]), offsets.astype(np.int64)),
                    KeepFacts.concat([k.base for k in keys]))


def near_duplicates(keys: list[NearKeys], threshold: float, keep: Keep) -> np.ndarray:
    """Clusters of LSH candidates confirmed by the exact Jaccard of their shingle sets."""
    k = merge(keys)
    sizes = k.shingles.sizes()
    pairs = mh.candidate_pairs(k.bands, sizes > 0)
    pairs = pairs[mh.may_reach(sizes[pairs[:, 0]], sizes[pairs[:, 1]], threshold)]
    sh = k.shingles
    roots = mh.clusters(len(sh), pairs, lambda i, j: mh.jaccard(sh.doc(i), sh.doc(j)) >= threshold)
    return representatives(roots, k.base, keep)
