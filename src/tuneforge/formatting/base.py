"""What every chat template is: a function from a conversation to ordered text segments.

A segment is a piece of rendered text plus one flag, `trainable`: True for the text the model must
learn to produce (an assistant reply *and its end-of-turn / EOS token*), False for everything it is
given (system prompt, user turns, tool outputs, role headers, separators). The loss mask is derived
from these flags after tokenisation (`formatting.encode`), never from token-id heuristics.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tuneforge.errors import TuneforgeError
from tuneforge.types import Message


class TemplateError(TuneforgeError):
    """A template cannot render a conversation (or is unusable with a tokenizer)."""


@dataclass(frozen=True)
class Segment:
    text: str
    trainable: bool
    """True for assistant reply text and its end-of-turn token."""


@dataclass(frozen=True)
class SpecialTokens:
    """The tokenizer's own BOS/EOS strings, which templates such as llama2 or alpaca write out."""

    bos: str = ""
    eos: str = ""

    @classmethod
    def of(cls, tokenizer: Any) -> SpecialTokens:
        if not tokenizer.eos_token:
            raise TemplateError("the tokenizer has no EOS token; a model could never learn to stop")
        return cls(bos=tokenizer.bos_token or "", eos=tokenizer.eos_token)


class ChatTemplate(Protocol):
    """A template bound to one tokenizer: renders conversations to segments."""

    name: str
    fingerprint: str
    """Identifies exactly how this template renders (cache keys and run manifests)."""
    chat_template: str | None
    """The same rendering as a Hugging Face Jinja chat template (what an exported tokenizer carries),
    None when it cannot be written as one."""
    reasoning_slot: bool
    """The template renders an assistant turn's reasoning in a place of its own (a Jinja template that
    reads `reasoning_content`, as thinking models' templates do); otherwise the encoder writes it into
    the reply (`template.reasoning_format`)."""

    def render(self, messages: Sequence[Message], tools: list[dict[str, Any]] | None = None, *,
               add_generation_prompt: bool = False) -> list[Segment]:
        """Segments of the conversation; with `add_generation_prompt`, ending with the (untrained)
        header that asks the model for the next assistant turn."""
        ...


def join(segments: Sequence[Segment]) -> str:
    return "".join(s.text for s in segments)


def prompt_text(template: ChatTemplate, messages: Sequence[Message],
                tools: list[dict[str, Any]] | None = None) -> str:
    """The text a model is given to write the next assistant turn (chat, serving, DPO prompts)."""
    return join(template.render(messages, tools, add_generation_prompt=True))


def tool_call_parts(call: dict[str, Any]) -> tuple[str, Any]:
    """`(name, arguments)` of a tool call written as `{name, arguments}` or OpenAI's
    `{type: function, function: {name, arguments}}`; JSON-string arguments are parsed."""
    fn = call.get("function", call)
    args = fn.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            pass  # free-text arguments are rendered as a JSON string
    return fn["name"], args


def to_json(value: Any) -> str:
    # Same spelling as the `tojson` filter of HF chat templates, so built-ins match official renders.
    return json.dumps(value, ensure_ascii=False)
