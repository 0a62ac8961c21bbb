"""LLaMA-Factory v1 records: `messages` whose `content` is a list of parts `{"type", "value"}` (type
`text`, `reasoning` or `tool_call`, the last with a JSON `{"name", "arguments"}` as value), each
message with an optional `loss_weight`, and `tools` beside them.

Reading goes through the messages reader, which knows these parts; writing gives one part per piece:
the reasoning, the text, then each tool call (value a JSON string, as LLaMA-Factory writes it).
"""

from __future__ import annotations

import json
from typing import Any

from tuneforge.io.formats import messages
from tuneforge.io.formats.fields import RecordView, add_back
from tuneforge.io.report import BadRecord
from tuneforge.types import Message, Sample

FIELDS = ("messages", "tools", "id")


def read(view: RecordView) -> list[Sample]:
    sample = Sample(
        messages=messages.parse_messages(view.items("messages", required=True) or [], "messages"),
        tools=messages.parse_tools(view.get("tools")),
        id=view.sample_id(),
    )
    sample.meta = view.meta()
    return [sample]


def is_record(record: dict[str, Any], column: str = "messages") -> bool:
    """True for a record whose messages use v1 parts (`value`) or carry a `loss_weight`."""
    turns = record.get(column)
    if not isinstance(turns, list):
        return False
    for m in turns:
        if isinstance(m, dict) and ("loss_weight" in m or (isinstance(m.get("content"), list) and any(
                isinstance(p, dict) and "value" in p for p in m["content"]))):
            return True
    return False


def write(sample: Sample) -> dict[str, Any]:
    if sample.kind != "chat":
        raise BadRecord(f"a {sample.kind} sample has no lf_v1 form", "write it --to tuneforge")
    record: dict[str, Any] = {"messages": [_message(m) for m in sample.messages]}
    if sample.tools:
        record["tools"] = json.dumps(sample.tools, ensure_ascii=False)
    return add_back(record, sample)


def _message(m: Message) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if m.reasoning is not None:
        parts.append({"type": "reasoning", "value": m.reasoning})
    if m.content or not m.tool_calls:
        parts.append({"type": "text", "value": m.content})
    parts += [{"type": "tool_call", "value": json.dumps({"name": n, "arguments": a}, ensure_ascii=False)}
              for _, n, a in m.calls()]
    out: dict[str, Any] = {"role": m.role, "content": parts}
    for key in ("name", "tool_call_id"):
        if getattr(m, key) is not None:
            out[key] = getattr(m, key)
    if m.loss_weight is not None:
        out["loss_weight"] = m.loss_weight
    return out
