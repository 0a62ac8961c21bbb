"""Export reads what training and serving tests build: the same tiny base and trained LoRA runs."""

from tests.serve.conftest import adapters, one_thread, tiny_dir, tokenizer  # noqa: F401  (pytest fixtures)
