"""Retrieval-augmented generation: chunk documents, embed and index them on disk, retrieve (dense,
BM25 or hybrid) and put the best chunks into the prompt.

    index = build_index(["docs/"], tokenizer); index.save(Path("kb"))
    hits = load_index("kb").search("How heavy is the Zephyr X2?", top_k=3)
    messages = rag_prompt(question_messages, hits)
"""

from tuneforge.rag.index import Hit, Index, build_index, load_index
from tuneforge.rag.prompt import rag_prompt

__all__ = ["Hit", "Index", "build_index", "load_index", "rag_prompt"]
