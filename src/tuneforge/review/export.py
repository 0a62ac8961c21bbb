"""Review work -> training data.

- `sft`: each item with an edited reply gives one record, prompt + the edited reply (the chosen
  candidate's edit when the chosen one was edited, else the latest edit).
- `dpo`: each item with a choice among several candidates gives one pair per other candidate (chosen
  over it); an item with an edit and no such choice gives the edit chosen over the original reply. Edits
  are applied to both sides.
- `kto`: each thumbed candidate gives one record, prompt + the reply as it was judged (the edit in
  force when the thumb was given, else the original), with a boolean `label` (True: up). The records are messages plus
  `label`, LLaMA-Factory's kto format with `"kto_tag": "label"` in its dataset_info columns.

Every record's `meta["review"]` names the item, candidate(s), reviewers and the sources. The report
counts items: every item is exported or counted under the reason it was not.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tuneforge.review.items import Item
from tuneforge.review.store import ReviewStore
from tuneforge.types import Sample

ExportKind = Literal["sft", "dpo", "kto"]
EXPORT_KINDS: tuple[str, ...] = ("sft", "dpo", "kto")


@dataclass
class ExportReport:
    kind: str
    items: int = 0
    items_exported: int = 0
    records: int = 0
    not_exported: Counter[str] = field(default_factory=Counter)
    """Items left out, by reason: skipped (only skips, nothing else), not_reviewed, no_edit / no_choice /
    no_thumbs (reviewed, but nothing this kind uses), identical (the pair's replies are the same text)."""

    @property
    def balanced(self) -> bool:
        return self.items == self.items_exported + sum(self.not_exported.values())

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "items": self.items, "items_exported": self.items_exported,
                "records": self.records, "not_exported": dict(self.not_exported)}


def export(store: ReviewStore, kind: ExportKind, path: str | Path) -> ExportReport:
    """Write `kind` records of every item to jsonl at `path` (written whole, then moved into place)."""
    build = {"sft": _sft, "dpo": _dpo, "kto": _kto}[kind]
    report = ExportReport(kind)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as f:
        for item in store.items():
            report.items += 1
            records = list(build(item))
            if records and isinstance(records[0], str):
                report.not_exported[str(records[0])] += 1
                continue
            report.items_exported += 1
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
                report.records += 1
    partial.replace(path)
    return report


def _why_not(item: Item, wanted: str) -> str:
    if not item.events:
        return "not_reviewed"
    if all(e.action in ("skip", "note") for e in item.events):
        return "skipped"
    return wanted


def _meta(item: Item, **candidates: int) -> dict[str, Any]:
    review = {"item": item.id, "reviewers": item.state.reviewers,
              **{k: v + 1 for k, v in candidates.items()},
              "sources": {k: item.candidates[v].source for k, v in candidates.items()}}
    if item.state.notes:
        review["notes"] = [text for _, text in item.state.notes]
    return {**item.meta, "review": review}


def _sft(item: Item) -> Iterator[dict[str, Any] | str]:
    edits = item.state.edits
    if not edits:
        yield _why_not(item, "no_edit")
        return
    index = item.state.choice if item.state.choice in edits else _latest(item, "edit")
    yield Sample(messages=[*item.prompt, *item.reply(index)], tools=item.tools,
                 meta=_meta(item, candidate=index)).to_dict()


def _dpo(item: Item) -> Iterator[dict[str, Any] | str]:
    state = item.state
    if state.choice is not None and len(item.candidates) > 1:
        pairs = [(state.choice, other, item.reply(other)) for other in range(len(item.candidates))
                 if other != state.choice]
    elif state.edits:
        index = state.choice if state.choice in state.edits else _latest(item, "edit")
        pairs = [(index, index, item.candidates[index].reply)]  # the edit over the original
    else:
        yield _why_not(item, "no_choice")
        return
    records: list[dict[str, Any] | str] = []
    for chosen, rejected, rejected_reply in pairs:
        chosen_reply = item.reply(chosen)
        if [m.content for m in chosen_reply] == [m.content for m in rejected_reply]:
            continue
        records.append(Sample(messages=item.prompt, chosen=chosen_reply, rejected=rejected_reply, tools=item.tools,
                              meta=_meta(item, chosen=chosen, rejected=rejected)).to_dict())
    yield from records or ["identical"]


def _kto(item: Item) -> Iterator[dict[str, Any] | str]:
    if not item.state.thumbs:
        yield _why_not(item, "no_thumbs")
        return
    for index, up in sorted(item.state.thumbs.items()):
        edit = item.state.thumbed_edit[index]
        reply = item.candidates[index].reply if edit is None else item.reply(index, edit)
        record = Sample(messages=[*item.prompt, *reply], tools=item.tools,
                        meta=_meta(item, candidate=index)).to_dict()
        yield {**record, "label": up}


def _latest(item: Item, action: str) -> int:
    candidate = next(e.candidate for e in reversed(item.events) if e.action == action)
    assert candidate is not None  # edit events always name their candidate
    return candidate
