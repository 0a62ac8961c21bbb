"""Does a rendering carry the whole conversation? A template never drops content silently.

A template that ignores `tool_calls` renders a function-call turn as an empty assistant turn (whose
end token is then trained), one that ignores `tools` shows the model no tool list: the round-trip
check passes, since such a rendering is self-consistent. So after rendering, every message's content,
every tool call's name and argument values, and every tool definition's name must appear in the
text; a sample whose rendering drops one is rejected with the reason saying which.

`template: auto` probes the tokenizer's own template once with a conversation holding a tool and a
call; when it cannot carry what the data holds, `resolve_template` picks the built-in rendering of
the same family (chatml-style tokenizers: Hermes `<tool_call>`; Llama 3: its JSON calls; Mistral:
`[TOOL_CALLS]`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tuneforge.formatting.base import ChatTemplate, TemplateError, join, tool_call_parts
from tuneforge.types import Message, Sample

DROPS = ("template_drops_tool_calls", "template_drops_tools", "template_drops_content", "template_drops_reasoning")
"""Rejection reasons, in the order they are checked (a sample counts once, under the first)."""

WHAT = {"template_drops_tool_calls": "tool calls", "template_drops_tools": "tool definitions",
        "template_drops_content": "message contents", "template_drops_reasoning": "reasoning traces"}


def tool_name(tool: dict[str, Any]) -> str | None:
    """The name of a tool definition written as `{name, ...}` or `{type: function, function: {name}}`."""
    fn = tool.get("function", tool)
    name = fn.get("name") if isinstance(fn, dict) else None
    return name if isinstance(name, str) else None


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _leaves(v)]
    if isinstance(value, list):
        return [x for v in value for x in _leaves(v)]
    return [value]


def _appears(value: Any, text: str) -> bool:
    """A scalar argument value is in `text`, raw or as JSON spells it (escaped, ASCII or not)."""
    if value is None or value == "":
        return True
    if isinstance(value, str):
        forms = {value, json.dumps(value, ensure_ascii=False)[1:-1], json.dumps(value)[1:-1]}
    else:
        forms = {json.dumps(value), str(value)}
    return any(f in text for f in forms)


def dropped(messages: Sequence[Message], tools: list[dict[str, Any]] | None, text: str) -> tuple[str, str] | None:
    """`(reason, detail)` for the first thing of the conversation missing from its rendered `text`,
    None when everything appears. Contents are compared stripped (templates may trim them)."""
    for i, m in enumerate(messages, 1):
        for call in m.tool_calls or []:
            name, args = tool_call_parts(call)
            if name not in text:
                return "template_drops_tool_calls", f"message {i}: the call to '{name}' is not rendered"
            missing = [v for v in _leaves(args) if not _appears(v, text)]
            if missing:
                return "template_drops_tool_calls", (f"message {i}: the arguments of the call to '{name}' "
                                                     f"are not rendered ({missing[0]!r} is missing)")
    for tool in tools or []:
        tool_id = tool_name(tool)
        if tool_id is not None and tool_id not in text:
            return "template_drops_tools", f"the tool definition '{tool_id}' is not rendered"
    for i, m in enumerate(messages, 1):
        if m.content.strip() and m.content.strip() not in text:
            return "template_drops_content", f"the content of {m.role} message {i} is not rendered"
    for i, m in enumerate(messages, 1):  # left on a message only for templates with a slot of their own
        if m.reasoning and m.reasoning.strip() not in text:
            return "template_drops_reasoning", (f"the reasoning of assistant message {i} is not rendered "
                                                "(template.reasoning: drop or drop_history leave it out on purpose)")
    return None


# --- the probe used by `template: auto` ----------------------------------------------------------

PROBE_TOOLS = [{"type": "function", "function": {
    "name": "tuneforge_probe_tool", "description": "A probe.",
    "parameters": {"type": "object", "properties": {"probe_arg": {"type": "string"}}}}}]
PROBE = [Message("user", "probe question"),
         Message("assistant", "", tool_calls=[{"name": "tuneforge_probe_call",
                                              "arguments": {"probe_arg": "probe_value"}}]),
         Message("tool", "probe output", name="tuneforge_probe_call"),
         Message("assistant", "probe answer")]


def probe_drops(template: ChatTemplate) -> set[str]:
    """What `template` drops of a conversation with a tool, a call and its output: a subset of
    `template_drops_tool_calls` and `template_drops_tools` (both when it cannot render it at all)."""
    try:
        text = join(template.render(PROBE, PROBE_TOOLS))
    except TemplateError:
        return {"template_drops_tool_calls", "template_drops_tools"}
    out = set()
    if "tuneforge_probe_call" not in text or "probe_value" not in text:
        out.add("template_drops_tool_calls")
    if "tuneforge_probe_tool" not in text:
        out.add("template_drops_tools")
    return out


def needs(samples: Sequence[Sample]) -> dict[str, int]:
    """How many samples hold tool calls and how many offer tool definitions, by the reason a template
    that cannot carry them would drop them under."""
    def messages(s: Sample) -> list[Message]:
        return [*s.messages, *(s.chosen or []), *(s.rejected or [])]

    return {"template_drops_tool_calls": sum(any(m.tool_calls for m in messages(s)) for s in samples),
            "template_drops_tools": sum(bool(s.tools) for s in samples)}


def family_template(tokenizer: Any) -> str | None:
    """The built-in tool-capable rendering of a tokenizer's family: `qwen` / `chatml` for
    `<|im_start|>` tokenizers, `llama3` for Llama 3's headers, `mistral` for tokenizers with
    `[TOOL_CALLS]`; None for any other."""
    vocab = tokenizer.get_vocab()
    source = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else ""
    if "<|im_start|>" in vocab and "<|im_end|>" in vocab:
        return "qwen" if "You are Qwen" in source else "chatml"
    if "<|start_header_id|>" in vocab and "<|eot_id|>" in vocab:
        return "llama3"
    if "[TOOL_CALLS]" in vocab and "[INST]" in vocab:
        return "mistral"
    return None
