"""The Data page: samples as the model sees them (`data show`'s encoding, trained tokens marked),
filters, `data report`'s diagnostics, and a curation run's rejects grouped by reason."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from tuneforge.config import DataConfig, DatasetConfig, TemplateConfig
from tuneforge.curate.pipeline import OUTPUT, REJECTS
from tuneforge.curate.text import ALL_FIELDS, joined_text
from tuneforge.formatting import IGNORE, Encoder, SampleRejected
from tuneforge.formatting.runs import labelled_parts, trained_runs
from tuneforge.types import Sample

DATA_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet", ".txt", ".gz")


@dataclass
class Filters:
    """What the Data page's filter bar asks for; empty fields match everything."""

    language: str = ""
    task: str = ""
    reason: str = ""
    min_chars: int = 0
    max_chars: int = 0

    def __bool__(self) -> bool:
        return bool(self.language or self.task or self.reason or self.min_chars or self.max_chars)


@dataclass
class Loaded:
    """A dataset read through tuneforge.io (or a curation output), with what the readers rejected."""

    samples: list[Sample]
    read: int
    rejected: dict[str, int]
    reasons: list[str | None] = field(default_factory=list)
    """Per sample: the curation reason where these are rejects (a rejects.jsonl), else empty."""


def is_curation_output(path: Path) -> bool:
    return path.is_dir() and (path / OUTPUT).exists()


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> Loaded:
    from tuneforge.io import read_samples

    p = Path(path)
    if is_curation_output(p):
        p = p / OUTPUT
    if p.name.endswith(REJECTS):  # curation rejects: the records, each with the operator's reason
        samples, reasons = [], []
        for line in p.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                samples.append(Sample.from_dict(r["record"]))
                reasons.append(r["reason"])
        return Loaded(samples, len(samples), {}, reasons)
    samples, report = read_samples(DataConfig(datasets=[DatasetConfig(path=str(p))]), on_error="skip")
    return Loaded(samples, report.read, dict(report.rejected))


def load(path: Path) -> Loaded:
    return _load(str(path), path.stat().st_mtime)


@lru_cache(maxsize=4)
def tokenizer_for(model: str):
    from tuneforge.models import load_tokenizer

    return load_tokenizer(model)


def language(sample: Sample) -> str:
    from tuneforge.curate.filters import detect_language

    text = joined_text(sample, ALL_FIELDS)
    return detect_language(text)[0] if text.strip() else "-"


def matches(sample: Sample, reason: str | None, f: Filters) -> bool:
    chars = len(joined_text(sample, ALL_FIELDS))
    return ((not f.task or (sample.task or "-") == f.task) and (not f.reason or reason == f.reason)
            and chars >= f.min_chars and (not f.max_chars or chars <= f.max_chars)
            and (not f.language or language(sample) == f.language))


def show(path: Path, *, model: str, template: str = "auto", train_on: str = "assistant", cutoff: int = 1024,
         filters: Filters | None = None, offset: int = 0, n: int = 10) -> dict[str, Any]:
    """The page of samples `offset..offset+n` among those matching `filters`, each encoded as training
    will encode it: token runs marked trained or given, counts, truncation, or the reason it is dropped."""
    filters = filters or Filters()
    data = load(path)
    reasons = data.reasons or [None] * len(data.samples)
    picked = [i for i, (s, r) in enumerate(zip(data.samples, reasons)) if not filters or matches(s, r, filters)]
    tokenizer = tokenizer_for(model)
    encoder = Encoder.create(tokenizer, TemplateConfig(name=template, cutoff_len=cutoff, train_on=train_on),
                             data.samples)
    shown = [_encoded(encoder, data.samples[i], i, reasons[i]) for i in picked[offset:offset + n]]
    return {"path": str(path), "total": len(data.samples), "matched": len(picked), "offset": offset,
            "read": data.read, "read_rejected": data.rejected, "template": encoder.template.name,
            "note": encoder.note, "samples": shown,
            "tasks": sorted({s.task or "-" for s in data.samples}),
            "reasons": sorted({r for r in reasons if r})}


def _encoded(encoder: Encoder, sample: Sample, index: int, reason: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"index": index, "where": sample.where, "kind": sample.kind, "task": sample.task,
                           "reason": reason}
    try:
        enc = encoder.encode(sample)
    except SampleRejected as r:
        return {**out, "dropped": r.reason, "detail": r.detail, "parts": []}
    parts = labelled_parts(enc)
    return {**out, "tokens": sum(len(ids) for _, ids, _ in parts),
            "trained": sum(t != IGNORE for _, _, labels in parts for t in labels), "truncated": enc.truncated,
            "parts": [{"name": name, "runs": trained_runs(encoder.tokenizer, ids, labels)}
                      for name, ids, labels in parts]}


def report(path: Path, model: str | None) -> dict[str, Any]:
    """`data report`'s diagnostics and its HTML (plots as inline SVG)."""
    from tuneforge.curate.report import diagnose, render_html

    d = diagnose(load(path).samples, tokenizer=model)
    return {"diagnostics": d, "html": render_html(d)}


def rejects(path: Path, examples: int = 3) -> dict[str, Any]:
    """A curation output's (or rejects file's) rejected records grouped by reason, most frequent first."""
    file = path / REJECTS if path.is_dir() else path
    if not file.exists():
        return {"path": str(file), "total": 0, "reasons": []}
    counts: Counter[str] = Counter()
    shown: dict[str, list[dict]] = {}
    for line in file.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        counts[r["reason"]] += 1
        if len(shown.setdefault(r["reason"], [])) < examples:
            shown[r["reason"]].append({"operator": r.get("operator"), "detail": r.get("detail"),
                                       "where": r.get("where"),
                                       "text": joined_text(Sample.from_dict(r["record"]), ALL_FIELDS)[:400]})
    return {"path": str(file), "total": sum(counts.values()),
            "reasons": [{"reason": k, "count": n, "examples": shown[k]} for k, n in counts.most_common()]}


def listing(folder: Path) -> list[dict[str, Any]]:
    """Sub-folders and data files of `folder` (hidden ones left out), folders first."""
    entries = []
    for p in sorted(folder.iterdir(), key=lambda p: (not p.is_dir(), p.name.lower())):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            entries.append({"name": p.name, "dir": True, "curated": is_curation_output(p)})
        elif p.name.endswith(DATA_SUFFIXES):
            entries.append({"name": p.name, "dir": False, "size": p.stat().st_size})
    return entries
