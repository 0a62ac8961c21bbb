"""A built-in `Format` written out as a Hugging Face Jinja chat template that renders the same text.

An exported model carries its chat template in `tokenizer_config.json`; transformers, vLLM and
llama.cpp format prompts with it. The template mirrors `builtin.render_format` statement by
statement; every piece of markup is one quoted Jinja string, so the chat-template environment's
`trim_blocks` / `lstrip_blocks` whitespace rules never touch it. Tool calls match when their arguments
are a mapping (the Hugging Face convention) or a JSON string already spelled as `tojson` spells it.
"""

from __future__ import annotations

import json
import string
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tuneforge.formatting.builtin import Format, ToolFormat

# The special tokens are variables of every chat-template render; an unset one renders empty, like
# `SpecialTokens`.
_SPECIALS = {"bos": "(bos_token or '')", "eos": "(eos_token or '')"}


def _quote(text: str) -> str:
    # JSON escapes are valid escapes in a Jinja string literal.
    return json.dumps(text, ensure_ascii=False)


def _expr(template: str, **fields: str) -> str:
    """A `str.format` template as one Jinja expression; `fields` maps placeholders to Jinja expressions."""
    values = {**_SPECIALS, **fields}
    parts = []
    for literal, field, _, _ in string.Formatter().parse(template):
        if literal:
            parts.append(_quote(literal))
        if field is not None:
            parts.append(values[field])
    return " + ".join(parts) or '""'


def _out(template: str, **fields: str) -> str:
    return "{{- " + _expr(template, **fields) + " }}" if template else ""


def _fail(message: str) -> str:
    return "{{- raise_exception(" + message + ") }}"


def _definitions(tools: ToolFormat) -> str:
    return (f"{_quote(tools.definitions_open)} + (tools | map('tojson') | join({_quote(tools.definitions_separator)}))"
            f" + {_quote(tools.definitions_close)}")


def format_chat_template(name: str, fmt: Format, default_system: str | None) -> str:
    """`fmt`, with `default_system` for conversations without a system prompt, as a Jinja chat template."""
    content = "(m.content or '')" + (" | trim" if fmt.strip else "")
    no_tools = _fail(_quote(f"template '{name}' has no tool-call format; use chatml, qwen, llama3, mistral "
                            "or the model's own template (auto)"))
    lines = [
        "{%- if messages and messages[0].role == 'system' %}",
        "{%- set system = messages[0].content %}{%- set turns = messages[1:] %}",
        "{%- else %}",
        "{%- set system = " + (_quote(default_system) if default_system is not None else "none") + " %}",
        "{%- set turns = messages %}",
        "{%- endif %}",
        "{%- set definitions = none %}",
        "{%- if tools %}",
        (no_tools if fmt.tools is None else
         "{%- set definitions = " + _definitions(fmt.tools) + " %}" if fmt.tools.definitions_before_first_user else
         "{%- set system = (system + '\\n\\n' if system else '') + " + _definitions(fmt.tools) + " %}"),
        "{%- endif %}",
        _out(fmt.start),
        # `ns.system`: llama2 has no system turn, the system prompt waits for the first user turn;
        # `ns.definitions`: Mistral's tool definitions wait for it too.
        "{%- set ns = namespace(body='', reply='', calls='', definitions=definitions, system="
        + ("system" if fmt.system_in_first_user else "none") + ") %}",
    ]
    if fmt.system_in_first_user is None:
        system = "(system | trim)" if fmt.strip else "system"
        lines += ["{%- if system is not none %}", _out(fmt.system, content=system), "{%- endif %}"]
    lines += ["{%- for m in turns %}", "{%- if m.role == 'user' %}",
              "{%- if ns.definitions is not none %}{{- ns.definitions }}{%- set ns.definitions = none %}{%- endif %}"]
    if fmt.system_in_first_user is not None:
        lines += ["{%- if ns.system is not none %}",
                  _out(fmt.system_in_first_user, content=content, system="(ns.system | trim)"),
                  "{%- set ns.system = none %}", "{%- else %}", _out(fmt.user, content=content), "{%- endif %}"]
    else:
        lines.append(_out(fmt.user, content=content))
    lines += ["{%- elif m.role == 'assistant' %}",
              "{%- set ns.body = " + content + " %}",
              "{%- set ns.reply = " + _expr(fmt.reply, content="ns.body") + " %}",
              "{%- if m.tool_calls %}"]
    if fmt.tools is None:
        lines.append(no_tools)
    else:
        tf = fmt.tools
        call = _expr(tf.call, name="call.name",
                     arguments="(call.arguments if call.arguments is string else call.arguments | tojson)")
        lines += ["{%- set ns.calls = '' %}",
                  "{%- for tool_call in m.tool_calls %}",
                  "{%- set call = tool_call.function if tool_call.function is defined else tool_call %}",
                  "{%- set ns.calls = ns.calls + (" + _quote(tf.calls_separator) + " if not loop.first else '') + "
                  + call + " %}",
                  "{%- endfor %}",
                  "{%- set ns.calls = " + _quote(tf.calls_open) + " + ns.calls + " + _quote(tf.calls_close) + " %}"]
        if tf.call_reply is not None:
            lines += ["{%- if not ns.body %}",
                      "{%- set ns.reply = " + _expr(tf.call_reply, content="ns.calls") + " %}",
                      "{%- else %}"]
        lines += ["{%- set ns.body = (ns.body + '\\n' if ns.body else '') + ns.calls %}",
                  "{%- set ns.reply = " + _expr(fmt.reply, content="ns.body") + " %}"]
        if tf.call_reply is not None:
            lines.append("{%- endif %}")
    lines += ["{%- endif %}", _out(fmt.assistant), "{{- ns.reply }}", _out(fmt.after_reply),
              "{%- elif m.role == 'tool' %}"]
    if fmt.tools is None:
        lines.append(no_tools)
    else:
        lines += ["{%- if loop.first or turns[loop.index0 - 1].role != 'tool' %}", _out(fmt.tools.output_open),
                  "{%- endif %}", _out(fmt.tools.output, content=content),
                  "{%- if loop.last or turns[loop.index0 + 1].role != 'tool' %}", _out(fmt.tools.output_close),
                  "{%- endif %}"]
    lines += ["{%- else %}",
              _fail("\"a '\" + m.role + \"' message at position \" + (loop.index | string) + "
                    "\": only the first message may be a system prompt\""),
              "{%- endif %}", "{%- endfor %}"]
    if fmt.system_in_first_user is not None:
        lines += ["{%- if ns.system is not none %}",
                  _fail(_quote(f"template '{name}' puts the system prompt into the first user turn, "
                               "and this conversation has none")),
                  "{%- endif %}"]
    lines += ["{%- if add_generation_prompt %}", _out(fmt.assistant), "{%- endif %}"]
    return "\n".join(line for line in lines if line)
