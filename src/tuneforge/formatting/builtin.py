"""Built-in chat templates, each a small declarative `Format` rendered by one function.

Every format splits an assistant turn into an untrained header (`assistant`, which is also the
generation prompt), the trained `reply` (content plus the end-of-turn/EOS token) and an untrained
`after_reply` separator. Where the official template puts a space between header and content
(llama2, human_assistant) the space opens the reply: byte-level BPE glues a space to the next word,
so a segment boundary after the space would tokenise differently from the whole text.

Placeholders: `{content}`, `{bos}` and `{eos}` (the tokenizer's own BOS/EOS strings).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tuneforge.formatting.base import Segment, SpecialTokens, TemplateError, to_json, tool_call_parts
from tuneforge.formatting.builtin_jinja import format_chat_template
from tuneforge.types import Message


@dataclass(frozen=True)
class ToolFormat:
    call: str
    """One tool call inside a reply; `{name}` and `{arguments}` (JSON)."""
    output_open: str
    """Opens a run of consecutive tool outputs."""
    output: str
    """One tool output; `{content}`."""
    output_close: str
    definitions_open: str
    """Tool definitions, appended to the system prompt: this text, then each definition as JSON
    separated by `definitions_separator`, then `definitions_close`."""
    definitions_separator: str
    definitions_close: str = ""
    definitions_before_first_user: bool = False
    """Write the definitions just before the first user turn rather than into the system prompt (Mistral's
    `[AVAILABLE_TOOLS]`; its official template puts them before the last user turn, which would rewrite
    earlier text as a conversation grows, so a trained rendering could not be prefix-stable)."""
    calls_open: str = ""
    """Opens the calls of one reply; then each `call` separated by `calls_separator`, then `calls_close`."""
    calls_separator: str = "\n"
    calls_close: str = ""
    call_reply: str | None = None
    """The reply of a turn that only calls tools, where it differs from `Format.reply` (Mistral opens a
    text reply with a space but `[TOOL_CALLS]` with none)."""

    def definitions(self, tools: list[dict[str, Any]]) -> str:
        return self.definitions_open + self.definitions_separator.join(map(to_json, tools)) + self.definitions_close

    def calls(self, tool_calls: list[dict[str, Any]]) -> str:
        """The calls of one reply, in this format."""
        calls = [self.call.format(name=n, arguments=to_json(a)) for n, a in map(tool_call_parts, tool_calls)]
        return self.calls_open + self.calls_separator.join(calls) + self.calls_close


@dataclass(frozen=True)
class Format:
    user: str
    assistant: str
    reply: str
    after_reply: str = ""
    system: str = ""
    start: str = ""
    system_in_first_user: str | None = None
    """llama2 has no system turn: the system prompt goes inside the first user turn (`{system}`)."""
    strip: bool = False
    """Strip contents, as llama2's official template does."""
    tools: ToolFormat | None = None


@dataclass(frozen=True)
class BuiltinTemplate:
    """A registry entry: a format plus its default system prompt."""

    name: str
    description: str
    format: Format
    default_system: str | None = None
    version: int = 1
    """Bump when the rendering changes, so cached tokenisations are not reused."""

    def build(self, tokenizer: Any) -> BoundTemplate:
        return BoundTemplate(self, SpecialTokens.of(tokenizer))

    def chat_template(self) -> str:
        """This template as a Hugging Face Jinja chat template that renders the same text."""
        return format_chat_template(self.name, self.format, self.default_system)


@dataclass(frozen=True)
class BoundTemplate:
    """A built-in bound to a tokenizer's special tokens; implements `ChatTemplate`."""

    spec: BuiltinTemplate
    special: SpecialTokens

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def chat_template(self) -> str:
        return self.spec.chat_template()

    @property
    def fingerprint(self) -> str:
        return f"builtin:{self.spec.name}:v{self.spec.version}:{self.special.bos}:{self.special.eos}"

    @property
    def reasoning_slot(self) -> bool:
        return False

    def render(self, messages: Sequence[Message], tools: list[dict[str, Any]] | None = None, *,
               add_generation_prompt: bool = False) -> list[Segment]:
        system, turns = split_system(messages)
        if system is None:
            system = self.spec.default_system
        return render_format(self.spec.name, self.spec.format, self.special, system, turns, tools,
                             add_generation_prompt)


