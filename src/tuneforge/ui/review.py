"""The Review page and the playground's feedback, on the project's review store (`tuneforge.review`):
one store under the root, used by one request at a time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tuneforge.review import ReviewError, ReviewStore, export, import_file, review_stats
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
        """A dataset, or a `data generate` / `data curate` output folder, into the queue."""
        return self.run(lambda s: import_file(s, path)).to_dict()

    def export(self, kind: str, path: Path) -> dict[str, Any]:
        return self.run(lambda s: export(s, kind, path)).to_dict()  # type: ignore[arg-type]

    def feedback(self, prompt: list[Message], replies: list[tuple[str, dict[str, Any]]], target: int,
                 reviewer: str, thumbs: str | None, better: str | None) -> dict[str, Any]:
        """The playground's side-by-side replies become the candidates of their prompt's item, all of
        them before the first judgement fixes the item's candidates; then 👍/👎 is a thumb on the target
        reply and a better answer an edit of it (exported as SFT, and as DPO over the original)."""
        def go(s: ReviewStore) -> dict[str, Any]:
            outcomes = [s.add_candidate(prompt, None, [Message("assistant", text)], source) for text, source in replies]
            item = _find(s, prompt)
            text = replies[target][0]
            index = next((c.index for c in item.candidates if c.text == text), None)
            if index is None:
                raise ReviewError(f"item {item.id} was reviewed before this reply was added "
                                  f"({outcomes[target]}): judge it in the Review page")
            if thumbs is not None:
                s.thumb(item.id, reviewer, index, thumbs == "up")
            if better is not None:
                s.edit(item.id, reviewer, index, better)
            s.release(item.id, reviewer)  # a judgement from the playground holds no claim on the item
            return {"item": item.id, "candidate": index, "added": outcomes}
        return self.run(go)


    def add_reply(self, item_id: int, reply: str, source: dict[str, Any]) -> dict[str, Any]:
        """A reply written on the spot (by a model, an adapter or an endpoint) as a new candidate."""
        def go(s: ReviewStore) -> dict[str, Any]:
            item = s.item(item_id)
            outcome = s.add_candidate(item.prompt, item.tools, [Message("assistant", reply)], source, item.meta)
            if outcome != "added":
                raise ReviewError(f"item {item_id}: the reply was not added ({outcome})")
            return {"item": item_json(s.item(item_id)), "stats": review_stats(s).to_dict()}
        return self.run(go)

    def prompt(self, item_id: int) -> tuple[list[Message], list[dict[str, Any]] | None]:
        item = self.run(lambda s: s.item(item_id))
        return item.prompt, item.tools


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
