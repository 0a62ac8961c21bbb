"""The one data model every part of tuneforge shares.

A `Sample` is exactly one of three kinds:

- **chat**: `messages` (system / user / assistant / tool turns, optional `tools` definitions);
- **text**: raw `text` for continued pre-training;
- **preference**: a prompt in `messages` plus the `chosen` and `rejected` continuations.

Readers map every input format onto it, writers map it back; `to_dict` / `from_dict` give the
canonical JSON form (OpenAI-style messages plus our extra keys) used for jsonl files and caches.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
SampleKind = Literal["chat", "text", "preference"]


@dataclass
class Message:
    role: Role
    content: str
    tool_calls: list[dict[str, Any]] | None = None
    """Function calls made by an assistant turn, in OpenAI's shape with parsed arguments:
    `[{"id": ..., "type": "function", "function": {"name": ..., "arguments": {...}}}]` (`id` only
    when known). The older `[{"name", "arguments"}]` is accepted and normalised; read them with `calls()`."""
    name: str | None = None
    """For `tool` turns: the tool that produced this output."""
    tool_call_id: str | None = None
    """For `tool` turns: the `id` of the call this output answers."""
    reasoning: str | None = None
    """For assistant turns: the reasoning trace written before the reply (`<think>` text)."""
    loss_weight: float | None = None
    """How much this turn's tokens count in the loss (LLaMA-Factory v1's `loss_weight`); None means
    the template config decides (assistant replies trained, the rest not)."""

    def __post_init__(self) -> None:
        if self.tool_calls is not None:
            self.tool_calls = [normalize_tool_call(c) for c in self.tool_calls]

    def calls(self) -> list[tuple[str | None, str, Any]]:
        """`(id, name, arguments)` of each tool call; arguments parsed from JSON where they are a string."""
        return [(c.get("id"), c["function"]["name"], c["function"]["arguments"]) for c in self.tool_calls or []]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = self.tool_calls
        for key in ("name", "tool_call_id", "reasoning", "loss_weight"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Message:
        return cls(role=d["role"], content=d.get("content") or "", tool_calls=d.get("tool_calls"),
                   name=d.get("name"), tool_call_id=d.get("tool_call_id"), reasoning=d.get("reasoning"),
                   loss_weight=d.get("loss_weight"))


def normalize_tool_call(call: dict[str, Any]) -> dict[str, Any]:
    """One tool call in our shape (OpenAI's, arguments parsed) from ours, OpenAI's or `{name, arguments}`.
    Arguments that are a string but not JSON are kept as that string."""
    fn = call.get("function", call)
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise ValueError(f"a tool call needs a function name, got {call!r}")
    args = fn.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            pass
    out: dict[str, Any] = {}
    if call.get("id") is not None:
        out["id"] = call["id"]
    out["type"] = "function"
    out["function"] = {"name": fn["name"], "arguments": args}
    return out


def normalize_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool definition in OpenAI's shape `{"type": "function", "function": {...}}`; a bare function
    definition (`{"name", "description", "parameters"}`, LLaMA-Factory's habit) is wrapped."""
    if "type" not in tool and "name" in tool:
        return {"type": "function", "function": tool}
    return tool


@dataclass
class Sample:
    messages: list[Message] = field(default_factory=list)
    text: str | None = None
    chosen: list[Message] | None = None
    rejected: list[Message] | None = None
    tools: list[dict[str, Any]] | None = None
    """Tool (function) definitions offered to the model, in OpenAI's shape
    `{"type": "function", "function": {"name", "description", "parameters"}}` (bare ones are wrapped)."""
    task: str | None = None
    """Multi-task name; None for single-task data."""
    id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    """Provenance (`source`, `line`) and anything curation writes (scores, flags)."""

    def __post_init__(self) -> None:
        if self.tools is not None:
            self.tools = [normalize_tool(t) for t in self.tools]

    @property
    def kind(self) -> SampleKind:
        if self.chosen is not None or self.rejected is not None:
            return "preference"
        if self.text is not None:
            return "text"
        return "chat"

    @property
    def where(self) -> str:
        """`file:line` of the record this sample came from, for error messages."""
        src, line = self.meta.get("source"), self.meta.get("line")
        if src is None:
            return "<memory>"
        return f"{src}:{line}" if line is not None else str(src)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.text is not None:
            out["text"] = self.text
        if self.messages or self.text is None:
            out["messages"] = [m.to_dict() for m in self.messages]
        if self.chosen is not None:
            out["chosen"] = [m.to_dict() for m in self.chosen]
        if self.rejected is not None:
            out["rejected"] = [m.to_dict() for m in self.rejected]
        for key in ("tools", "task", "id"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.meta:
            out["meta"] = self.meta
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Sample:
        def msgs(key: str) -> list[Message] | None:
            return None if d.get(key) is None else [Message.from_dict(m) for m in d[key]]

        return cls(messages=msgs("messages") or [], text=d.get("text"), chosen=msgs("chosen"),
                   rejected=msgs("rejected"), tools=d.get("tools"), task=d.get("task"),
                   id=d.get("id"), meta=dict(d.get("meta") or {}))
