"""An Ollama Modelfile whose TEMPLATE renders the same prompt as the chat template a model trained with.

Ollama renders prompts with Go templates over `.Messages`, and puts the Modelfile's SYSTEM in front
of a conversation that has no system message, the way our built-ins use their default system prompt.
A built-in template is a declarative `Format`, so it translates piece by piece. A Jinja template
(the tokenizer's own, or the user's) cannot be translated in general; it is matched instead: if it
renders a set of probe conversations exactly as some built-in does (with the default system prompt
read off its output), that built-in's translation is used. Otherwise there is no TEMPLATE, and the
caller warns. Tool calls are not rendered, and llama2's stripping of whitespace around contents has
no Go equivalent (contents are written as given).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Formatter
from typing import Any, Literal

from tuneforge.errors import TuneforgeError
from tuneforge.formatting import BUILTIN_TEMPLATES, ChatTemplate, Format, JinjaTemplate, TemplateError, prompt_text
from tuneforge.formatting.builtin import BoundTemplate, BuiltinTemplate
from tuneforge.types import Message

PROBES: tuple[tuple[Message, ...], ...] = (
    (Message("user", "Hi there"),),
    (Message("system", "Be brief."), Message("user", "Hi there")),
    (Message("user", "Hi there"), Message("assistant", "Hello! How can I help?"), Message("user", "A colour?")),
    (Message("system", "Be brief."), Message("user", "Hi"), Message("assistant", "Hello."), Message("user", "Bye")),
)
"""Conversations a Jinja template must render exactly as a built-in does to count as that built-in."""
_SENTINEL = "\x00default system\x00"
# Go-template names for the format placeholders: the message's content, llama2's carried system prompt.
_FIELDS = {"content": ".Content", "system": "$system"}


@dataclass(frozen=True)
class OllamaTemplate:
    template: str
    """A Go template over `.Messages`, ending with the header that asks for the assistant's turn."""
    stops: tuple[str, ...]
    system: str | None
    """The default system prompt (Modelfile SYSTEM), used when a conversation has none."""
    source: str
    """Which built-in this is (for a matched Jinja template: the built-in it renders like)."""


@dataclass(frozen=True)
class _Action:
    text: str


_Part = str | _Action
_LeadingBos = Literal["keep", "drop", "index"]


def _pieces(template: str, bos: str, eos: str, leading_bos: _LeadingBos = "keep") -> list[_Part]:
    """A `Format` string as literals and Go actions; a leading `{bos}` is kept, `drop`ped, or written
    only past the first message (`index`), where the runtime adds BOS to the prompt itself."""
    out: list[_Part] = []
    for i, (literal, field, _, _) in enumerate(Formatter().parse(template)):
        out.append(literal)
        if field == "bos" and i == 0 and not literal and leading_bos != "keep":
            out += [_Action("if $i"), bos, _Action("end")] if leading_bos == "index" else []
        elif field in ("bos", "eos"):
            out.append(bos if field == "bos" else eos)
        elif field:
            out.append(_Action(_FIELDS[field]))
    return [p for p in out if p != ""]


def _join(parts: Sequence[_Part]) -> str:
    """Go template text; a newline goes only between two adjacent actions, trimmed by `{{-`, so
    every literal reaches the prompt exactly as written."""
    out, after_action = [], False
    for part in parts:
        if isinstance(part, _Action):
            out.append(f"\n{{{{- {part.text} }}}}" if after_action else f"{{{{ {part.text} }}}}")
        else:
            if "{{" in part:
                raise TemplateError(f"a template literal contains '{{{{', which Go would parse: {part!r}")
            out.append(part)
        after_action = isinstance(part, _Action)
    return "".join(out)


def go_template(fmt: Format, bos: str, eos: str, *, runtime_adds_bos: bool) -> str:
    """The Go template that renders `fmt` as `prompt_text` does, less a leading BOS when the runtime
    (llama.cpp, from the GGUF's add_bos_token) adds one itself."""
    first: _LeadingBos = "drop" if runtime_adds_bos else "keep"  # pieces that can only open the prompt
    turn: _LeadingBos = "index" if runtime_adds_bos else "keep"  # open it when their message is first

    def p(template: str, leading_bos: _LeadingBos = "keep") -> list[_Part]:
        return _pieces(template, bos, eos, leading_bos)

    parts: list[_Part] = [*p(fmt.start, first)]
    if fmt.system_in_first_user is None:
        system_branch, user_branch = p(fmt.system, turn), p(fmt.user, turn)
    else:  # llama2: the system prompt is carried into the first user turn
        parts += [_Action('$system := ""'), _Action("$pending := false")]
        system_branch = [_Action("$system = .Content"), _Action("$pending = true")]
        user_branch = [_Action("if $pending"), *p(fmt.system_in_first_user, first), _Action("$pending = false"),
                       _Action("else"), *p(fmt.user, turn), _Action("end")]
    parts += [_Action("range $i, $_ := .Messages"),
              _Action('if eq .Role "system"'), *system_branch,
              _Action('else if eq .Role "user"'), *user_branch,
              _Action('else if eq .Role "assistant"'), *p(fmt.assistant), *p(fmt.reply), *p(fmt.after_reply),
              _Action("end"), _Action("end"), *p(fmt.assistant)]
    return _join(parts)


