"""Samples -> files: jsonl, json, parquet (json and jsonl optionally gzipped), in any format that
has a writer. Written to a temporary file first, so a failed run leaves no half-written output."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from tuneforge.errors import DataError, MissingDependency, TuneforgeError
from tuneforge.io.formats import FORMATS
from tuneforge.io.report import BadRecord
from tuneforge.types import Sample

CONTAINERS = (".jsonl", ".json", ".parquet")


def write_samples(samples: Iterable[Sample], path: str | Path, to: str = "tuneforge") -> int:
    """Write `samples` as records of format `to`; the container follows the file name
    (`.jsonl`, `.json`, `.parquet`, `.jsonl.gz`, `.json.gz`). Returns the number of records written."""
    path = Path(path)
    if to not in FORMATS:
        raise TuneforgeError(f"unknown output format '{to}'; choose one of {', '.join(FORMATS)}")
    container = _container(path)
    records = to_records(samples, to)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        if container == ".parquet":
            count = _write_parquet(records, tmp)
        else:
            with _open_text(tmp, gz=path.name.lower().endswith(".gz")) as f:
                count = _write_jsonl(records, f) if container == ".jsonl" else _write_json(records, f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def to_records(samples: Iterable[Sample], to: str) -> Iterator[dict[str, Any]]:
    """Samples as records of format `to`; a sample that format cannot hold is a DataError."""
    fmt = FORMATS[to]
    pending: dict[str, Any] | None = None
    for sample in samples:
        try:
            record = fmt.write(sample)
        except BadRecord as e:
            raise DataError(sample.where, f"cannot write as {to}: {e.message}") from None
        if pending is not None and fmt.merge is not None and fmt.merge(pending, record, sample):
            continue
        if pending is not None:
            yield pending
        pending = record
    if pending is not None:
        yield pending


def _container(path: Path) -> str:
    name = path.name.lower()
    gz = name.endswith(".gz")
    suffix = Path(name.removesuffix(".gz")).suffix
    if suffix not in CONTAINERS or (gz and suffix == ".parquet"):
        raise TuneforgeError(f"{path}: cannot write '{path.name}'; name the output .jsonl, .json, .parquet, "
                             ".jsonl.gz or .json.gz")
    return suffix


def _open_text(path: Path, gz: bool) -> IO[str]:
    # surrogateescape: text is written back byte for byte, whatever the reader let through.
    if gz:
        return gzip.open(path, "wt", encoding="utf-8", errors="surrogateescape")
    return path.open("w", encoding="utf-8", errors="surrogateescape")


def _dumps(record: dict[str, Any], indent: int | None = None) -> str:
    return json.dumps(record, ensure_ascii=False, indent=indent, default=str)


def _write_jsonl(records: Iterable[dict[str, Any]], f: IO[str]) -> int:
    count = 0
    for record in records:
        f.write(_dumps(record) + "\n")
        count += 1
    return count


def _write_json(records: Iterable[dict[str, Any]], f: IO[str]) -> int:
    count = 0
    f.write("[")
    for record in records:
        f.write(("," if count else "") + "\n  " + _dumps(record, 2).replace("\n", "\n  "))
        count += 1
    f.write("\n]\n" if count else "]\n")
    return count


def _write_parquet(records: Iterable[dict[str, Any]], path: Path) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependency("pyarrow", "data", "writing parquet files") from None
    rows = list(records)
    try:
        # One struct array infers the union of every row's keys (Table.from_pylist would take the
        # columns of the first row only); a key missing in a row is null there.
        table = pa.Table.from_struct_array(pa.array(rows)) if rows else pa.table({})
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise TuneforgeError(f"{path.name.removesuffix('.partial')}: these records do not fit one parquet "
                             f"schema ({e}); write .jsonl instead") from None
    pq.write_table(table, path)
    return len(rows)