def split_system(messages: Sequence[Message]) -> tuple[str | None, Sequence[Message]]:
    if messages and messages[0].role == "system":
        return messages[0].content, messages[1:]
    return None, messages


@dataclass
class _Segments:
    """Appends segments, merging neighbours with the same flag (fewer tokenisation boundaries)."""

    items: list[Segment] = field(default_factory=list)

    def add(self, text: str, trainable: bool) -> None:
        if not text:
            return
        if self.items and self.items[-1].trainable == trainable:
            text = self.items.pop().text + text
        self.items.append(Segment(text, trainable))


def render_format(name: str, fmt: Format, sp: SpecialTokens, system: str | None,
                  turns: Sequence[Message], tools: list[dict[str, Any]] | None,
                  add_generation_prompt: bool) -> list[Segment]:
    def fill(template: str, content: str = "", **extra: str) -> str:
        if fmt.strip:
            content = content.strip()
        return template.format(content=content, bos=sp.bos, eos=sp.eos, **extra)

    def no_tools() -> TemplateError:
        return TemplateError(f"template '{name}' has no tool-call format; use chatml, qwen, llama3, mistral "
                             "or the model's own template (auto)")

    pending_definitions = None
    if tools:
        if fmt.tools is None:
            raise no_tools()
        if fmt.tools.definitions_before_first_user:
            pending_definitions = fmt.tools.definitions(tools)
        else:
            system = (f"{system}\n\n" if system else "") + fmt.tools.definitions(tools)
    out = _Segments()
    out.add(fill(fmt.start), False)
    pending_system = system
    if system is not None and fmt.system_in_first_user is None:
        out.add(fill(fmt.system, system), False)
        pending_system = None
    for i, m in enumerate(turns):
        if m.role == "user":
            if pending_definitions is not None:
                out.add(pending_definitions, False)
                pending_definitions = None
            if pending_system is not None:
                assert fmt.system_in_first_user is not None
                out.add(fill(fmt.system_in_first_user, m.content, system=pending_system.strip()), False)
                pending_system = None
            else:
                out.add(fill(fmt.user, m.content), False)
        elif m.role == "assistant":
            body = m.content.strip() if fmt.strip else m.content
            reply = fmt.reply
            if m.tool_calls:
                if fmt.tools is None:
                    raise no_tools()
                if not body and fmt.tools.call_reply is not None:
                    reply = fmt.tools.call_reply
                body = "\n".join(([body] if body else []) + [fmt.tools.calls(m.tool_calls)])
            out.add(fill(fmt.assistant), False)
            out.add(reply.format(content=body, bos=sp.bos, eos=sp.eos), True)
            out.add(fill(fmt.after_reply), False)
        elif m.role == "tool":
            if fmt.tools is None:
                raise no_tools()
            if i == 0 or turns[i - 1].role != "tool":
                out.add(fmt.tools.output_open, False)
            out.add(fill(fmt.tools.output, m.content), False)
            if i == len(turns) - 1 or turns[i + 1].role != "tool":
                out.add(fmt.tools.output_close, False)
        else:
            raise TemplateError(f"a '{m.role}' message at position {i + 1}: only the first message "
                                "may be a system prompt")
    if pending_system is not None:
        raise TemplateError(f"template '{name}' puts the system prompt into the first user turn, "
                            "and this conversation has none")
    if add_generation_prompt:
        out.add(fill(fmt.assistant), False)
    return out.items


# --- tool formats -----------------------------------------------------------------------------

HERMES_TOOLS = ToolFormat(
    call='<tool_call>\n{{"name": "{name}", "arguments": {arguments}}}\n</tool_call>',
    output_open="<|im_start|>user", output="\n<tool_response>\n{content}\n</tool_response>",
    output_close="<|im_end|>\n",
    # Qwen2.5's wording, byte for byte, so `qwen` matches the official template.
    definitions_open="# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
                     "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n",
    definitions_separator="\n",
    definitions_close="\n</tools>\n\nFor each function call, return a json object with function name and "
                      "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
                      '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>',
)

