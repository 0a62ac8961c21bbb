"""Preference pairs in the two common shapes (TRL's, HH-RLHF's):

- `prompt` / `chosen` / `rejected`: each a string (user prompt, assistant replies) or a message list;
- `chosen` / `rejected` only: two full conversations sharing a prefix, which is the prompt.

`meta["layout"]["style"]` (`strings`, `lists`, `full`) remembers the shape for writing back.
ShareGPT- and alpaca-style pairs are read by those formats.
"""

from __future__ import annotations

from typing import Any

from tuneforge.io.formats.fields import RecordView, add_back, layout, parse_tools, wrong_type
from tuneforge.io.formats.messages import openai_message, parse_messages
from tuneforge.io.report import BadRecord
from tuneforge.types import Message, Sample

FIELDS = ("prompt", "chosen", "rejected", "tools", "id")


def read(view: RecordView) -> list[Sample]:
    prompt = view.get("prompt")
    chosen = _side(view.get("chosen", required=True), "chosen")
    rejected = _side(view.get("rejected", required=True), "rejected")
    if prompt is None:
        # Full conversations: the longest common prefix is the prompt, the rest are the replies.
        n = 0
        while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
            n += 1
        messages, chosen, rejected, style = chosen[:n], chosen[n:], rejected[n:], "full"
    elif isinstance(prompt, str):
        messages, style = [Message("user", prompt)], "strings"
    elif isinstance(prompt, list):
        messages, style = parse_messages(prompt, "prompt"), "lists"
    else:
        raise wrong_type("'prompt'", "a string or a list of messages", prompt)
    sample = Sample(messages=messages, chosen=chosen, rejected=rejected,
                    tools=parse_tools(view.get("tools")), id=view.sample_id())
    sample.meta = view.meta({"style": style})
    return [sample]


def _side(value: Any, name: str) -> list[Message]:
    if isinstance(value, str):
        return [Message("assistant", value)]
    if isinstance(value, list):
        return parse_messages(value, name)
    raise wrong_type(f"'{name}'", "a string or a list of messages", value)


def write(sample: Sample) -> dict[str, Any]:
    if sample.kind != "preference":
        raise BadRecord(f"a {sample.kind} sample has no preference form", "write it --to tuneforge")
    chosen, rejected = sample.chosen or [], sample.rejected or []
    style = layout(sample).get("style") or ("strings" if _as_strings(sample) else "lists")
    if style == "strings" and _as_strings(sample):
        record: dict[str, Any] = {"prompt": sample.messages[0].content,
                                  "chosen": chosen[0].content, "rejected": rejected[0].content}
    elif style == "full":
        record = {"chosen": [openai_message(m) for m in sample.messages + chosen],
                  "rejected": [openai_message(m) for m in sample.messages + rejected]}
    else:
        record = {"prompt": [openai_message(m) for m in sample.messages],
                  "chosen": [openai_message(m) for m in chosen],
                  "rejected": [openai_message(m) for m in rejected]}
    if sample.tools:
        record["tools"] = sample.tools
    return add_back(record, sample)


def _as_strings(sample: Sample) -> bool:
    def plain(ms: list[Message] | None, role: str) -> bool:
        return bool(ms) and len(ms) == 1 and ms[0].role == role and not ms[0].tool_calls

    return plain(sample.messages, "user") and plain(sample.chosen, "assistant") and plain(sample.rejected, "assistant")
