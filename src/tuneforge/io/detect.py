"""`format: auto`: tell a record's format from the fields it has."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tuneforge.errors import DataError
from tuneforge.io.formats import FORMATS, lf_v1

# A format fits a record that has all the fields of any one of its signatures. Most specific first
# within a format; across formats more than one fit is reported as ambiguous, never guessed.
_SIGNATURES: dict[str, tuple[tuple[str, ...], ...]] = {
    "tuneforge": (("meta", "messages"), ("meta", "text")),
    "sharegpt": (("conversations",),),
    "messages": (("messages",),),
    "self_instruct": (("instruction", "instances"),),
    "alpaca": (("instruction", "output"), ("instruction", "chosen", "rejected")),
    "preference": (("prompt", "chosen", "rejected"), ("chosen", "rejected")),
    "text": (("text",),),
}
# Fits that are really one format seen from two sides, resolved by the more specific one.
_IMPLIED = {"tuneforge": {"messages", "text"}, "sharegpt": {"preference"}, "alpaca": {"preference"},
            "messages": {"preference"}}


def detect_format(record: dict[str, Any], columns: Mapping[str, str], source: str) -> str:
    """The one format whose fields `record` has; a DataError naming the candidates otherwise."""
    present = {f for f in {f for sigs in _SIGNATURES.values() for sig in sigs for f in sig}
               if record.get(columns.get(f, f)) is not None}
    fits = {name for name, sigs in _SIGNATURES.items() if any(set(sig) <= present for sig in sigs)}
    for name in list(fits):
        fits -= _IMPLIED.get(name, set())
    if fits == {"messages"} and lf_v1.is_record(record, columns.get("messages", "messages")):
        return "lf_v1"  # the same top-level fields; told apart by the messages' parts
    if len(fits) == 1:
        return fits.pop()
    keys = ", ".join(sorted(map(str, record))) or "none"
    choices = ", ".join(FORMATS)
    if not fits:
        raise DataError(source, f"cannot tell the format: the first record's fields ({keys}) fit none of "
                                f"{choices}; set `format` (--format) and, if the names differ, `columns`")
    raise DataError(source, f"cannot tell the format: the first record fits {' and '.join(sorted(fits))} "
                            f"(fields: {keys}); set `format` (--format) to one of them")
