"""Datasets -> review items. Any file tuneforge reads works: `data generate` output (canonical jsonl
with provenance in `meta`), preference data, or a chat dataset.

- a chat sample becomes its prompt (the turns before the final assistant turns) and one candidate
  (those final assistant turns);
- a preference sample becomes its prompt and two candidates, chosen and rejected, in an order drawn
  from the prompt's hash so that a reviewer cannot learn that the first is always the better one;
- replies to the same prompt from several imports (the teacher's, your fine-tune's) gather on one item,
  up to four; the source of each is kept.

Nothing is lost silently: every reply offered is added or counted under the reason it was not.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.review.items import SOURCE_KINDS
from tuneforge.review.store import ReviewError, ReviewStore, prompt_key
from tuneforge.types import Message, Sample


@dataclass
class ImportReport:
    samples: int = 0
    """Samples read."""
    offered: int = 0
    """Replies offered as candidates (a preference sample offers two)."""
    added: int = 0
    items_created: int = 0
    not_added: Counter[str] = field(default_factory=Counter)
    """Replies not added, by reason: duplicate, too_many_candidates, already_reviewed."""
    unusable: Counter[str] = field(default_factory=Counter)
    """Samples that offer no reply, by reason: text_only (raw text), no_reply (no final assistant turn)."""

    @property
    def balanced(self) -> bool:
        return self.offered == self.added + sum(self.not_added.values())

    def to_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "offered": self.offered, "added": self.added,
                "items_created": self.items_created, "not_added": dict(self.not_added),
                "unusable": dict(self.unusable)}


OUTPUT_DATA = "data.jsonl"
"""What `data generate` and `data curate` write their kept records to, inside their output folder."""


def import_file(store: ReviewStore, path: str | Path, *, kind: str | None = None,
                name: str | None = None) -> ImportReport:
    """`import_samples` of a dataset read by tuneforge's readers (malformed records stop the import
    with `file:line`). The output folder of `data generate` or `data curate` means its `data.jsonl`,
    not its rejects and stats."""
    from tuneforge.io import read_samples

    folder = Path(path)
    if folder.is_dir() and (folder / OUTPUT_DATA).is_file():
        path = folder / OUTPUT_DATA
    return import_samples(store, read_samples(str(path))[0], kind=kind, name=name)


def import_samples(store: ReviewStore, samples: list[Sample], *, kind: str | None = None,
                   name: str | None = None) -> ImportReport:
    """Add every sample's replies to `store`. `kind` / `name` describe where the replies came from (one
    of SOURCE_KINDS, and a model, adapter, endpoint or file name); by default `generate` for records with
    generation provenance (`meta["mode"]`), named by the model that wrote the reply (`chosen_model` /
    `rejected_model`, else `teacher`), else `dataset`, named by the record's source file."""
    if kind is not None and kind not in SOURCE_KINDS:
        raise ReviewError(f"source kind {kind!r} is not one of {', '.join(SOURCE_KINDS)}")
    report = ImportReport()
    before = store.count()
    for sample in samples:
        report.samples += 1
        split = replies_of(sample)
        if isinstance(split, str):
            report.unusable[split] += 1
            continue
        prompt, replies = split
        meta = {k: v for k, v in sample.meta.items() if k not in ("source", "line")}
        for label, reply in replies:
            report.offered += 1
            source = _source(sample, label, kind, name)
            outcome = store.add_candidate(prompt, sample.tools, reply, source, meta)
            if outcome == "added":
                report.added += 1
            else:
                report.not_added[outcome] += 1
    report.items_created = store.count() - before
    return report


def replies_of(sample: Sample) -> tuple[list[Message], list[tuple[str | None, list[Message]]]] | str:
    """(prompt, [(label, reply), ...]) of a sample, or the reason it offers no reply."""
    if sample.kind == "text":
        return "text_only"
    if sample.kind == "preference":
        offered = (("chosen", sample.chosen), ("rejected", sample.rejected))
        pairs: list[tuple[str | None, list[Message]]] = [(label, reply) for label, reply in offered if reply]
        if not pairs:
            return "no_reply"
        if int(prompt_key(sample.messages, sample.tools)[-1], 16) % 2:  # blind order, stable across imports
            pairs.reverse()
        return sample.messages, pairs
    cut = len(sample.messages)
    while cut > 0 and sample.messages[cut - 1].role == "assistant":
        cut -= 1
    if cut == len(sample.messages) or cut == 0:
        return "no_reply"
    return sample.messages[:cut], [(None, sample.messages[cut:])]


def _source(sample: Sample, label: str | None, kind: str | None, name: str | None) -> dict[str, Any]:
    file = sample.meta.get("source")
    provenance = {k: v for k, v in sample.meta.items() if k not in ("source", "line")}
    model = provenance.get(f"{label}_model") or provenance.get("teacher")  # what `data generate` records
    source: dict[str, Any] = {
        "kind": kind or ("generate" if "mode" in provenance else "dataset"),
        "name": name or model or (Path(str(file)).name if file else "memory"),
    }
    if file is not None:
        source["file"], source["line"] = str(file), sample.meta.get("line")
    if label is not None:
        source["label"] = label
    if provenance:
        source["meta"] = provenance
    return source
