"""A depth limit for JSON records, so that hostile nesting is one bad record instead of a crash.

Python's json parser, json.dumps and every recursive walk over a record fail with RecursionError
near 1,000 levels, which would end a whole run at one line such as `[[[[...` 50,000 deep. Real
records are a few levels deep; anything past MAX_DEPTH (parquet's own limit) is rejected, whether the
parser gave up on it or not, so the verdict does not depend on how deep the caller's stack is.
Parquet and HF datasets files need no check here: Arrow refuses such nesting when it opens them.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tuneforge.io.report import BadRecord

MAX_DEPTH = 100
"""Levels of arrays and objects a record may have (`{"a": [1]}` has 2)."""

# A JSON string (skipped whole, so brackets inside it do not count) or one bracket.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.S)


def too_deep() -> BadRecord:
    return BadRecord("nested too deeply", f"more than {MAX_DEPTH} levels of arrays and objects")


def loads(text: str) -> Any:
    """json.loads, with records nested past MAX_DEPTH raised as BadRecord (JSONDecodeError as usual)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise too_deep() from None
    check_depth(value, text)
    return value


def raw_decode(decoder: json.JSONDecoder, text: str, pos: int) -> tuple[Any, int]:
    """`decoder.raw_decode` at `pos`, with the same depth rule as `loads`."""
    try:
        value, end = decoder.raw_decode(text, pos)
    except RecursionError:
        raise too_deep() from None
    check_depth(value, text, pos, end)
    return value, end


def check_depth(value: Any, text: str | None = None, start: int = 0, end: int | None = None) -> None:
    """BadRecord when `value` is nested past MAX_DEPTH. With the `text` it was parsed from, a value
    with too few brackets to be that deep is passed without walking it (the common case)."""
    if text is not None and sum(text.count(c, start, end) for c in "[{") <= MAX_DEPTH:
        return
    if not isinstance(value, (dict, list)):
        return
    # Iterative, so that checking depth cannot itself overflow the stack.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > MAX_DEPTH:
            raise too_deep()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def value_end(text: str, pos: int) -> int | None:
    """End of the array or object opening at `pos`, by matching brackets outside strings; None when it
    never closes. Lets a reader step over a record too deep for the parser."""
    depth = 0
    for m in _TOKEN.finditer(text, pos):
        token = m.group()
        if token in ("[", "{"):
            depth += 1
        elif token in ("]", "}"):
            depth -= 1
            if depth == 0:
                return m.end()
        elif depth == 0:
            return None  # a string before any bracket: pos does not open an array or object
    return None

