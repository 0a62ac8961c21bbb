"""OpenAI `messages` records, and our canonical form (`Sample.to_dict`), which extends them.

Both read through one function: the canonical form is OpenAI messages plus `text`, `chosen`,
`rejected`, `task`, `id` and `meta`. They differ in writing: `tuneforge` keeps everything (meta
included), `messages` writes what OpenAI-style tools read (tool calls and tools in OpenAI's shape).
"""

from __future__ import annotations

import json
from typing import Any

from tuneforge.io import nesting
from tuneforge.io.formats.fields import RecordView, add_back, parse_tools, split_think, wrong_type
from tuneforge.io.report import BadRecord
from tuneforge.types import ROLES, Message, Sample, normalize_tool_call

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
    content = d.get("content")
    text, reasoning, part_calls = _content_parts(content, label)
    tool_calls = parse_tool_calls(d.get("tool_calls"), label) + part_calls
    if content is None and not tool_calls:
        raise BadRecord("missing required field 'content'", f"in {label}")
    for key in ("name", "tool_call_id"):
        if d.get(key) is not None and not isinstance(d[key], str):
            raise wrong_type(f"'{key}' in {label}", "a string", d[key])
    for key in ("reasoning_content", "reasoning"):  # vLLM / DeepSeek spell it reasoning_content
        if d.get(key) is not None:
            if not isinstance(d[key], str):
                raise wrong_type(f"'{key}' in {label}", "a string", d[key])
            reasoning = d[key] if reasoning is None else f"{reasoning}\n{d[key]}"
    if reasoning is None and role == "assistant":
        reasoning, text = split_think(text)
    return Message(role=role, content=text, tool_calls=tool_calls or None, name=d.get("name"),
                   tool_call_id=d.get("tool_call_id"), reasoning=reasoning,
                   loss_weight=_loss_weight(d.get("loss_weight"), label))


def _loss_weight(value: Any, label: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise BadRecord("bad loss_weight", f"in {label}: expected a number >= 0, got {value!r}")
    return float(value)


def _content_parts(content: Any, label: str) -> tuple[str, str | None, list[dict[str, Any]]]:
    """`(text, reasoning, tool calls)` of a message's content: a string, OpenAI text parts
    `{"type": "text", "text"}`, or LLaMA-Factory v1 parts `{"type": "text" | "reasoning" | "tool_call", "value"}`."""
    if content is None or isinstance(content, str):
        return content or "", None, []
    if not isinstance(content, list):
        raise wrong_type(f"'content' in {label}", "a string or a list of parts", content)
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        where = f"{label}.content[{i}]"
        if not isinstance(part, dict):
            raise wrong_type(where, "a content part object", part)
        kind = part.get("type")
        key = "value" if "value" in part else "text"
        value = part.get(key)
        if kind not in _PART_KINDS or (kind != "text" and key != "value"):
            raise BadRecord("unsupported content part", f"type {kind!r} in {where}; tuneforge reads text parts "
                            "({type: text, text}) and LLaMA-Factory v1 parts ({type: text, reasoning or "
                            "tool_call, value})")
        if kind == "tool_call":
            if isinstance(value, str):
                try:
                    value = nesting.loads(value)
                except json.JSONDecodeError as e:
                    raise BadRecord("malformed tool call", f"in {where}: value is not JSON ({e.msg})") from None
            calls += parse_tool_calls(value, where)
        elif not isinstance(value, str):
            raise BadRecord("malformed content part", f"in {where}: a {kind} part needs a string '{key}', got "
                            f"{type(value).__name__ if value is not None else 'none'}")
        else:
            (texts if kind == "text" else reasoning).append(value)
    # Text parts are joined with newlines, as vLLM and HF chat templates render a list of text parts.
    return "\n".join(texts), "\n".join(reasoning) if reasoning else None, calls


_PART_KINDS = ("text", "reasoning", "tool_call")


def parse_tool_calls(value: Any, label: str) -> list[dict[str, Any]]:
    """Tool calls in our shape (OpenAI's, arguments parsed; see `Message.tool_calls`), from ours,
    OpenAI's `{"id", "type": "function", "function": {"name", "arguments": "<JSON string>"}}` or
    `{"name", "arguments"}`."""
    if value is None:
        return []
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise wrong_type(f"'tool_calls' in {label}", "a list", value)
    calls = []
    for call in value:
        fn = call.get("function", call) if isinstance(call, dict) else call
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise BadRecord("malformed tool call", f"in {label}: expected an object with a 'name'")
        arguments = fn.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = nesting.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as e:
                raise BadRecord("malformed tool call", f"in {label}: arguments are not JSON ({e.msg})") from None
        call_id = call.get("id")
        if call_id is not None and not isinstance(call_id, str):
            raise wrong_type(f"a tool call's 'id' in {label}", "a string", call_id)
        calls.append(normalize_tool_call({"id": call_id, "function": {"name": fn["name"], "arguments": arguments}}))
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
        record["tools"] = sample.tools
    return add_back(record, sample)


def openai_message(m: Message) -> dict[str, Any]:
    """OpenAI's spelling: JSON-string arguments, the reasoning trace as `reasoning_content`
    (vLLM's and DeepSeek's name); `loss_weight` kept under its own name."""
    out = m.to_dict()
    if m.tool_calls:
        out["tool_calls"] = [{**({"id": i} if i is not None else {}), "type": "function", "function": {
            "name": n, "arguments": a if isinstance(a, str) else json.dumps(a, ensure_ascii=False)}}
            for i, n, a in m.calls()]
    if m.reasoning is not None:
        out["reasoning_content"] = out.pop("reasoning")
    return out
