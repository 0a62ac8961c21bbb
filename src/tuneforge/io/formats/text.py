"""Raw text for continued pre-training: a `text` field (jsonl, csv, parquet) or the lines of a .txt."""

from __future__ import annotations

from typing import Any

from tuneforge.io.formats.fields import RecordView, add_back
from tuneforge.io.report import BadRecord
from tuneforge.types import Sample

FIELDS = ("text", "id")


def read(view: RecordView) -> list[Sample]:
    text = view.text("text", required=True)
    return [Sample(text=text, id=view.sample_id(), meta=view.meta())]


def write(sample: Sample) -> dict[str, Any]:
    if sample.kind != "text":
        raise BadRecord(f"a {sample.kind} sample has no text form", "write it --to tuneforge, or a chat format")
    return add_back({"text": sample.text}, sample)