def _stops(fmt: Format, bos: str, eos: str) -> tuple[str, ...]:
    """What ends a reply (the text after `{content}` in the reply, and EOS), and the user turn's
    opening marker, in case the model runs on into a turn of its own."""
    end_of_reply = fmt.reply.split("{content}", 1)[-1].format(bos=bos, eos=eos).strip()
    user_open = fmt.user.split("{content}", 1)[0].format(bos="", eos=eos).strip()
    candidates = (end_of_reply, eos, user_open)
    return tuple(dict.fromkeys(s for s in candidates if s and '"' not in s and "\n" not in s))


def _renders_like(template: ChatTemplate, candidate: ChatTemplate) -> bool:
    try:
        return all(prompt_text(template, probe) == prompt_text(candidate, probe) for probe in PROBES)
    except TemplateError:
        return False


def _default_system(template: ChatTemplate, spec: BuiltinTemplate, tokenizer: Any) -> str | None:
    """The system prompt `template` writes into a conversation without one, if it has the place
    `spec` gives it: the text between `spec`'s own rendering around a sentinel."""
    with_sentinel = dataclasses.replace(spec, default_system=_SENTINEL).build(tokenizer)
    head, _, tail = prompt_text(with_sentinel, PROBES[0]).partition(_SENTINEL)
    try:
        text = prompt_text(template, PROBES[0])
    except TemplateError:
        return None
    if text.startswith(head) and text.endswith(tail) and len(text) > len(head) + len(tail):
        return text[len(head):len(text) - len(tail)]
    return None


def match_builtin(template: JinjaTemplate, tokenizer: Any) -> BuiltinTemplate | None:
    """The built-in (with its default system prompt set) that renders like `template`, if any."""
    for spec in BUILTIN_TEMPLATES:
        for system in dict.fromkeys((None, _default_system(template, spec, tokenizer))):
            candidate = dataclasses.replace(spec, default_system=system)
            if _renders_like(template, candidate.build(tokenizer)):
                return candidate
    return None


def ollama_template(template: ChatTemplate, tokenizer: Any, *, runtime_adds_bos: bool,
                    system: str | None = None) -> OllamaTemplate | None:
    """The Ollama rendering of a bound chat template, or None when it cannot be translated.
    `system` (the run's `template.system`) replaces the template's own default system prompt."""
    if isinstance(template, BoundTemplate):
        spec, source = template.spec, template.spec.name
    elif isinstance(template, JinjaTemplate) and (spec := match_builtin(template, tokenizer)) is not None:
        source = f"{template.name} (renders as the built-in {spec.name})"
    else:
        return None
    bos, eos = tokenizer.bos_token or "", tokenizer.eos_token
    return OllamaTemplate(go_template(spec.format, bos, eos, runtime_adds_bos=runtime_adds_bos),
                          _stops(spec.format, bos, eos), system if system is not None else spec.default_system,
                          source)


def _quoted(text: str, what: str, path: Path) -> str:
    if '"""' in text:
        raise TuneforgeError(f"{path}: the {what} contains '\"\"\"', which a Modelfile cannot quote")
    return f'"""{text}"""'


def write_modelfile(path: Path, gguf_name: str, template: OllamaTemplate | None) -> Path:
    """`FROM ./<gguf_name>`, then TEMPLATE, SYSTEM and stop parameters when the template is known."""
    lines = [f"# ollama create NAME -f {path.name}", f"FROM ./{gguf_name}"]
    if template is not None:
        lines.append(f"TEMPLATE {_quoted(template.template, 'chat template', path)}")
        if template.system is not None:
            lines.append(f"SYSTEM {_quoted(template.system, 'system prompt', path)}")
        lines += [f'PARAMETER stop "{stop}"' for stop in template.stops]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
