"""Records out of each file kind, with the line each one starts on.

jsonl, txt, csv and parquet stream, so large files are never loaded whole; a `.json` array is read
whole but parsed element by element, so every record still knows its line. Text is decoded with
`surrogateescape` so that a stray invalid byte rejects one record instead of the whole file, and
JSON is parsed through `nesting`, so that a record nested thousands deep is rejected, not a crash.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tuneforge.errors import DataError, MissingDependency
from tuneforge.io import nesting
from tuneforge.io.files import file_kind, is_gzip
from tuneforge.io.report import BadRecord

_UNDECODABLE = re.compile("[\udc80-\udcff]")
# A JSON escape such as "\ud800" without its pair: no UTF-8 can hold it, so no writer could write it
# (the rest of the surrogate range is what `surrogateescape` made of invalid bytes).
LONE_SURROGATE = re.compile("[\ud800-\udc7f]")


@dataclass
class RawRecord:
    source: str
    line: int | None
    """1-based line the record starts on; the row number for parquet and HF datasets."""
    data: Any
    """The parsed record, or the raw text when it could not be parsed (then `error` says why)."""
    error: BadRecord | None = None
    index: int | None = None
    """Position in a `.json` array, shown in messages next to the line."""

    @property
    def where(self) -> str:
        loc = self.source if self.line is None else f"{self.source}:{self.line}"
        return loc if self.index is None else f"{loc} (index {self.index})"


def read_records(path: Path, split: str | None = None) -> Iterator[RawRecord]:
    kind = file_kind(path)
    source = str(path)
    if kind == "hf":
        yield from _hf_records(path, split)
    elif kind == ".parquet":
        yield from _parquet_records(path)
    else:
        try:
            with _open_binary(path) as f:
                if kind == ".jsonl":
                    yield from _jsonl_records(f, source)
                elif kind == ".txt":
                    yield from _txt_records(f, source)
                elif kind == ".csv":
                    yield from _csv_records(f, source)
                else:
                    yield from _json_records(f.read(), source)
        except (OSError, EOFError, zlib.error) as e:  # a truncated or corrupt .gz: nothing past it can be read
            raise DataError(source, f"cannot read this file: {e}") from None


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if is_gzip(path) else path.open("rb")


def undecodable_field(value: Any, name: str = "", pattern: re.Pattern[str] = _UNDECODABLE) -> str | None:
    """Name of the first string (value or key) inside `value` holding bytes that were not valid UTF-8
    (or, with `pattern=LONE_SURROGATE`, an unpaired surrogate), else None."""
    if isinstance(value, str):
        return name if pattern.search(value) else None
    if isinstance(value, dict):
        if any(isinstance(key, str) and pattern.search(key) for key in value):
            return name or "record"  # a key: name the object holding it
        items = value.items()
    elif isinstance(value, list):
        items = ((f"{name}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for key, item in items:
        found = undecodable_field(item, str(key) if isinstance(value, dict) else key, pattern)
        if found is not None:
            return found or "record"
    return None


def _decode_line(raw: bytes) -> tuple[str, BadRecord | None]:
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as e:
        detail = f"byte 0x{raw[e.start]:02x} at column {e.start + 1}"
        return raw.decode("utf-8", "replace"), BadRecord("invalid UTF-8", detail)


def _lines(f: IO[bytes]) -> Iterator[tuple[int, str, BadRecord | None]]:
    """Non-empty lines with their number, decoded; a BOM at the start is dropped."""
    for number, raw in enumerate(f, start=1):
        if number == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        raw = raw.rstrip(b"\r\n")
        if raw.strip():
            text, error = _decode_line(raw)
            yield number, text, error


def _jsonl_records(f: IO[bytes], source: str) -> Iterator[RawRecord]:
    for number, text, error in _lines(f):
        data: Any = text
        if error is None:
            try:
                data = nesting.loads(text)
            except json.JSONDecodeError as e:
                error = BadRecord("malformed JSON", f"{e.msg} at column {e.colno}")
            except BadRecord as e:  # nested too deeply
                error = e
        yield RawRecord(source, number, data, error)


def _txt_records(f: IO[bytes], source: str) -> Iterator[RawRecord]:
    # As LLaMA-Factory (and HF's `text` builder) do: every line is one text sample; blank lines
    # separate nothing and are not records.
    for number, text, error in _lines(f):
        yield RawRecord(source, number, {"text": text}, error)


def _csv_records(f: IO[bytes], source: str) -> Iterator[RawRecord]:
    # A cell past csv's default 128 KiB limit (a long document) is data, not an error that ends the read.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    text = io.TextIOWrapper(f, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.DictReader(text)
    start = 2  # line 1 is the header
    for row in reader:
        surplus = row.pop(None, None)  # DictReader files cells beyond the header under None
        error = None if surplus is None else BadRecord(
            "wrong number of columns", f"{len(reader.fieldnames or [])} in the header, {len(row) + len(surplus)} here")
        yield RawRecord(source, start, row, error)
        start = reader.line_num + 1


def _json_records(raw: bytes, source: str) -> Iterator[RawRecord]:
    text = raw.decode("utf-8-sig", "surrogateescape")
    decoder = json.JSONDecoder()
    pos = _skip_space(text, 0)
    if pos == len(text):
        return
    if text[pos] != "[":  # a single object is one record
        line = text.count("\n", 0, pos) + 1
        try:
            single = RawRecord(source, line, nesting.loads(text))
        except json.JSONDecodeError as e:
            raise _unskippable(source, e) from None
        except BadRecord as e:
            single = RawRecord(source, line, text, e)
        yield single
        return
    pos += 1
    index, line, counted_to = 0, 1, 0
    while True:
        pos = _skip_space(text, pos)
        if text.startswith("]", pos):
            break
        line += text.count("\n", counted_to, pos)
        counted_to = pos
        try:
            record, end = nesting.raw_decode(decoder, text, pos)
            raw = RawRecord(source, line, record, index=index)
        except json.JSONDecodeError as e:
            raise _unskippable(source, e) from None
        except BadRecord as e:  # nested too deeply: step over it by its brackets, it is one bad record
            end = nesting.value_end(text, pos)
            if end is None:
                raise DataError(f"{source}:{line}", f"malformed JSON: {e.message}, never closed (a .json file "
                                                    "must parse as a whole)") from None
            raw = RawRecord(source, line, text[pos:end], e, index=index)
        yield raw
        index += 1
        pos = _skip_space(text, end)
        if text.startswith(",", pos):
            pos += 1
        elif not text.startswith("]", pos):
            raise _unskippable(source, json.JSONDecodeError("expected ',' or ']' after a record", text, pos))
    if _skip_space(text, pos + 1) != len(text):
        raise _unskippable(source, json.JSONDecodeError("extra data after the array", text, pos + 1))


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _unskippable(source: str, e: json.JSONDecodeError) -> DataError:
    # Inside a broken JSON array the end of the bad record is unknown, so it cannot be skipped.
    return DataError(f"{source}:{e.lineno}",
                     f"malformed JSON: {e.msg} at column {e.colno} (a .json file must parse as a whole; "
                     "fix it, or use .jsonl so that bad lines can be skipped)")


def _parquet_records(path: Path) -> Iterator[RawRecord]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependency("pyarrow", "data", "reading parquet files") from None
    source = str(path)
    handle: Any = source
    if is_gzip(path):  # parquet needs to seek, which a gzip stream cannot
        with _open_binary(path) as f:
            handle = io.BytesIO(f.read())
    try:
        parquet = pq.ParquetFile(handle)
    except (OSError, pa.ArrowException) as e:  # not parquet, or nested past pyarrow's own limit
        raise DataError(source, f"cannot read this parquet file: {e}") from None
    row = 0
    for batch in parquet.iter_batches(batch_size=1024):
        for record in batch.to_pylist():
            row += 1
            yield RawRecord(source, row, drop_nulls(record))


def _hf_records(path: Path, split: str | None) -> Iterator[RawRecord]:
    try:
        import datasets
    except ImportError:
        raise MissingDependency("datasets", "data", "reading HF datasets directories") from None
    ds = datasets.load_from_disk(str(path))
    source = str(path)
    if isinstance(ds, datasets.DatasetDict):
        names = list(ds)
        chosen = split or ("train" if "train" in ds else names[0] if len(names) == 1 else None)
        if chosen not in ds:
            raise DataError(source, f"choose a split with `split:` (this directory has {', '.join(names)})")
        ds, source = ds[chosen], f"{source}[{chosen}]"
    for row, record in enumerate(ds, start=1):
        yield RawRecord(source, row, drop_nulls(record))


def drop_nulls(value: Any) -> Any:
    """Arrow has no "absent": a key missing from some rows is null there. Read nulls as absent keys."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value
