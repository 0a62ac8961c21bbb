"""A persistent retrieval index: a directory of plain files that any tool can read, no pickle.

    meta.json        settings (embedder, tokenizer, chunk size/overlap), documents, counts
    chunks.jsonl     one chunk per line: id, source, start, end, text
    embeddings.npy   (n_chunks, d) float32 unit vectors
    bm25.json        per-chunk term counts (idf is recomputed on load)

Search is exact (a matrix-vector product: knowledge bases for a task fit easily); `hybrid` fuses
the dense and the BM25 rankings by reciprocal rank fusion (Cormack et al. 2009, k = 60), which needs
no score calibration between the two.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuneforge.constants import EMBEDDING_MODEL
from tuneforge.errors import TuneforgeError
from tuneforge.rag.bm25 import BM25
from tuneforge.rag.chunking import Chunk, chunk_documents, read_documents
from tuneforge.rag.embedding import embed

FORMAT_VERSION = 1
RRF_K = 60


@dataclass
class Hit:
    chunk: Chunk
    score: float


class Index:
    def __init__(self, chunks: list[Chunk], embeddings: np.ndarray, bm25: BM25, meta: dict):
        self.chunks, self.embeddings, self.bm25, self.meta = chunks, embeddings, bm25, meta

    def search(self, query: str, top_k: int = 3, retrieval: str = "hybrid") -> list[Hit]:
        if not self.chunks:
            return []
        rankings = []
        if retrieval in ("dense", "hybrid"):
            sim = self.embeddings @ embed([query], self.meta["embedder"])[0]  # (n,)
            rankings.append((np.argsort(-sim, kind="stable"), sim))
        if retrieval in ("bm25", "hybrid"):
            scores = np.asarray(self.bm25.scores(query))
            order = np.argsort(-scores, kind="stable")
            rankings.append((order[scores[order] > 0], scores))  # a chunk sharing no term is not ranked
        if retrieval not in ("dense", "bm25", "hybrid"):
            raise TuneforgeError(f"unknown retrieval '{retrieval}' (hybrid, dense, bm25)")
        if len(rankings) == 1:
            order, scores = rankings[0]
            return [Hit(self.chunks[i], float(scores[i])) for i in order[:top_k]]
        fused = np.zeros(len(self.chunks))
        for order, _ in rankings:
            fused[order] += 1.0 / (RRF_K + 1 + np.arange(len(order)))
        order = np.argsort(-fused, kind="stable")
        return [Hit(self.chunks[i], float(fused[i])) for i in order[:top_k]]

    def save(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "chunks.jsonl").write_text("".join(json.dumps(c.to_dict(), ensure_ascii=False) + "\n"
                                                  for c in self.chunks), encoding="utf-8")
        np.save(out / "embeddings.npy", self.embeddings)
        (out / "bm25.json").write_text(json.dumps({"term_counts": self.bm25.term_counts}, ensure_ascii=False),
                                       encoding="utf-8")
        (out / "meta.json").write_text(json.dumps(self.meta, indent=2, ensure_ascii=False), encoding="utf-8")


def build_index(paths: list[str], tokenizer, *, chunk_tokens: int = 128, overlap: int = 32,
                embedder: str = EMBEDDING_MODEL, on_progress: Callable[[str, int, int], None] | None = None) -> Index:
    """`on_progress("chunking", documents done, documents)`, then `("embedding", chunks done, chunks)`."""
    docs = read_documents(paths)
    if not docs:
        raise TuneforgeError(f"no text found in {', '.join(paths)}")
    chunks = chunk_documents(docs, tokenizer, chunk_tokens, overlap,
                             on_progress=(lambda done, total: on_progress("chunking", done, total))
                             if on_progress else None)
    meta = {"format_version": FORMAT_VERSION, "embedder": embedder, "tokenizer": tokenizer.name_or_path,
            "chunk_tokens": chunk_tokens, "chunk_overlap": overlap, "documents": [d.source for d in docs],
            "chunks": len(chunks)}
    embedded = (lambda done, total: on_progress("embedding", done, total)) if on_progress else None
    vectors = embed([c.text for c in chunks], embedder, on_progress=embedded)
    return Index(chunks, vectors, BM25.from_texts([c.text for c in chunks]), meta)


def load_index(path: str | Path) -> Index:
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        chunks = [Chunk(**json.loads(line))
                  for line in (path / "chunks.jsonl").read_text(encoding="utf-8").splitlines()]
        embeddings = np.load(path / "embeddings.npy", allow_pickle=False)
        term_counts = json.loads((path / "bm25.json").read_text(encoding="utf-8"))["term_counts"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise TuneforgeError(f"{path}: not a readable index written by `tuneforge rag index` ({e})") from None
    if meta.get("format_version") != FORMAT_VERSION or not len(chunks) == len(embeddings) == len(term_counts):
        raise TuneforgeError(f"{path}: index files disagree (version {meta.get('format_version')}, "
                             f"{len(chunks)} chunks, {len(embeddings)} vectors); rebuild it")
    return Index(chunks, embeddings, BM25(term_counts), meta)
