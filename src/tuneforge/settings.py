"""The ground floor of typed configuration: what `tuneforge.config` and the packages below it share.

`Section` is the base of every settings class (unknown keys are errors; attribute docstrings are the
documentation); `MethodSettings` is the base of each method's own settings class in `tuneforge.methods`;
`TemplateConfig` is the `template` section, which `tuneforge.methods` also reads back from a trained
run. `read_yaml` reads every tuneforge YAML file and `--set` value; `explain_validation` and
`did_you_mean` turn pydantic errors into messages that name the key and the closest valid one.
`tuneforge.config` assembles the whole config from these; this module imports nothing of tuneforge, so
every package may use it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class _Yaml12Booleans(yaml.SafeLoader):
    """YAML 1.2's booleans: only true / false. PyYAML follows YAML 1.1, which also reads yes / no / on /
    off as booleans: `mixed_precision: no` or the language code `no` would arrive as false. pydantic still
    reads those words as booleans wherever a field is one."""


_BOOL = "tag:yaml.org,2002:bool"
_Yaml12Booleans.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Yaml12Booleans.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def read_yaml(text: str) -> Any:
    """Parse YAML the way every tuneforge file and `--set` value is read (see `_Yaml12Booleans`)."""
    return yaml.load(text, Loader=_Yaml12Booleans)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True)


class TemplateConfig(Section):
    name: str = "auto"
    """`auto` uses the tokenizer's own chat template, else a built-in (`tuneforge data show --help`)."""
    jinja: str | None = None
    """Your own Jinja chat template (HF `apply_chat_template` conventions); overrides `name`."""
    system: str | None = None
    """Default system prompt for conversations that have none."""
    train_on: Literal["assistant", "last", "all"] = "assistant"
    """Which tokens carry loss: every assistant turn, only the last one, or the whole sequence."""
    cutoff_len: int = Field(1024, gt=0)
    """Maximum tokens per sample."""
    cutoff_policy: Literal["truncate", "truncate_reply", "drop"] = "truncate"
    """`truncate` cuts the prompt and whole earlier turns, never an assistant reply: a sample whose last
    reply does not fit is dropped and counted. `truncate_reply` (LLaMA-Factory's behaviour) cuts the prompt
    to no less than half the cutoff, then the reply at the cutoff: its head is trained, its EOS is not
    (the reply did not end there); a preference pair cuts both replies alike. `drop` drops every sample
    that is too long."""
    reasoning: Literal["keep", "drop", "drop_history"] = "keep"
    """Assistant reasoning traces: `keep` renders them and trains them with the reply, `drop` leaves them
    out, `drop_history` keeps only the final reply's (what thinking models see at inference). A template
    with a reasoning slot of its own (a Jinja template reading `reasoning_content`, e.g. Qwen3's) renders
    them there; the others get `reasoning_format` before the reply."""
    reasoning_format: str = "<think>\n{reasoning}\n</think>\n\n"
    """How a reasoning trace is written before its reply by templates without a slot; `{reasoning}` is
    the trace."""

    @field_validator("reasoning_format")
    @classmethod
    def _has_placeholder(cls, value: str) -> str:
        if "{reasoning}" not in value:
            raise ValueError("must contain the placeholder {reasoning}")
        return value


class MethodSettings(Section):
    """What every method's own settings class (in `tuneforge.methods`) has in common."""

    name: str
    """Fine-tuning method: full, freeze, lora, qlora, adapter, prefix, prompt, ptuning, ia3."""


def did_you_mean(name: object, choices: Iterable[str], what: str = "valid keys") -> str:
    """The hint after a misspelled name: the closest choice, else the list of valid ones."""
    choices = list(choices)
    close = difflib.get_close_matches(str(name), choices, n=1)
    return f"did you mean '{close[0]}'?" if close else f"{what}: {', '.join(choices)}"


def explain_validation(error: ValidationError, root: type[BaseModel], prefix: str = "", suffix: str = "") -> str:
    """One line per pydantic error, naming the dotted key (under `prefix`); an unknown key comes with
    the closest valid key at that level. `suffix` qualifies unknown keys, e.g. " for method 'lora'"."""
    lines = []
    for err in error.errors():
        loc = ".".join([prefix, *map(str, err["loc"])] if prefix else map(str, err["loc"]))
        if err["type"] == "extra_forbidden":
            hint = did_you_mean(err["loc"][-1], _fields_at(root, err["loc"][:-1]))
            lines.append(f"unknown key '{loc}'{suffix}; {hint}")
        else:
            msg = err["msg"].removeprefix("Value error, ")  # a validator's own message reads as it is
            lines.append(f"'{loc}': {msg}" if loc else msg)
    return "\n".join(lines)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation holds, however nested (`list[X] | None`, `dict[str, X]`, `X | Y`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys valid at `loc` below `model` (list indices and union tags skipped); [] when unknown."""
    models = [model]
    for part in loc:
        inner = [m for cls in models if str(part) in cls.model_fields
                 for m in _models_in(cls.model_fields[str(part)].annotation)]
        models = inner or models  # an index or a union member's tag: the same models go on
    return list(dict.fromkeys(k for cls in models for k in cls.model_fields))
