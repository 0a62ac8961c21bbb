"""Which text of a `Sample` an operator looks at, and the few text helpers every operator shares.

Operators are told which *fields* to read: a message role (`system`, `user`, `assistant`, `tool`),
`text` (raw pre-training text), `chosen` / `rejected` (preference continuations), or `all`.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
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


# CJK ideographs, kana and hangul: scripts written without spaces between words.
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_RE = re.compile(f"[{CJK}]")
# A word is a run of letters/digits that are not CJK, or one CJK character: Chinese has no spaces, so
# counting characters is the standard stand-in for words there.
WORD_RE = re.compile(f"[{CJK}]|[^\\W_{CJK}]+(?:['’][^\\W_{CJK}]+)*")


def words(text: str) -> list[str]:
    return WORD_RE.findall(text)


def cjk_ratio(text: str) -> float:
    """Share of CJK characters among the non-space characters."""
    n = len(text) - text.count(" ") - text.count("\n")
    return len(_CJK_RE.findall(text)) / n if n > 0 else 0.0


def is_cjk(text: str) -> bool:
    return cjk_ratio(text) >= 0.3


_NON_WORD = re.compile(r"[\W_]+")


def normalise_for_match(text: str) -> str:
    """Lower-case, punctuation and spacing removed to one space: two texts that differ only there
    compare equal. Used by exact dedup and by the answer-repeats-question check."""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()
