"""`{{name}}` placeholders in data (LLaMA-Factory's identity.json uses `{{name}}` and `{{author}}`).

With no values given, placeholders are left as they are, so converting stays lossless, and counted
so the user sees them. Once values are given, every placeholder in the data must have one: training
on a literal `{{author}}` is never what anyone meant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tuneforge.io.report import BadRecord

# Identifiers only: code in the data ("{{ user.name }}", "{{ . }}") is not a placeholder.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")


def find_placeholders(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(PLACEHOLDER.findall(value))
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return set().union(*map(find_placeholders, value)) if value else set()
    return set()


def fill_placeholders(value: Any, values: Mapping[str, str]) -> Any:
    """`value` with every `{{name}}` in its strings replaced; BadRecord names those without a value."""
    missing = sorted(find_placeholders(value) - set(values))
    if missing:
        names = ", ".join("{{" + m + "}}" for m in missing)
        raise BadRecord("unfilled placeholders", f"{names}; give values with data.placeholders "
                                                 "(CLI: --set-placeholder NAME=VALUE)")
    return _substitute(value, values)


def _substitute(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: values[m[1]], value) if "{{" in value else value
    if isinstance(value, dict):
        return {k: _substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, values) for v in value]
    return value
