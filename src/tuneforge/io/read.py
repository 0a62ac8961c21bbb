"""Datasets -> samples: the read loop that applies formats, checks, placeholders and the
raise-or-skip policy, and keeps the counts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal

from tuneforge.config import DataConfig, DatasetConfig
from tuneforge.errors import DataError
from tuneforge.io.checks import check_sample
from tuneforge.io.dataset_info import is_entry_path, resolve_entry
from tuneforge.io.dataset_yaml import is_descriptor, resolve_entries
from tuneforge.io.detect import detect_format
from tuneforge.io.files import expand
from tuneforge.io.formats import FORMATS, Format
from tuneforge.io.formats.fields import RecordView, check_columns
from tuneforge.io.formats.sharegpt import resolve_tags
from tuneforge.io.kto import LABEL, record_label
from tuneforge.io.placeholders import fill_placeholders, find_placeholders
from tuneforge.io.readers import LONE_SURROGATE, RawRecord, read_records, undecodable_field
from tuneforge.io.report import BadRecord, ReadReport
from tuneforge.types import Sample

OnError = Literal["raise", "skip"]


def iter_samples(
    dataset: DatasetConfig,
    *,
    placeholders: Mapping[str, str] | None = None,
    on_error: OnError = "raise",
    report: ReadReport | None = None,
) -> Iterator[Sample]:
    """Stream the samples of one dataset.

    A bad record raises `DataError("file:line", reason)`, or with `on_error="skip"` is counted in
    `report` (and written to its rejects file). `placeholders`: values for `{{name}}`; None or
    empty leaves placeholders as they are (counted in `report.unfilled`).
    """
    report = report if report is not None else ReadReport()
    for path, config in data_files(dataset):
        yield from _file_samples(path, config, placeholders or {}, on_error, report)


def read_samples(
    data: DataConfig | str | list[str],
    *,
    placeholders: Mapping[str, str] | None = None,
    on_error: OnError | None = None,
    rejects_path: str | Path | None = None,
) -> tuple[list[Sample], ReadReport]:
    """All samples of every dataset in `data` (a config, or paths read with `format: auto`).
    Keyword arguments override the config's `placeholders`, `on_error` and `rejects_path`."""
    data = as_data_config(data)
    report = ReadReport(rejects_path=rejects_path or data.rejects_path, atomic=True)
    try:
        samples = list(iter_data(data, report, placeholders=placeholders, on_error=on_error))
    except BaseException:
        report.discard()
        raise
    report.finish()
    return samples, report


def as_data_config(data: DataConfig | str | list[str]) -> DataConfig:
    if isinstance(data, DataConfig):
        return data
    return DataConfig(datasets=[DatasetConfig(path=data)])


def iter_data(data: DataConfig, report: ReadReport, *, placeholders: Mapping[str, str] | None = None,
              on_error: OnError | None = None) -> Iterator[Sample]:
    """Every dataset of `data` in order, counted in one report."""
    for dataset in data.datasets:
        yield from iter_samples(dataset, placeholders=data.placeholders if placeholders is None else placeholders,
                                on_error=on_error or data.on_error, report=report)


def data_files(dataset: DatasetConfig) -> Iterator[tuple[Path, DatasetConfig]]:
    """The files a dataset entry reads (registry and descriptor entries resolved), each with the entry
    settings that apply to it; the manifest hashes exactly these."""
    for path in [dataset.path] if isinstance(dataset.path, str) else dataset.path:
        if is_descriptor(path):  # a LLaMA-Factory v1 dataset YAML: its entries, each with its own file
            for entry in resolve_entries(path, dataset):
                for file in expand(str(entry.path)):
                    yield file, entry
            continue
        if is_entry_path(path):  # an entry brings its own file, format and columns
            entry = resolve_entry(path, dataset)
            path, config = str(entry.path), entry
        else:
            config = dataset
        for file in expand(path):
            yield file, config


def _file_samples(path: Path, config: DatasetConfig, placeholders: Mapping[str, str], on_error: OnError,
                  report: ReadReport) -> Iterator[Sample]:
    fmt: Format | None = None if config.format == "auto" else FORMATS[config.format]
    if fmt is not None:
        check_columns(config.columns, (*fmt.fields, LABEL), fmt.name)
    tags = resolve_tags(config.tags)
    for raw in read_records(path, config.split):
        if fmt is None and raw.error is None and isinstance(raw.data, dict):
            fmt = FORMATS[detect_format(raw.data, config.columns, str(path))]
            check_columns(config.columns, (*fmt.fields, LABEL), fmt.name)
        report.read += 1
        try:
            samples = _convert(raw, fmt, config, tags, placeholders, report)
        except BadRecord as e:
            if on_error == "raise":
                raise DataError(raw.where, e.message) from None
            report.reject(raw.source, raw.line, raw.where, e, raw.data)
            continue
        report.kept += 1
        report.samples += len(samples)
        yield from samples


def _convert(raw: RawRecord, fmt: Format | None, config: DatasetConfig, tags: Mapping[str, str],
             placeholders: Mapping[str, str], report: ReadReport) -> list[Sample]:
    if raw.error is not None:
        raise raw.error
    record = raw.data
    if not isinstance(record, dict):
        raise BadRecord("not an object", f"the record is a {type(record).__name__}")
    field = undecodable_field(record)
    if field is not None:
        raise BadRecord("invalid UTF-8", f"undecodable bytes in '{field}'")
    field = undecodable_field(record, pattern=LONE_SURROGATE)
    if field is not None:
        raise BadRecord("invalid Unicode", f"an unpaired surrogate (\\ud800-\\udfff) in '{field}'")
    assert fmt is not None  # detected from the first object record, which this is or follows
    if placeholders:
        record = fill_placeholders(record, placeholders)
    else:
        report.unfilled.update(find_placeholders(record))
    samples = fmt.read(RecordView(record, config.columns), tags)
    label = record_label(record, config.columns)  # a KTO label, in every chat format
    for sample in samples:
        check_sample(sample)
        sample.meta = {"source": raw.source, "line": raw.line, **sample.meta}
        if label is not None:
            sample.meta[LABEL] = label
        if config.task is not None:
            sample.task = config.task
    return samples