LLAMA3_TOOLS = ToolFormat(
    call='{{"name": "{name}", "parameters": {arguments}}}',
    output_open="", output="<|start_header_id|>ipython<|end_header_id|>\n\n{content}<|eot_id|>",
    output_close="",
    definitions_open="You have access to the following functions. To call a function, respond with JSON in the "
                     'format {"name": function name, "parameters": dictionary of argument name and its value}.\n\n',
    definitions_separator="\n\n",
)

MISTRAL_TOOLS = ToolFormat(
    call='{{"name": "{name}", "arguments": {arguments}}}',
    calls_open="[TOOL_CALLS] [", calls_separator=", ", calls_close="]", call_reply="{content}{eos}",
    output_open="", output='[TOOL_RESULTS] {{"content": {content}}}[/TOOL_RESULTS]', output_close="",
    definitions_open="[AVAILABLE_TOOLS] [", definitions_separator=", ", definitions_close="][/AVAILABLE_TOOLS]",
    definitions_before_first_user=True,
)

# --- the built-ins ----------------------------------------------------------------------------

CHATML = Format(
    system="<|im_start|>system\n{content}<|im_end|>\n",
    user="<|im_start|>user\n{content}<|im_end|>\n",
    assistant="<|im_start|>assistant\n", reply="{content}<|im_end|>", after_reply="\n",
    tools=HERMES_TOOLS,
)

QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
ALPACA_SYSTEM = ("Below is an instruction that describes a task. "
                 "Write a response that appropriately completes the request.")

BUILTIN_TEMPLATES: tuple[BuiltinTemplate, ...] = (
    BuiltinTemplate("chatml", "ChatML `<|im_start|>role ... <|im_end|>`; Hermes-style tool calls.", CHATML),
    BuiltinTemplate("qwen", "Qwen2.5: ChatML with Qwen's default system prompt and tool-call format.",
                    CHATML, default_system=QWEN_SYSTEM),
    BuiltinTemplate("llama2", "Llama 2 chat: `<s>[INST] <<SYS>>...<</SYS>> ... [/INST] ... </s>`.", Format(
        user="{bos}[INST] {content} [/INST]",
        system_in_first_user="{bos}[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{content} [/INST]",
        assistant="", reply=" {content} {eos}", strip=True,
    )),
    BuiltinTemplate("llama3", "Llama 3 headers and `<|eot_id|>`; Llama 3.1-style JSON tool calls.", Format(
        start="{bos}",
        system="<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>",
        user="<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>",
        assistant="<|start_header_id|>assistant<|end_header_id|>\n\n", reply="{content}<|eot_id|>",
        tools=LLAMA3_TOOLS,
    )),
    BuiltinTemplate("mistral", "Mistral v0.3: `<s>[INST] ... [/INST] ...</s>`; `[TOOL_CALLS]` tool calls, "
                    "`[AVAILABLE_TOOLS]` before the first user turn.", Format(
        start="{bos}", user="[INST] {content}[/INST]",
        system_in_first_user="[INST] {system}\n\n{content}[/INST]",
        assistant="", reply=" {content}{eos}", strip=True, tools=MISTRAL_TOOLS,
    )),
    BuiltinTemplate("alpaca", "The Stanford Alpaca prompt: `### Instruction:` / `### Response:`.", Format(
        system="{content}\n\n", user="### Instruction:\n{content}\n\n",
        assistant="### Response:\n", reply="{content}{eos}", after_reply="\n\n",
    ), default_system=ALPACA_SYSTEM),
    BuiltinTemplate("human_assistant", "`<s>Human: ...\\n</s><s>Assistant: ...</s>` (Llama2-Chinese style).",
                    Format(system="{bos}System: {content}\n{eos}", user="{bos}Human: {content}\n{eos}",
                           assistant="{bos}Assistant:", reply=" {content}{eos}")),
    BuiltinTemplate("plain", "No markup, for base models: raw text plus EOS; a chat is its contents "
                    "joined by newlines, each reply ending in EOS.", Format(
        system="{content}\n\n", user="{content}\n", assistant="", reply="{content}{eos}",
    )),
)
