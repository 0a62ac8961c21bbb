"""OpenAI `messages` records, and our canonical form (`Sample.to_dict`), which extends them.

Both read through one function: the canonical form is OpenAI messages plus `text`, `chosen`,
`rejected`, `task`, `id` and `meta`. They differ in writing: `tuneforge` keeps everything (meta
included), `messages` writes what OpenAI-style tools read (tool calls and tools in OpenAI's shape).
"""

from __future__ import annotations

import json
from typing import Any

from tuneforge.io import nesting
from tuneforge.io.formats.fields import RecordView, add_back, parse_tools, wrong_type
from tuneforge.io.report import BadRecord
from tuneforge.types import ROLES, Message, Sample

FIELDS = ("messages", "text", "chosen", "rejected", "tools", "task", "id", "meta")


def read(view: RecordView) -> list[Sample]:
    meta = view.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise wrong_type("'meta'", "an object", meta)
    text = view.text("text")
    sample = Sample(
        messages=parse_messages(view.items("messages", required=text is None) or [], "messages"),
        text=text,
        chosen=_optional_messages(view, "chosen"),
        rejected=_optional_messages(view, "rejected"),
        tools=parse_tools(view.get("tools")),
        task=view.text("task"),
        id=view.sample_id(),
        meta={**view.meta(), **(meta or {})},
    )
    return [sample]


def _optional_messages(view: RecordView, field: str) -> list[Message] | None:
    value = view.items(field)
    return None if value is None else parse_messages(value, field)


def parse_messages(items: list[Any], label: str) -> list[Message]:
    return [parse_message(m, f"{label}[{i}]") for i, m in enumerate(items)]


def parse_message(d: Any, label: str) -> Message:
    if not isinstance(d, dict):
        raise wrong_type(label, "a message object", d)
    role = d.get("role")
    if role is None:
        raise BadRecord("missing required field 'role'", f"in {label}")
    if role not in ROLES:
        raise BadRecord("unknown role", f"'{role}' in {label}; expected one of {', '.join(ROLES)}")
    tool_calls = parse_tool_calls(d.get("tool_calls"), label)
    content = d.get("content")
    if content is None and not tool_calls:
        raise BadRecord("missing required field 'content'", f"in {label}")
    name = d.get("name")
    if name is not None and not isinstance(name, str):
        raise wrong_type(f"'name' in {label}", "a string", name)
    return Message(role=role, content=_content_text(content, label), tool_calls=tool_calls or None, name=name)


def _content_text(content: Any, label: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise wrong_type(f"'content' in {label}", "a string or a list of parts", content)
    texts = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise BadRecord("unsupported content part", f"'{kind}' in {label}; only text parts are read")
        texts.append(part["text"])
    # Joined with newlines, as vLLM and HF chat templates render a list of text parts.
    return "\n".join(texts)


def parse_tool_calls(value: Any, label: str) -> list[dict[str, Any]]:
    """Tool calls in our shape `{"name", "arguments": {...}}`, from ours or OpenAI's
    `{"type": "function", "function": {"name", "arguments": "<JSON string>"}}`."""
    if value is None:
        return []
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise wrong_type(f"'tool_calls' in {label}", "a list", value)
    calls = []
    for call in value:
        call = call.get("function", call) if isinstance(call, dict) else call
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise BadRecord("malformed tool call", f"in {label}: expected an object with a 'name'")
        arguments = call.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = nesting.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as e:
                raise BadRecord("malformed tool call", f"in {label}: arguments are not JSON ({e.msg})") from None
        calls.append({"name": call["name"], "arguments": arguments})
    return calls


def write_canonical(sample: Sample) -> dict[str, Any]:
    return sample.to_dict()


def write(sample: Sample) -> dict[str, Any]:
    if sample.kind == "text":
        raise BadRecord("a text sample has no messages form", "write it --to text or tuneforge")
    record: dict[str, Any] = {"messages": [openai_message(m) for m in sample.messages]}
    if sample.kind == "preference":
        record["chosen"] = [openai_message(m) for m in sample.chosen or []]
        record["rejected"] = [openai_message(m) for m in sample.rejected or []]
    if sample.tools:
        record["tools"] = [{"type": "function", "function": t} for t in sample.tools]
    return add_back(record, sample)


def openai_message(m: Message) -> dict[str, Any]:
    out = m.to_dict()
    if m.tool_calls:
        out["tool_calls"] = [{"type": "function", "function": {
            "name": c["name"], "arguments": json.dumps(c.get("arguments", {}), ensure_ascii=False)}}
            for c in m.tool_calls]
    return out
