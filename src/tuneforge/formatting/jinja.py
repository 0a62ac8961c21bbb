"""Jinja chat templates (the tokenizer's own, or the user's) as segment renderers.

A Jinja template renders a whole conversation to one string, with no notion of which characters
are the reply. We recover the segments by rendering growing prefixes: for the assistant message at
index i, `render(messages[:i], add_generation_prompt=True)` ends exactly where its reply begins,
and `render(messages[:i + 1])` ends where the turn ends. The reply is the difference, minus
trailing whitespace (the separator before the next turn, e.g. chatml's newline after
`<|im_end|>`), which stays untrained. Templates that are not prefix-stable (that rewrite earlier
turns once later ones exist) are refused per conversation with a `TemplateError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tuneforge.formatting.base import Segment, TemplateError, tool_call_parts
from tuneforge.types import Message


def _hf_message(m: Message) -> dict[str, Any]:
    # Hugging Face chat-template conventions: OpenAI-style tool calls, `name` on tool outputs.
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [{"type": "function", "function": {"name": n, "arguments": a}}
                             for n, a in map(tool_call_parts, m.tool_calls)]
    if m.name is not None:
        out["name"] = m.name
    if m.reasoning is not None:  # the field thinking models' templates (Qwen3, DeepSeek-R1) read
        out["reasoning_content"] = m.reasoning
    return out


@dataclass(frozen=True)
class JinjaSpec:
    """A registry entry for a Jinja template; `source=None` means the tokenizer's own."""

    name: str
    description: str
    source: str | None = None

    def build(self, tokenizer: Any) -> JinjaTemplate:
        source = self.source
        if source is None:
            source = tokenizer.chat_template
            if isinstance(source, dict):  # several named templates: the default one is for chat
                source = source.get("default")
            if not source:
                raise TemplateError("the tokenizer has no chat template of its own; choose a built-in "
                                    "template (template.name) or give template.jinja")
        template = JinjaTemplate(self.name, source, tokenizer)
        template.check_generation_prompt()
        return template


@dataclass(frozen=True)
class JinjaTemplate:
    """Implements `ChatTemplate` by rendering prefixes through `tokenizer.apply_chat_template`
    (the same sandbox, globals and special-token variables the model's authors used)."""

    name: str
    source: str
    tokenizer: Any

    @property
    def chat_template(self) -> str:
        return self.source

    @property
    def fingerprint(self) -> str:
        return f"jinja:{hashlib.sha256(self.source.encode()).hexdigest()[:16]}"

    @property
    def reasoning_slot(self) -> bool:
        return "reasoning_content" in self.source

    def _text(self, messages: Sequence[Message], tools: list[dict[str, Any]] | None,
              add_generation_prompt: bool) -> str:
        try:
            return self.tokenizer.apply_chat_template(
                [_hf_message(m) for m in messages], tools=tools, chat_template=self.source,
                add_generation_prompt=add_generation_prompt, tokenize=False)
        except Exception as e:  # the template's own raise_exception, undefined variables, ...
            raise TemplateError(f"template '{self.name}' failed: {type(e).__name__}: {e}") from None

    def check_generation_prompt(self) -> None:
        probe = [Message("user", "hi")]
        if self._text(probe, None, True) == self._text(probe, None, False):
            raise TemplateError(f"template '{self.name}' ignores add_generation_prompt, so the assistant "
                                "header cannot be told apart from the reply it should learn")

    def _head(self, messages: Sequence[Message], i: int, tools: list[dict[str, Any]] | None) -> str:
        """The text before assistant message i's reply. With nothing before it (a greeting that opens
        the conversation) there is no prefix to render with a generation prompt, since templates refuse
        an empty conversation: the head is what precedes a marker reply in its place."""
        if i > 0:
            return self._text(messages[:i], tools, True)
        marker = "\x00reply\x00"
        text = self._text([Message("assistant", marker)], tools, False)
        if marker not in text:
            raise TemplateError(f"template '{self.name}' does not render an assistant turn that opens the "
                                "conversation as written")
        return text[:text.index(marker)]

    def render(self, messages: Sequence[Message], tools: list[dict[str, Any]] | None = None, *,
               add_generation_prompt: bool = False) -> list[Segment]:
        full = self._text(messages, tools, add_generation_prompt)
        segments: list[Segment] = []
        pos = 0
        for i, m in enumerate(messages):
            if m.role != "assistant":
                continue
            head = self._head(messages, i, tools)
            through = self._text(messages[: i + 1], tools, False)
            if not (len(head) >= pos and through.startswith(head) and full.startswith(through)):
                hint = ""
                if any(m.reasoning for m in messages[:i + 1]) and any(m.role == "user" for m in messages[i + 1:]):
                    hint = ("; it shows reasoning only after the last user message, as thinking models expect: "
                            "set template.reasoning: drop_history")
                raise TemplateError(f"template '{self.name}' is not prefix-stable at message {i + 1}: "
                                    f"rendering more turns changes earlier text{hint}")
            reply = through[len(head):].rstrip()
            if not reply:
                raise TemplateError(f"template '{self.name}' renders assistant message {i + 1} as nothing")
            segments += [Segment(full[pos:len(head)], False), Segment(reply, True)]
            pos = len(head) + len(reply)
        segments.append(Segment(full[pos:], False))
        return [s for s in segments if s.text]

