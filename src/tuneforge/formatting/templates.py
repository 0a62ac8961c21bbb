"""The template registry: every template is registered explicitly by name; duplicates are refused.

`auto` is the tokenizer's own Jinja chat template; the built-ins are in `builtin.py`; a user's own
Jinja template comes from `template.jinja` in the config, or is registered in Python with
`register_template(JinjaSpec("mine", "...", source))`.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any, Protocol

from tuneforge.config import TemplateConfig
from tuneforge.errors import ConfigError
from tuneforge.formatting import coverage
from tuneforge.formatting.base import ChatTemplate
from tuneforge.formatting.builtin import BUILTIN_TEMPLATES
from tuneforge.formatting.jinja import JinjaSpec
from tuneforge.types import Sample


class TemplateSpec(Protocol):
    """A registry entry: a name, a one-line description, and how to bind it to a tokenizer."""

    name: str
    description: str

    def build(self, tokenizer: Any) -> ChatTemplate: ...


_REGISTRY: dict[str, TemplateSpec] = {}


def register_template(spec: TemplateSpec) -> None:
    if spec.name in _REGISTRY:
        raise ValueError(f"a template named '{spec.name}' is already registered")
    _REGISTRY[spec.name] = spec


def template_specs() -> list[TemplateSpec]:
    """Every registered template, in registration order (`auto` first, then the built-ins)."""
    return list(_REGISTRY.values())


def template_names() -> list[str]:
    return list(_REGISTRY)


def load_template(cfg: TemplateConfig | str, tokenizer: Any) -> ChatTemplate:
    """The template a config asks for, bound to `tokenizer`: `template.jinja` if set, else the
    registered template `template.name` (`auto`: the tokenizer's own chat template)."""
    cfg = TemplateConfig(name=cfg) if isinstance(cfg, str) else cfg
    if cfg.jinja is not None:
        return JinjaSpec("jinja", "the config's own Jinja template", cfg.jinja).build(tokenizer)
    spec = _REGISTRY.get(cfg.name)
    if spec is None:
        close = difflib.get_close_matches(cfg.name, _REGISTRY, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"choose one of: {', '.join(_REGISTRY)}"
        raise ConfigError(f"template.name: unknown template '{cfg.name}'; {hint}")
    return spec.build(tokenizer)


register_template(JinjaSpec("auto", "The tokenizer's own chat template (Jinja), as its authors trained it."))
for _spec in BUILTIN_TEMPLATES:
    register_template(_spec)


def tool_templates() -> list[str]:
    """The built-ins that render tool definitions and tool calls."""
    return [s.name for s in BUILTIN_TEMPLATES if s.format.tools is not None]


def resolve_template(cfg: TemplateConfig, tokenizer: Any, samples: Sequence[Sample] = ()
                     ) -> tuple[ChatTemplate, str | None]:
    """`load_template`, except that `template: auto` whose tokenizer template cannot carry the tools
    or tool calls `samples` hold is replaced by the built-in of the tokenizer's family; the second
    value says so (None when nothing was replaced). Without such a built-in, the tokenizer's template
    is kept: its samples are then rejected with a `template_drops_*` reason, and counted."""
    template = load_template(cfg, tokenizer)
    if cfg.jinja is not None or cfg.name != "auto":
        return template, None
    needed = {reason: n for reason, n in coverage.needs(samples).items() if n}
    if not needed:
        return template, None
    drops = coverage.probe_drops(template) & set(needed)
    family = coverage.family_template(tokenizer)
    if not drops or family is None:
        return template, None
    what = " and ".join(f"{coverage.WHAT[r]} ({needed[r]} samples)" for r in sorted(drops))
    note = (f"template auto: the tokenizer's own chat template drops {what}; using the built-in '{family}' "
            f"template instead, which renders them (set template.name to choose another)")
    return load_template(TemplateConfig(name=family), tokenizer), note
