"""`tuneforge data convert`: read datasets, write them in another format, keep the counts."""

from __future__ import annotations

from pathlib import Path

from tuneforge.config import DataConfig
from tuneforge.io.read import iter_data
from tuneforge.io.report import ReadReport
from tuneforge.io.writers import write_samples


def default_rejects_path(output: str | Path) -> Path:
    return Path(output).parent / "rejects.jsonl"


def convert(data: DataConfig, output: str | Path, *, to: str = "tuneforge") -> tuple[ReadReport, int]:
    """Stream every dataset of `data` into `output`; returns the read report and records written.
    Rejected records (with `on_error: skip`) go to `data.rejects_path`, by default beside the output."""
    rejects = data.rejects_path or (default_rejects_path(output) if data.on_error == "skip" else None)
    # Both files appear complete or not at all: the writer renames its temporary file into place,
    # the rejects file follows once the output is there.
    report = ReadReport(rejects_path=rejects, atomic=True)
    try:
        written = write_samples(iter_data(data, report), output, to=to)
    except BaseException:
        report.discard()
        raise
    report.finish()
    return report, written
