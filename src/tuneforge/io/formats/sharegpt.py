"""ShareGPT records: `conversations` of `{"from", "value"}` turns, optional `system` and `tools`.

Tags follow LLaMA-Factory (human, gpt, system, function_call, observation) and can be renamed in
config (`tags`), as in its `dataset_info.json`. A `function_call` turn (JSON `{"name", "arguments"}`)
becomes an assistant turn with `tool_calls`; an `observation` becomes a `tool` turn. With `chosen`
and `rejected` turns beside the conversation (LLaMA-Factory's ranking data) it is a preference sample.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any

from tuneforge.errors import ConfigError
from tuneforge.io import nesting
from tuneforge.io.formats.fields import (
    RecordView,
    add_back,
    bare_tools,
    join_think,
    layout,
    parse_tools,
    split_think,
    wrong_type,
)
from tuneforge.io.formats.messages import parse_tool_calls
from tuneforge.io.report import BadRecord
from tuneforge.types import Message, Sample

FIELDS = ("conversations", "system", "tools", "chosen", "rejected", "id")
DEFAULT_TAGS = {
    "role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
    "system_tag": "system", "function_tag": "function_call", "observation_tag": "observation",
}
_ROLE_OF = {"user_tag": "user", "assistant_tag": "assistant", "system_tag": "system",
            "function_tag": "assistant", "observation_tag": "tool"}
_TAG_OF = {"user": "user_tag", "assistant": "assistant_tag", "system": "system_tag", "tool": "observation_tag"}


def resolve_tags(tags: Mapping[str, str]) -> dict[str, str]:
    for key in tags:
        if key not in DEFAULT_TAGS:
            close = difflib.get_close_matches(key, list(DEFAULT_TAGS), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(DEFAULT_TAGS)}"
            raise ConfigError(f"tags: unknown key '{key}'; {hint}")
    return {**DEFAULT_TAGS, **tags}


def read(view: RecordView, tags: Mapping[str, str]) -> list[Sample]:
    turns = view.items("conversations", required=True)
    messages, lay = [], {}
    system = view.text("system")
    if system:
        messages.append(Message("system", system))
        lay["system"] = "column"
    messages += [_message(turn, tags, f"conversations[{i}]") for i, turn in enumerate(turns)]
    if any(m.role == "system" for m in messages[1:]):
        raise BadRecord("misplaced system turn", "a system turn may only open the conversation")
    sample = Sample(messages=messages, tools=parse_tools(view.get("tools")), id=view.sample_id())
    if view.has("chosen") or view.has("rejected"):
        sample.chosen = _reply(view, "chosen", tags)
        sample.rejected = _reply(view, "rejected", tags)
    sample.meta = view.meta(lay)
    return [sample]


def _reply(view: RecordView, field: str, tags: Mapping[str, str]) -> list[Message]:
    value = view.get(field, required=True)
    turns = value if isinstance(value, list) else [value]
    return [_message(turn, tags, f"{field}[{i}]" if isinstance(value, list) else field)
            for i, turn in enumerate(turns)]


def _message(turn: Any, tags: Mapping[str, str], label: str) -> Message:
    if not isinstance(turn, dict):
        raise wrong_type(label, "a turn object", turn)
    tag, content = turn.get(tags["role_tag"]), turn.get(tags["content_tag"])
    if tag is None:
        raise BadRecord(f"missing required field '{tags['role_tag']}'", f"in {label}")
    if content is None:
        raise BadRecord(f"missing required field '{tags['content_tag']}'", f"in {label}")
    if not isinstance(content, str):
        raise wrong_type(f"'{tags['content_tag']}' in {label}", "a string", content)
    kind = next((k for k in _ROLE_OF if tags[k] == tag), None)
    if kind is None:
        known = ", ".join(tags[k] for k in _ROLE_OF)
        raise BadRecord("unknown role tag", f"'{tag}' in {label}; expected one of {known}")
    if kind == "assistant_tag":
        reasoning, content = split_think(content)
        return Message("assistant", content, reasoning=reasoning)
    if kind != "function_tag":
        return Message(_ROLE_OF[kind], content)
    try:
        calls = nesting.loads(content)
    except json.JSONDecodeError as e:
        raise BadRecord("malformed tool call", f"in {label}: not JSON ({e.msg})") from None
    return Message("assistant", "", tool_calls=parse_tool_calls(calls, label))


def write(sample: Sample) -> dict[str, Any]:
    if sample.kind == "text":
        raise BadRecord("a text sample has no sharegpt form", "write it --to text or tuneforge")
    turns = list(sample.messages)
    record: dict[str, Any] = {}
    if turns and turns[0].role == "system" and layout(sample).get("system") == "column":
        record["system"] = turns.pop(0).content
    record["conversations"] = [_turn(m) for m in turns]
    if sample.kind == "preference":
        # LLaMA-Factory's ranking data holds one reply each, as a single turn object.
        for name, reply in (("chosen", sample.chosen or []), ("rejected", sample.rejected or [])):
            record[name] = _turn(reply[0]) if len(reply) == 1 else [_turn(m) for m in reply]
    if sample.tools:
        record["tools"] = json.dumps(bare_tools(sample.tools), ensure_ascii=False)
    return add_back(record, sample)


def _turn(m: Message) -> dict[str, str]:
    if m.loss_weight is not None:
        raise BadRecord("no sharegpt form", "a turn with a loss_weight (write it --to lf_v1 or tuneforge)")
    if m.tool_calls:
        if m.content or m.reasoning is not None:
            raise BadRecord("no sharegpt form", "an assistant turn with both text (or reasoning) and tool calls")
        # Call ids have no place in sharegpt: the observations that follow answer the calls in order.
        named = [{"name": n, "arguments": a} for _, n, a in m.calls()]
        calls: Any = named[0] if len(named) == 1 else named
        return {"from": DEFAULT_TAGS["function_tag"], "value": json.dumps(calls, ensure_ascii=False)}
    return {"from": DEFAULT_TAGS[_TAG_OF[m.role]], "value": join_think(m.reasoning, m.content)}
