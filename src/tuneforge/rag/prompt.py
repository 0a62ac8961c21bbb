"""Retrieved chunks into the question's prompt."""

from __future__ import annotations

import dataclasses

from tuneforge.rag.index import Hit
from tuneforge.types import Message

INSTRUCTION = ("Answer the question using the context below. If the context does not contain the answer, "
               "say that you do not know.")


def rag_prompt(messages: list[Message], hits: list[Hit]) -> list[Message]:
    """The conversation with its last user turn prefixed by the numbered context chunks."""
    context = "\n\n".join(f"[{i}] {h.chunk.text}" for i, h in enumerate(hits, 1))
    last = max(i for i, m in enumerate(messages) if m.role == "user")
    question = messages[last]
    grounded = f"{INSTRUCTION}\n\nContext:\n{context}\n\nQuestion: {question.content}"
    return [*messages[:last], dataclasses.replace(question, content=grounded), *messages[last + 1:]]
