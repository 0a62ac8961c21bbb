"""Reading one raw record through the dataset's column mapping, and what every format shares:
typed field access with precise reasons, the `extra` columns kept for writing back, tool lists."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from tuneforge.errors import ConfigError
from tuneforge.io import nesting
from tuneforge.io.report import BadRecord
from tuneforge.types import Sample, normalize_tool


class RecordView:
    """A record seen through `columns` (our field name -> the file's column). It remembers which
    columns were read, so that all the others can be kept in `meta["extra"]` and written back."""

    def __init__(self, record: dict[str, Any], columns: Mapping[str, str]):
        self.record = record
        self.columns = columns
        self._used: set[str] = set()

    def _name(self, field: str) -> str:
        column = self.columns.get(field, field)
        return f"'{field}'" if column == field else f"'{field}' (column '{column}')"

    def has(self, field: str) -> bool:
        return self.record.get(self.columns.get(field, field)) is not None

    def get(self, field: str, required: bool = False) -> Any:
        """The value, or None when absent or null (Arrow and csv cannot tell those apart)."""
        column = self.columns.get(field, field)
        self._used.add(column)
        value = self.record.get(column)
        if value is None and required:
            raise BadRecord(f"missing required field {self._name(field)}")
        return value

    def text(self, field: str, required: bool = False) -> str | None:
        return self._typed(field, required, str, "a string")

    def items(self, field: str, required: bool = False) -> list[Any] | None:
        return self._typed(field, required, list, "a list")

    def _typed(self, field: str, required: bool, kind: type, described: str) -> Any:
        value = self.get(field, required)
        if value is not None and not isinstance(value, kind):
            raise wrong_type(self._name(field), described, value)
        return value

    def sample_id(self) -> str | None:
        # An `id` that is not a string stays in `extra`, so writing back restores it unchanged.
        value = self.record.get(self.columns.get("id", "id"))
        return self.text("id") if isinstance(value, str) else None

    def meta(self, layout: dict[str, Any] | None = None) -> dict[str, Any]:
        """`layout`: what a writer needs to rebuild the record exactly; `extra`: unread columns."""
        meta: dict[str, Any] = {}
        if layout:
            meta["layout"] = layout
        extra = {k: v for k, v in self.record.items() if k not in self._used and v is not None}
        if extra:
            meta["extra"] = extra
        return meta


def wrong_type(name: str, described: str, value: Any) -> BadRecord:
    return BadRecord(f"wrong type for {name}", f"expected {described}, got {type(value).__name__}")


def check_columns(columns: Mapping[str, str], fields: Iterable[str], fmt: str) -> None:
    """Config check: every key of `columns` must be a field this format reads."""
    fields = list(fields)
    for key in columns:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"the {fmt} fields are {', '.join(fields)}"
            raise ConfigError(f"columns: '{key}' is not a field of the {fmt} format; {hint}")


def parse_tools(value: Any, name: str = "'tools'") -> list[dict[str, Any]] | None:
    """Tool definitions: a list of objects, or (LLaMA-Factory's habit) that list as a JSON string."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = nesting.loads(value)
        except json.JSONDecodeError as e:
            raise BadRecord(f"malformed JSON in {name}", f"{e.msg} at column {e.colno}") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise wrong_type(name, "a list of tool objects", value)
    # Kept in OpenAI's shape {"type": "function", "function": {...}}; bare definitions are wrapped.
    return [normalize_tool(t) for t in value]


def bare_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool definitions as LLaMA-Factory's alpaca and sharegpt files hold them: the bare functions."""
    return [t["function"] if t.get("type") == "function" and isinstance(t.get("function"), dict) else t
            for t in tools]


_THINK = re.compile(r"\A<think>\n?(.*?)\n?</think>(?:\n\n|\n)?", re.DOTALL)


def split_think(content: str) -> tuple[str | None, str]:
    """`(reasoning, reply)` of a reply that opens with `<think>...</think>`; `(None, content)` otherwise.
    The newlines that `join_think` writes around the trace are not part of it."""
    match = _THINK.match(content)
    if match is None:
        return None, content
    return match.group(1), content[match.end():]


def join_think(reasoning: str | None, content: str) -> str:
    """A reply with its reasoning trace in front, as reasoning models write it."""
    return content if reasoning is None else f"<think>\n{reasoning}\n</think>\n\n{content}"


def add_back(record: dict[str, Any], sample: Sample) -> dict[str, Any]:
    """Finish a written record: the sample's id and the extra columns it was read with."""
    if sample.id is not None:
        record.setdefault("id", sample.id)
    for key, value in (sample.meta.get("extra") or {}).items():
        record.setdefault(key, value)
    return record


def layout(sample: Sample) -> dict[str, Any]:
    return sample.meta.get("layout") or {}
