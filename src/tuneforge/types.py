"""The one data model every part of tuneforge shares.

A `Sample` is exactly one of three kinds:

- **chat**: `messages` (system / user / assistant / tool turns, optional `tools` definitions);
- **text**: raw `text` for continued pre-training;
- **preference**: a prompt in `messages` plus the `chosen` and `rejected` continuations.

Readers map every input format onto it, writers map it back; `to_dict` / `from_dict` give the
canonical JSON form (OpenAI-style messages plus our extra keys) used for jsonl files and caches.
"""

from __future__ import annotations

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
    """Function calls made by an assistant turn: `[{"name": ..., "arguments": {...}}]`."""
    name: str | None = None
    """For `tool` turns: the tool that produced this output."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = self.tool_calls
        if self.name is not None:
            out["name"] = self.name
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Message:
        return cls(role=d["role"], content=d.get("content") or "",
                   tool_calls=d.get("tool_calls"), name=d.get("name"))


@dataclass
class Sample:
    messages: list[Message] = field(default_factory=list)
    text: str | None = None
    chosen: list[Message] | None = None
    rejected: list[Message] | None = None
    tools: list[dict[str, Any]] | None = None
    """Tool (function) definitions offered to the model, JSON-schema style."""
    task: str | None = None
    """Multi-task name; None for single-task data."""
    id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    """Provenance (`source`, `line`) and anything curation writes (scores, flags)."""

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
