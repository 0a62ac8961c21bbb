"""Tool calls in a model's reply: the opening that forces one, parsing them out of the text, and how
much of a streamed reply is safe to send before a call may begin.

Each chat template writes tool calls in its own syntax (its `ToolFormat`); `syntax_for(template)`
returns the matching `ToolSyntax`, or None when the template has no tool-call format we know:

- `hermes` (chatml, qwen, and Jinja templates that use `<tool_call>` tags):
  `<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`, any number of them, text around.
- `llama3` (Llama 3.1-style): the reply is JSON `{"name": ..., "parameters": {...}}`, optionally after
  `<|python_tag|>`; several calls separated by `;` or whitespace; text after the last call is content.
- `mistral` (Mistral v0.3): `[TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]`, one JSON list of
  calls; text before it and after it is content.

Parsing is all or nothing: a call that is not valid JSON, names a function the request did not offer,
or has arguments that are not a JSON object leaves the whole reply as text.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str
    """A JSON object, as a string (as OpenAI's API returns it)."""


@dataclass(frozen=True)
class Parsed:
    calls: list[ToolCall]
    content: str
    """The reply's text outside the calls, unstripped (the caller decides what empty means)."""


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _call(obj: Any, names: frozenset[str], argument_keys: tuple[str, ...]) -> ToolCall | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or obj["name"] not in names:
        return None
    key = next((k for k in argument_keys if k in obj), None)
    arguments = obj[key] if key is not None else {}
    if isinstance(arguments, str):  # some models write the arguments as a JSON string, as OpenAI sends them
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ToolCall(obj["name"], json.dumps(arguments, ensure_ascii=False))


def _held_suffix(text: str, marker: str) -> int:
    """The length of the longest end of `text` that is a proper beginning of `marker`."""
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0


class ToolSyntax(Protocol):
    """One template family's tool-call syntax."""

    @property
    def name(self) -> str: ...

    def opening(self, function: str | None) -> str:
        """The text that starts a call (of `function`, when given): forced at the start of a reply
        that must call a tool."""
        ...

    def parse(self, text: str, names: frozenset[str]) -> Parsed | None:
        """The calls in `text` (None when it holds none, or one that does not parse)."""
        ...

    def safe_prefix(self, text: str) -> int:
        """How many characters of a reply streamed so far cannot belong to a call (they may be sent
        as content now); never decreases as `text` grows."""
        ...


_HERMES_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.S)


@dataclass(frozen=True)
class HermesSyntax:
    name: str = "hermes"
    open_tag: str = "<tool_call>"

    def opening(self, function: str | None) -> str:
        head = self.open_tag + '\n{"name": "'
        return head if function is None else f'{head}{function}", "arguments": '

    def parse(self, text: str, names: frozenset[str]) -> Parsed | None:
        calls, outside, pos = [], [], 0
        for m in _HERMES_BLOCK.finditer(text):
            try:
                obj = json.loads(m.group(1).strip())
            except ValueError:
                return None
            call = _call(obj, names, ("arguments", "parameters"))
            if call is None:
                return None
            calls.append(call)
            outside.append(text[pos:m.start()])
            pos = m.end()
        if not calls:
            return None
        outside.append(text[pos:])
        return Parsed(calls, "".join(outside))

    def safe_prefix(self, text: str) -> int:
        at = text.find(self.open_tag)
        return at if at >= 0 else len(text) - _held_suffix(text, self.open_tag)


@dataclass(frozen=True)
class Llama3Syntax:
    name: str = "llama3"
    python_tag: str = "<|python_tag|>"

    def opening(self, function: str | None) -> str:
        return '{"name": "' if function is None else f'{{"name": "{function}", "parameters": '

    def _body(self, text: str) -> str:
        s = text.lstrip()
        if s.startswith(self.python_tag):
            s = s[len(self.python_tag):].lstrip()
        return s

    def parse(self, text: str, names: frozenset[str]) -> Parsed | None:
        s = self._body(text)
        decoder = json.JSONDecoder()
        calls, pos = [], 0
        while pos < len(s) and s[pos] == "{":
            try:
                obj, pos = decoder.raw_decode(s, pos)
            except ValueError:
                return None
            call = _call(obj, names, ("parameters", "arguments"))
            if call is None:
                return None
            calls.append(call)
            while pos < len(s) and (s[pos].isspace() or s[pos] == ";"):
                pos += 1
        return Parsed(calls, s[pos:]) if calls else None

    def safe_prefix(self, text: str) -> int:
        s = text.lstrip()
        if not s or s.startswith(("{", self.python_tag)) or self.python_tag.startswith(s):
            return 0  # a call may still open (or has): hold the reply until it ends
        return len(text)


@dataclass(frozen=True)
class MistralSyntax:
    name: str = "mistral"
    marker: str = "[TOOL_CALLS]"

    def opening(self, function: str | None) -> str:
        head = self.marker + ' [{"name": "'
        return head if function is None else f'{head}{function}", "arguments": '

    def parse(self, text: str, names: frozenset[str]) -> Parsed | None:
        at = text.find(self.marker)
        if at < 0:
            return None
        rest = text[at + len(self.marker):]
        start = len(rest) - len(rest.lstrip())
        try:
            objs, end = json.JSONDecoder().raw_decode(rest, start)
        except ValueError:
            return None
        if not isinstance(objs, list) or not objs:
            return None
        calls = [_call(obj, names, ("arguments", "parameters")) for obj in objs]
        if any(call is None for call in calls):
            return None
        return Parsed([c for c in calls if c is not None], text[:at] + rest[end:])

    def safe_prefix(self, text: str) -> int:
        at = text.find(self.marker)
        return at if at >= 0 else len(text) - _held_suffix(text, self.marker)


HERMES = HermesSyntax()
LLAMA3 = Llama3Syntax()
MISTRAL = MistralSyntax()


def syntax_for(template: Any) -> ToolSyntax | None:
    """The tool-call syntax of a chat template: a built-in's `ToolFormat`, or what a Jinja template's
    source writes; None when it has no tool-call format we know."""
    spec = getattr(template, "spec", None)
    tools = getattr(getattr(spec, "format", None), "tools", None)
    if tools is not None:
        text = tools.calls_open + tools.call
    elif spec is None:
        text = getattr(template, "source", None) or ""
    else:
        return None
    if "<tool_call>" in text:
        return HERMES
    if MISTRAL.marker in text:
        return MISTRAL
    if '"parameters"' in text and (tools is not None or "ipython" in text):
        return LLAMA3
    return None


@dataclass(frozen=True)
class ToolPlan:
    """What one chat request does about tool calls: which syntax to parse, which functions it offers,
    and the opening forced at the start of each reply (`""` when the model may answer in text)."""

    syntax: ToolSyntax
    names: frozenset[str]
    opening: str = ""

    def parse(self, text: str) -> Parsed | None:
        return self.syntax.parse(text, self.names)


def call_dicts(calls: list[ToolCall], *, indexed: bool = False) -> list[dict[str, Any]]:
    """Calls as OpenAI's `tool_calls` entries (`indexed`: as stream deltas, with their `index`)."""
    out = []
    for i, call in enumerate(calls):
        entry: dict[str, Any] = {"id": new_call_id(), "type": "function",
                                 "function": {"name": call.name, "arguments": call.arguments}}
        out.append({"index": i, **entry} if indexed else entry)
    return out
