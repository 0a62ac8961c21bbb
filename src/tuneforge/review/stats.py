"""Where a project's review stands: items by status, actions by reviewer, what each export would hold."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tuneforge.review.store import ReviewStore


@dataclass
class ReviewStats:
    items: int = 0
    candidates: int = 0
    status: Counter[str] = field(default_factory=Counter)
    """done, in_review (held by a reviewer now), started (actions but not done, not held), open."""
    actions: Counter[str] = field(default_factory=Counter)
    """Events by action."""
    by_reviewer: dict[str, Counter[str]] = field(default_factory=dict)
    """Reviewer -> events by action."""
    exportable: Counter[str] = field(default_factory=Counter)
    """Items each export kind would use: sft (an edit), dpo (a choice among several candidates, or an
    edit), kto (a thumb)."""

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "candidates": self.candidates, "status": dict(self.status),
                "actions": dict(self.actions), "by_reviewer": {k: dict(v) for k, v in self.by_reviewer.items()},
                "exportable": dict(self.exportable)}


def review_stats(store: ReviewStore) -> ReviewStats:
    stats = ReviewStats()
    for item in store.items():
        stats.items += 1
        stats.candidates += len(item.candidates)
        state = item.state
        if state.done:
            stats.status["done"] += 1
        elif store.holder(item.id) is not None:
            stats.status["in_review"] += 1
        elif item.events:
            stats.status["started"] += 1
        else:
            stats.status["open"] += 1
        for event in item.events:
            stats.actions[event.action] += 1
            stats.by_reviewer.setdefault(event.reviewer, Counter())[event.action] += 1
        stats.exportable["sft"] += bool(state.edits)
        stats.exportable["dpo"] += (state.choice is not None and len(item.candidates) > 1) or bool(state.edits)
        stats.exportable["kto"] += bool(state.thumbs)
    return stats
