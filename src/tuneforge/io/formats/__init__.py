"""The record formats tuneforge reads and writes, by name.

Each format is one module with `FIELDS` (the names `columns` may remap), `read(view) -> samples`
and `write(sample) -> record`; a format whose records hold several samples also has `merge`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tuneforge.io.formats import alpaca, lf_v1, messages, preference, self_instruct, sharegpt, text
from tuneforge.io.formats.fields import RecordView
from tuneforge.types import Sample


@dataclass(frozen=True)
class Format:
    name: str
    fields: tuple[str, ...]
    read: Callable[[RecordView, Mapping[str, str]], list[Sample]]
    """(record view, sharegpt tags) -> the samples of one record."""
    write: Callable[[Sample], dict[str, Any]]
    summary: str
    merge: Callable[[dict[str, Any], dict[str, Any], Sample], bool] | None = None
    """Fold a written record into the previous one (several samples -> one record)."""


def _untagged(read: Callable[[RecordView], list[Sample]]) -> Callable[[RecordView, Mapping[str, str]], list[Sample]]:
    return lambda view, tags: read(view)


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("tuneforge", messages.FIELDS, _untagged(messages.read), messages.write_canonical,
           "canonical: OpenAI messages plus text, chosen, rejected, tools, task, id, meta"),
    Format("alpaca", alpaca.FIELDS, _untagged(alpaca.read), alpaca.write,
           "instruction, input, output (or chosen/rejected), optional system, history"),
    Format("sharegpt", sharegpt.FIELDS, sharegpt.read, sharegpt.write,
           "conversations of from/value turns (human, gpt, system, function_call, observation), tools"),
    Format("messages", messages.FIELDS, _untagged(messages.read), messages.write,
           "OpenAI messages (content as a string or text parts), tools"),
    Format("lf_v1", lf_v1.FIELDS, _untagged(lf_v1.read), lf_v1.write,
           "LLaMA-Factory v1: messages of {type, value} parts (text, reasoning, tool_call), loss_weight"),
    Format("text", text.FIELDS, _untagged(text.read), text.write, "raw text: a text field, or .txt lines"),
    Format("preference", preference.FIELDS, _untagged(preference.read), preference.write,
           "prompt/chosen/rejected (strings or messages), or chosen/rejected full conversations"),
    Format("self_instruct", self_instruct.FIELDS, _untagged(self_instruct.read), self_instruct.write,
           "instruction + instances[{input, output}], one sample per instance", self_instruct.merge),
)}
