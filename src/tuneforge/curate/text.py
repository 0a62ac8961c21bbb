"""Which text of a `Sample` an operator looks at (words, CJK and normalising are in `tuneforge.text`).

Operators are told which *fields* to read: a message role (`system`, `user`, `assistant`, `tool`),
`text` (raw pre-training text), `chosen` / `rejected` (preference continuations), or `all`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Literal

from tuneforge.types import Message, Sample

Field = Literal["all", "system", "user", "assistant", "tool", "text", "chosen", "rejected", "answer"]
"""`answer` means what the model is trained to produce: assistant turns, `chosen` and `text`."""

ALL_FIELDS = frozenset({"system", "user", "assistant", "tool", "text", "chosen", "rejected"})
_ANSWER = frozenset({"assistant", "chosen", "text"})


def resolve_fields(fields: Iterable[str]) -> frozenset[str]:
    out: set[str] = set()
    for f in fields:
        out |= ALL_FIELDS if f == "all" else _ANSWER if f == "answer" else {f}
    return frozenset(out)


def field_texts(sample: Sample, fields: frozenset[str]) -> list[tuple[str, str]]:
    """(field, content) pairs of the selected fields, in the order they appear in the sample."""
    out = [(m.role, m.content) for m in sample.messages if m.role in fields]
    if sample.text is not None and "text" in fields:
        out.append(("text", sample.text))
    for key in ("chosen", "rejected"):
        turns = getattr(sample, key)
        if turns and key in fields:
            out.extend((key, m.content) for m in turns)
    return out


def joined_text(sample: Sample, fields: frozenset[str]) -> str:
    return "\n".join(t for _, t in field_texts(sample, fields))


def map_fields(sample: Sample, fields: frozenset[str], fn: Callable[[str], str]) -> Sample:
    """Apply `fn` to every selected content; returns `sample` itself when nothing changed, so the
    runner can tell a modified record from a kept one by identity."""

    def turns(msgs: list[Message] | None, selected: Callable[[Message], bool]) -> list[Message] | None:
        if msgs is None:
            return None
        new = [dataclasses.replace(m, content=fn(m.content)) if selected(m) else m for m in msgs]
        return msgs if all(a.content == b.content for a, b in zip(msgs, new)) else new

    messages = turns(sample.messages, lambda m: m.role in fields)
    chosen = turns(sample.chosen, lambda m: "chosen" in fields)
    rejected = turns(sample.rejected, lambda m: "rejected" in fields)
    text = fn(sample.text) if sample.text is not None and "text" in fields else sample.text
    if (messages is sample.messages and chosen is sample.chosen and rejected is sample.rejected
            and text == sample.text):
        return sample
    return dataclasses.replace(sample, messages=messages or [], chosen=chosen, rejected=rejected,
                               text=text, meta=dict(sample.meta))


def question_answer(sample: Sample) -> tuple[str, str]:
    """The last user turn and what answers it (the last assistant turn, or the chosen reply)."""
    users = [m.content for m in sample.messages if m.role == "user"]
    if sample.chosen:
        answer = "\n".join(m.content for m in sample.chosen)
    else:
        answers = [m.content for m in sample.messages if m.role == "assistant"]
        answer = answers[-1] if answers else ""
    return (users[-1] if users else ""), answer

