"""What a review item is, and its state derived from the append-only event log.

An item is a prompt (canonical messages, optional tool definitions) with 1 to 4 candidate replies,
each from a named source. People act on it with events: `edit` a candidate's reply, `choose` the best
candidate, `thumb` a candidate up or down, `note`, `skip` (this reviewer passes) and `done` (the
review of the item is complete). State is never stored, only derived: the latest event of a kind wins
(by event order), so a changed mind is one more event, and no work is ever overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tuneforge.types import Message

Action = Literal["edit", "choose", "thumb", "note", "skip", "done"]
ACTIONS: tuple[str, ...] = ("edit", "choose", "thumb", "note", "skip", "done")
MAX_CANDIDATES = 4
SOURCE_KINDS: tuple[str, ...] = ("dataset", "generate", "model", "adapter", "endpoint")


@dataclass(frozen=True)
class Candidate:
    index: int
    """0-based position within its item (people see index + 1)."""
    reply: list[Message]
    """The continuation after the prompt (usually one assistant message)."""
    source: dict[str, Any]
    """Where the reply came from: `kind` (one of SOURCE_KINDS), `name` (a file, model, adapter or
    endpoint), and where known `file`, `line`, `label` (chosen / rejected in a preference dataset) and
    the record's `meta` (generation provenance)."""

    @property
    def text(self) -> str:
        return self.reply[-1].content if self.reply else ""


@dataclass(frozen=True)
class Event:
    id: int
    item_id: int
    reviewer: str
    action: str
    candidate: int | None
    value: Any
    at: float
    """Seconds since the epoch."""


@dataclass
class ItemState:
    """An item's review state, derived from its events in order."""

    edits: dict[int, str] = field(default_factory=dict)
    """Candidate index -> the reply text as last edited."""
    choice: int | None = None
    thumbs: dict[int, bool] = field(default_factory=dict)
    """Candidate index -> True (up) / False (down), the latest thumb on each."""
    thumbed_edit: dict[int, str | None] = field(default_factory=dict)
    """Candidate index -> the edit in force when its latest thumb was given (None: the original reply),
    so a thumb always judges the text the reviewer saw."""
    notes: list[tuple[str, str]] = field(default_factory=list)
    """(reviewer, text) in order."""
    skipped_by: set[str] = field(default_factory=set)
    done: bool = False
    reviewers: list[str] = field(default_factory=list)
    """Everyone who recorded an action, in order of first action."""
    last_at: float | None = None

    @classmethod
    def from_events(cls, events: list[Event]) -> ItemState:
        state = cls()
        for e in events:
            if e.reviewer not in state.reviewers:
                state.reviewers.append(e.reviewer)
            state.last_at = e.at
            if e.action == "edit" and e.candidate is not None:
                state.edits[e.candidate] = str(e.value)
            elif e.action == "choose":
                state.choice = e.candidate
            elif e.action == "thumb" and e.candidate is not None:
                state.thumbs[e.candidate] = bool(e.value)
                state.thumbed_edit[e.candidate] = state.edits.get(e.candidate)
            elif e.action == "note":
                state.notes.append((e.reviewer, str(e.value)))
            elif e.action == "skip":
                state.skipped_by.add(e.reviewer)
            elif e.action == "done":
                state.done = True
        return state


@dataclass(frozen=True)
class Item:
    id: int
    prompt: list[Message]
    tools: list[dict[str, Any]] | None
    candidates: list[Candidate]
    meta: dict[str, Any]
    """The imported record's meta (provenance), from its first import."""
    created_at: float
    state: ItemState
    events: list[Event]

    def reply(self, index: int, text: str | None = None) -> list[Message]:
        """Candidate `index`'s reply as it stands now (its last message's text replaced by the latest
        edit), or with `text` as its last message's text."""
        candidate = self.candidates[index]
        text = self.state.edits.get(index) if text is None else text
        if text is None:
            return candidate.reply
        last = candidate.reply[-1]
        edited = Message(last.role, text, last.tool_calls, last.name, last.tool_call_id, last.reasoning,
                         last.loss_weight)
        return [*candidate.reply[:-1], edited]
