"""Alpaca records: `instruction`, `input`, `output`, optional `system` and `history` ([[q, a], ...]).

The user turn is `instruction + "\\n" + input`, as LLaMA-Factory builds it. `meta["layout"]["input_len"]`
remembers where `input` starts, so writing back gives the same two fields. With `chosen`/`rejected`
strings instead of `output` (LLaMA-Factory's ranking data) the record is a preference sample.
"""

from __future__ import annotations

import json
from typing import Any

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
from tuneforge.io.report import BadRecord
from tuneforge.types import Message, Sample

FIELDS = ("instruction", "input", "output", "system", "history", "chosen", "rejected", "tools", "id")


def user_content(instruction: str, query: str) -> str:
    return "\n".join(part for part in (instruction, query) if part)


def split_user(content: str, input_len: int | None) -> tuple[str, str]:
    """Undo `user_content`: (instruction, input)."""
    if not input_len or input_len > len(content):
        return content, ""
    cut = len(content) - input_len
    if cut == 0:
        return "", content
    if content[cut - 1] != "\n":  # edited since it was read: the boundary is gone, keep it whole
        return content, ""
    return content[:cut - 1], content[cut:]


def read(view: RecordView) -> list[Sample]:
    instruction = view.text("instruction", required=True)
    query = view.text("input") or ""
    system = view.text("system")
    messages = [Message("system", system)] if system else []
    for i, turn in enumerate(view.items("history") or []):
        if not (isinstance(turn, list) and len(turn) == 2 and all(isinstance(t, str) for t in turn)):
            raise wrong_type(f"'history[{i}]'", "a [question, answer] pair of strings", turn)
        messages += [Message("user", turn[0]), _assistant(turn[1])]
    messages.append(Message("user", user_content(instruction, query)))
    tools = parse_tools(view.get("tools"))
    sample = Sample(messages=messages, tools=tools, id=view.sample_id())
    if view.has("chosen") or view.has("rejected"):
        sample.chosen = [_assistant(view.text("chosen", required=True) or "")]
        sample.rejected = [_assistant(view.text("rejected", required=True) or "")]
    else:
        messages.append(_assistant(view.text("output", required=True) or ""))
    sample.meta = view.meta({"input_len": len(query)} if query else None)
    return [sample]


def _assistant(text: str) -> Message:
    reasoning, content = split_think(text)
    return Message("assistant", content, reasoning=reasoning)


def write(sample: Sample) -> dict[str, Any]:
    if sample.kind == "text":
        raise BadRecord("a text sample has no alpaca form", "write it --to text or tuneforge")
    turns = list(sample.messages)
    system = turns.pop(0).content if turns and turns[0].role == "system" else None
    output = None
    if sample.kind == "chat":
        if not turns or turns[-1].role != "assistant":
            raise BadRecord("conversation does not end with an assistant turn")
        output = _reply_text(turns.pop())
    history, last = pairs(turns)
    instruction, query = split_user(last.content, layout(sample).get("input_len"))
    record: dict[str, Any] = {"instruction": instruction, "input": query}
    if sample.kind == "chat":
        record["output"] = output
    else:
        record["chosen"] = single_reply(sample.chosen, "chosen")
        record["rejected"] = single_reply(sample.rejected, "rejected")
    if system is not None:
        record["system"] = system
    if history:
        record["history"] = history
    if sample.tools:
        record["tools"] = json.dumps(bare_tools(sample.tools), ensure_ascii=False)
    return add_back(record, sample)


def pairs(turns: list[Message]) -> tuple[list[list[str]], Message]:
    """[[user, assistant], ...] before the final user turn, and that turn; alpaca has nothing else."""
    roles = [m.role for m in turns]
    if (not turns or any(m.tool_calls for m in turns)
            or roles != ["user", "assistant"] * (len(turns) // 2) + ["user"]):
        raise BadRecord("no alpaca form", "alpaca holds alternating user/assistant turns without tool calls; "
                                          "write it --to sharegpt or messages")
    if any(m.loss_weight is not None for m in turns):
        raise BadRecord("no alpaca form", "a turn with a loss_weight (write it --to lf_v1 or tuneforge)")
    return [[turns[i].content, _reply_text(turns[i + 1])] for i in range(0, len(turns) - 1, 2)], turns[-1]


def _reply_text(m: Message) -> str:
    if m.loss_weight is not None:
        raise BadRecord("no alpaca form", "a turn with a loss_weight (write it --to lf_v1 or tuneforge)")
    return join_think(m.reasoning, m.content)


def single_reply(reply: list[Message] | None, name: str) -> str:
    if not reply or len(reply) != 1 or reply[0].role != "assistant" or reply[0].tool_calls:
        raise BadRecord("no alpaca form", f"'{name}' must be one assistant reply")
    return _reply_text(reply[0])
