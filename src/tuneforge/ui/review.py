"""The Review page and the playground's feedback, on the project's review store (`tuneforge.review`):
one store under the root, used by one request at a time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tuneforge.review import ReviewStore, export, import_samples, review_stats
from tuneforge.review.items import Item
from tuneforge.types import Message

T = TypeVar("T")


class Review:
    def __init__(self, root: Path) -> None:
        self.store = ReviewStore.open(root)
        self._lock = threading.Lock()

    def run(self, fn: Callable[[ReviewStore], T]) -> T:
        with self._lock:
            return fn(self.store)

    def close(self) -> None:
        self.store.close()

    def next(self, reviewer: str) -> dict[str, Any]:
        return self.run(lambda s: {"item": item_json(s.next_item(reviewer)), "stats": review_stats(s).to_dict()})

    def act(self, item_id: int, reviewer: str, action: str, candidate: int | None, text: str | None,
            up: bool | None) -> dict[str, Any]:
        def go(s: ReviewStore) -> dict[str, Any]:
            if action == "edit":
                s.edit(item_id, reviewer, candidate if candidate is not None else -1, text or "")
            elif action == "thumb":
                s.thumb(item_id, reviewer, candidate if candidate is not None else -1, bool(up))
            elif action == "note":
                s.note(item_id, reviewer, text or "")
            else:
                s.record(item_id, reviewer, action, candidate)
            return {"item": item_json(s.item(item_id)), "stats": review_stats(s).to_dict()}
        return self.run(go)

    def import_file(self, path: Path) -> dict[str, Any]:
        from tuneforge.io import read_samples

        samples, read = read_samples(str(path))
        report = self.run(lambda s: import_samples(s, samples))
        return {**report.to_dict(), "read_rejected": dict(read.rejected)}

    def export(self, kind: str, path: Path) -> dict[str, Any]:
        return self.run(lambda s: export(s, kind, path)).to_dict()  # type: ignore[arg-type]

    def feedback(self, prompt: list[Message], reply: str, source: dict[str, Any], reviewer: str,
                 thumbs: str | None, better: str | None) -> dict[str, Any]:
        """A playground reply becomes a candidate of its prompt's item; 👍/👎 a thumb on it, a better answer
        an edit of it (so export gives the edit as SFT and the pair edit-over-original as DPO)."""
        def go(s: ReviewStore) -> dict[str, Any]:
            outcome = s.add_candidate(prompt, None, [Message("assistant", reply)], source)
            item = _find(s, prompt)
            index = next(c.index for c in item.candidates if c.text == reply)
            if thumbs is not None:
                s.thumb(item.id, reviewer, index, thumbs == "up")
            if better is not None:
                s.edit(item.id, reviewer, index, better)
            return {"item": item.id, "candidate": index, "added": outcome}
        return self.run(go)


def _find(store: ReviewStore, prompt: list[Message]) -> Item:
    turns = [(m.role, m.content) for m in prompt]
    return next(i for i in store.items() if [(m.role, m.content) for m in i.prompt] == turns)


def item_json(item: Item | None) -> dict[str, Any] | None:
    if item is None:
        return None
    state = item.state
    return {"id": item.id, "prompt": [m.to_dict() for m in item.prompt],
            "candidates": [{"index": c.index, "text": state.edits.get(c.index, c.text), "original": c.text,
                            "source": c.source, "thumb": state.thumbs.get(c.index),
                            "edited": c.index in state.edits} for c in item.candidates],
            "choice": state.choice, "notes": state.notes, "done": state.done}
