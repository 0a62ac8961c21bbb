"""OpenAI-compatible request bodies (validated) and response bodies (plain dicts).

Fields the OpenAI API has but we cannot honour (logprobs, ...) are accepted and ignored, as vLLM
does, so that existing clients work unchanged; a wrong type, an out-of-range or non-finite number
(JSON's NaN / Infinity, which Python's parser accepts), a malformed tool, tool call or tool_choice is
a 422 naming the field. `top_k`, `repetition_penalty` and `ignore_eos` are extensions vLLM also accepts.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from tuneforge.serve.engine import Completion
from tuneforge.serve.sampling import SamplingParams
from tuneforge.types import Message

INT64_MAX = 2**63 - 1


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class _Open(BaseModel):
    """A nested object passed on to the chat template as the client wrote it: only the keys templates
    read are checked, the rest are kept."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class FunctionCall(_Open):
    name: str = Field(min_length=1)
    arguments: str | dict[str, Any] = "{}"
    """A JSON string, as OpenAI sends it (an object is accepted too)."""


class ToolCall(_Open):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class FunctionDefinition(_Open):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(_Open):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class ToolChoiceFunction(_Body):
    name: str = Field(min_length=1)


class NamedToolChoice(_Body):
    type: Literal["function"]
    function: ToolChoiceFunction


def _tool_choice_kind(value: Any) -> str:
    """Which form of tool_choice a value is, so that an error names the field of that form (the tags are
    capitalised: the server leaves such parts out of the field names it reports)."""
    return "Mode" if isinstance(value, str) else "Named"


class ContentPart(_Body):
    type: Literal["text"]
    text: str


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None

    def to_message(self) -> Message:
        text = self.content if isinstance(self.content, str) or self.content is None else "".join(
            part.text for part in self.content)
        # OpenAI's newer `developer` role is what the chat templates know as `system`.
        role = "system" if self.role == "developer" else self.role
        calls = [c.model_dump(exclude_unset=True) for c in self.tool_calls] if self.tool_calls else None
        return Message(role, text or "", tool_calls=calls, name=self.name)


class StreamOptions(_Body):
    include_usage: bool = False


class _Sampling(_Body):
    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0, le=INT64_MAX)
    repetition_penalty: float = Field(1.0, gt=0)
    n: int = Field(1, ge=1, le=16)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=-INT64_MAX - 1, le=INT64_MAX)
    """torch seeds are 64-bit (choice k uses seed + k, which still fits the unsigned range torch takes)."""
    ignore_eos: bool = False
    stream: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > 4 or not all(stops):
            raise ValueError("stop takes up to 4 non-empty strings")
        return value

    def sampling(self, max_tokens: int, choice: int) -> SamplingParams:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        # Each of the n choices gets its own seed, so that choices differ yet repeat with the request.
        seed = None if self.seed is None else self.seed + choice
        return SamplingParams(max_tokens=max_tokens, temperature=self.temperature, top_p=self.top_p,
                              top_k=self.top_k, repetition_penalty=self.repetition_penalty, stop=stop, seed=seed,
                              ignore_eos=self.ignore_eos)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    """OpenAI's newer name for max_tokens."""
    tools: list[Tool] | None = None
    tool_choice: Annotated[Annotated[Literal["none", "auto", "required"], Tag("Mode")]
                           | Annotated[NamedToolChoice, Tag("Named")],
                           Discriminator(_tool_choice_kind)] | None = None
    """Checked against `tools` by the server (a named function must be one of them)."""

    @property
    def tool_dicts(self) -> list[dict[str, Any]] | None:
        """The tools as the client wrote them, for the chat template."""
        return [t.model_dump(exclude_unset=True) for t in self.tools] if self.tools is not None else None

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    max_tokens: int | None = Field(16, ge=1)  # the legacy endpoint's default

    @field_validator("prompt")
    @classmethod
    def _some_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("prompt needs at least one string")
        return value

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else self.prompt

    @property
    def token_limit(self) -> int | None:
        return self.max_tokens


class FeedbackRequest(BaseModel):
    """`POST /v1/feedback` (a tuneforge extension): a rating of a recorded chat completion's reply, with
    an optional better reply. Unknown keys are refused, so that a misspelt `correction` is not lost."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    """The chat completion's `id`."""
    rating: Literal["up", "down"]
    correction: str | None = Field(None, min_length=1)
    """What the reply should have been."""
    index: int = Field(0, ge=0, le=15)
    """Which choice of the completion (for `n` > 1)."""


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def usage(prompt_tokens: int, done: list[Completion], forced: int = 0) -> dict[str, int]:
    """`forced`: tokens of a forced reply opening (sent with the prompt, counted with the replies)."""
    completion = sum(d.completion_tokens for d in done) + forced
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion}


def choice(chat: bool, index: int, text: str | None, finish_reason: str | None, *, chunk: bool,
           role: bool = False, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One entry of `choices`: a whole reply, or (chunk) a streamed piece of one; `tool_calls` as
    `tool_calls.call_dicts` writes them."""
    if not chat:
        return {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish_reason}
    if not chunk:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return {"index": index, "message": message, "logprobs": None, "finish_reason": finish_reason}
    delta: dict[str, Any] = {"role": "assistant"} if role else {}
    if text is not None:
        delta["content"] = text
    if tool_calls:
        delta["tool_calls"] = tool_calls
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def body(chat: bool, rid: str, model: str, created: int, choices: list[dict[str, Any]], *, chunk: bool,
         usage_: dict[str, int] | None = None) -> dict[str, Any]:
    kind = ("chat.completion.chunk" if chunk else "chat.completion") if chat else "text_completion"
    out: dict[str, Any] = {"id": rid, "object": kind, "created": created, "model": model, "choices": choices}
    if usage_ is not None:
        out["usage"] = usage_
    return out


def error_body(message: str, kind: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
