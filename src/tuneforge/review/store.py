"""The review store: one SQLite file per project (WAL mode), safe for several reviewers in several
processes at once.

Tables: `items` (prompt), `candidates` (replies with their source), `events` (every review action,
append-only: rows are inserted, never updated or deleted) and `leases` (which reviewer holds which item,
until when). A reviewer gets work with `next_item`, which claims an item inside `BEGIN IMMEDIATE` (one
writer at a time, so two reviewers can never claim the same item); the lease expires after `lease_s`, so
an item whose reviewer walked away goes back to the pool. Acting on an item claims it too, and actions
on an item leased to someone else are refused (`ReviewConflict`), so no work is done twice.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tuneforge.errors import TuneforgeError
from tuneforge.review.items import ACTIONS, MAX_CANDIDATES, Candidate, Event, Item, ItemState
from tuneforge.types import Message

DB_DIR, DB_NAME = ".tuneforge", "review.db"
LEASE_S = 30 * 60.0
"""How long an item stays claimed by a reviewer who has not acted on it."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,          -- hash of the prompt: a re-import finds its item
    prompt TEXT NOT NULL,              -- JSON list of canonical messages
    tools TEXT,                        -- JSON list of tool definitions, or NULL
    meta TEXT NOT NULL,                -- JSON: the first imported record's meta
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS candidates (
    item_id INTEGER NOT NULL REFERENCES items(id),
    idx INTEGER NOT NULL,
    reply TEXT NOT NULL,               -- JSON list of canonical messages
    source TEXT NOT NULL,              -- JSON: kind, name, file, line, label, meta
    PRIMARY KEY (item_id, idx)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER NOT NULL REFERENCES items(id),
    reviewer TEXT NOT NULL,
    action TEXT NOT NULL,
    candidate INTEGER,
    value TEXT,                        -- JSON
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_item ON events(item_id, action);
CREATE TABLE IF NOT EXISTS leases (
    item_id INTEGER PRIMARY KEY REFERENCES items(id),
    reviewer TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TRIGGER IF NOT EXISTS events_append_only_u BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'review events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_append_only_d BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'review events are append-only'); END;
"""


class ReviewError(TuneforgeError):
    """A review action that cannot be recorded (unknown item or candidate, bad value)."""


class ReviewConflict(ReviewError):
    """The item is claimed by another reviewer."""


def store_path(project: str | Path) -> Path:
    """The review database of a project directory: `<project>/.tuneforge/review.db`."""
    return Path(project) / DB_DIR / DB_NAME


def prompt_key(prompt: list[Message], tools: list[dict[str, Any]] | None) -> str:
    """Identity of a prompt: replies to the same prompt from several imports become one item's candidates."""
    canonical = json.dumps([[m.to_dict() for m in prompt], tools], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ReviewStore:
    """A project's review items and their events. Open one per process (or thread); they share the file."""

    def __init__(self, path: str | Path, *, clock: Any = time.time):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA busy_timeout=60000")
        self.db.execute("PRAGMA foreign_keys=ON")
        with self.write():
            for statement in _statements(_SCHEMA):
                self.db.execute(statement)

    @classmethod
    def open(cls, project: str | Path = ".") -> ReviewStore:
        """The store of a project directory, created on first use."""
        return cls(store_path(project))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, begun IMMEDIATE: it holds the write lock from the start, so what it
        reads (free items, leases) cannot change under it before it commits."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- adding items -------------------------------------------------------------------------

    def add_candidate(self, prompt: list[Message], tools: list[dict[str, Any]] | None, reply: list[Message],
                      source: dict[str, Any], meta: dict[str, Any] | None = None) -> str:
        """Add one reply to the item of its prompt (created when new). Returns what happened: `added`,
        or why not: `duplicate` (the item has this reply already), `too_many_candidates` (it has
        MAX_CANDIDATES), `already_reviewed` (someone acted on it: its candidates are fixed)."""
        key = prompt_key(prompt, tools)
        reply_json = _dumps([m.to_dict() for m in reply])
        with self.write() as db:
            row = db.execute("SELECT id FROM items WHERE key = ?", (key,)).fetchone()
            if row is None:
                cur = db.execute("INSERT INTO items (key, prompt, tools, meta, created_at) VALUES (?, ?, ?, ?, ?)",
                                 (key, _dumps([m.to_dict() for m in prompt]), None if tools is None else _dumps(tools),
                                  _dumps(meta or {}), self.clock()))
                item_id = cur.lastrowid
                existing: list[str] = []
            else:
                item_id = row[0]
                existing = [r[0] for r in db.execute("SELECT reply FROM candidates WHERE item_id = ?", (item_id,))]
                if reply_json in existing:
                    return "duplicate"
                if db.execute("SELECT 1 FROM events WHERE item_id = ? LIMIT 1", (item_id,)).fetchone():
                    return "already_reviewed"
                if len(existing) >= MAX_CANDIDATES:
                    return "too_many_candidates"
            db.execute("INSERT INTO candidates (item_id, idx, reply, source) VALUES (?, ?, ?, ?)",
                       (item_id, len(existing), reply_json, _dumps(source)))
        return "added"

    # -- claiming work --------------------------------------------------------------------------

    def next_item(self, reviewer: str, lease_s: float = LEASE_S) -> Item | None:
        """The item `reviewer` should review now, claimed for `lease_s` seconds: the one they already
        hold, else the oldest item that is not done, not skipped by them and not held by anyone else.
        None when there is nothing left for them."""
        _check_reviewer(reviewer)
        now = self.clock()
        with self.write() as db:
            row = db.execute(
                "SELECT l.item_id FROM leases l WHERE l.reviewer = ? AND l.expires_at > ? AND NOT EXISTS "
                "(SELECT 1 FROM events e WHERE e.item_id = l.item_id AND e.action = 'done') "
                "ORDER BY l.item_id LIMIT 1", (reviewer, now)).fetchone()
            if row is None:
                row = db.execute(
                    "SELECT i.id FROM items i WHERE "
                    "NOT EXISTS (SELECT 1 FROM events e WHERE e.item_id = i.id AND e.action = 'done') AND "
                    "NOT EXISTS (SELECT 1 FROM events e WHERE e.item_id = i.id AND e.action = 'skip' "
                    "            AND e.reviewer = ?) AND "
                    "NOT EXISTS (SELECT 1 FROM leases l WHERE l.item_id = i.id AND l.expires_at > ?) "
                    "ORDER BY i.id LIMIT 1", (reviewer, now)).fetchone()
            if row is None:
                return None
            db.execute("INSERT OR REPLACE INTO leases (item_id, reviewer, expires_at) VALUES (?, ?, ?)",
                       (row[0], reviewer, now + lease_s))
        return self.item(row[0])

    def release(self, item_id: int, reviewer: str) -> None:
        """Give an item back to the pool (a reviewer who quits mid-item)."""
        with self.write() as db:
            db.execute("DELETE FROM leases WHERE item_id = ? AND reviewer = ?", (item_id, reviewer))

    def holder(self, item_id: int) -> str | None:
        """Who holds the item now, if anyone."""
        row = self.db.execute("SELECT reviewer FROM leases WHERE item_id = ? AND expires_at > ?",
                              (item_id, self.clock())).fetchone()
        return None if row is None else str(row[0])

    # -- recording actions ----------------------------------------------------------------------

    def edit(self, item_id: int, reviewer: str, candidate: int, text: str) -> Event:
        """Replace candidate `candidate`'s reply text (its last message's content)."""
        if not isinstance(text, str):
            raise ReviewError(f"item {item_id}: an edit needs the reply text, got {type(text).__name__}")
        return self.record(item_id, reviewer, "edit", candidate, text)

    def choose(self, item_id: int, reviewer: str, candidate: int) -> Event:
        """Candidate `candidate` is the best one; the others are rejected."""
        return self.record(item_id, reviewer, "choose", candidate)

    def thumb(self, item_id: int, reviewer: str, candidate: int, up: bool) -> Event:
        return self.record(item_id, reviewer, "thumb", candidate, bool(up))

    def note(self, item_id: int, reviewer: str, text: str) -> Event:
        return self.record(item_id, reviewer, "note", None, str(text))

    def skip(self, item_id: int, reviewer: str) -> Event:
        """`reviewer` passes on this item: it is released, stays open for others, and is not offered to
        them again."""
        return self.record(item_id, reviewer, "skip")

    def done(self, item_id: int, reviewer: str) -> Event:
        """The review of this item is complete: it is released and offered to no one again."""
        return self.record(item_id, reviewer, "done")

    def record(self, item_id: int, reviewer: str, action: str, candidate: int | None = None,
               value: Any = None) -> Event:
        """Append one event. Refused when another reviewer holds the item, or the item or candidate does
        not exist. Any other action claims the item for `reviewer` (or renews the claim); `skip` and
        `done` end it."""
        _check_reviewer(reviewer)
        if action not in ACTIONS:
            raise ReviewError(f"unknown review action {action!r}; one of {', '.join(ACTIONS)}")
        now = self.clock()
        with self.write() as db:
            n = self._candidate_count(item_id)
            needs_candidate = action in ("edit", "choose", "thumb")
            if needs_candidate and (candidate is None or not 0 <= candidate < n):
                raise ReviewError(f"item {item_id}: {action} needs a candidate from 1 to {n}, "
                                  f"got {None if candidate is None else candidate + 1}")
            if not needs_candidate:
                candidate = None
            lease = db.execute("SELECT reviewer, expires_at FROM leases WHERE item_id = ?", (item_id,)).fetchone()
            if lease is not None and lease[0] != reviewer and lease[1] > now:
                raise ReviewConflict(f"item {item_id} is being reviewed by {lease[0]}")
            cur = db.execute("INSERT INTO events (item_id, reviewer, action, candidate, value, at) "
                             "VALUES (?, ?, ?, ?, ?, ?)", (item_id, reviewer, action, candidate, _dumps(value), now))
            if action in ("skip", "done"):
                db.execute("DELETE FROM leases WHERE item_id = ?", (item_id,))
            else:  # acting on an item claims it (a page that opens an item by id), or renews the claim
                db.execute("INSERT OR REPLACE INTO leases (item_id, reviewer, expires_at) VALUES (?, ?, ?)",
                           (item_id, reviewer, now + LEASE_S))
        return Event(int(cur.lastrowid or 0), item_id, reviewer, action, candidate, value, now)

    def _candidate_count(self, item_id: int) -> int:
        if self.db.execute("SELECT 1 FROM items WHERE id = ?", (item_id,)).fetchone() is None:
            raise ReviewError(f"no review item {item_id}")
        return int(self.db.execute("SELECT COUNT(*) FROM candidates WHERE item_id = ?", (item_id,)).fetchone()[0])

    # -- reading --------------------------------------------------------------------------------

    def item(self, item_id: int) -> Item:
        row = self.db.execute("SELECT id, prompt, tools, meta, created_at FROM items WHERE id = ?",
                              (item_id,)).fetchone()
        if row is None:
            raise ReviewError(f"no review item {item_id}")
        return self._item(row, self._events(item_id))

    def items(self) -> Iterator[Item]:
        """Every item with its state, in id order (read in one snapshot)."""
        events: dict[int, list[Event]] = {}
        for event in self._events(None):
            events.setdefault(event.item_id, []).append(event)
        rows = self.db.execute("SELECT id, prompt, tools, meta, created_at FROM items ORDER BY id").fetchall()
        for row in rows:
            yield self._item(row, events.get(row[0], []))

    def events(self, item_id: int | None = None) -> list[Event]:
        """The event log, of one item or all, in order."""
        return self._events(item_id)

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def _events(self, item_id: int | None) -> list[Event]:
        sql = "SELECT id, item_id, reviewer, action, candidate, value, at FROM events"
        rows = (self.db.execute(sql + " ORDER BY id") if item_id is None
                else self.db.execute(sql + " WHERE item_id = ? ORDER BY id", (item_id,)))
        return [Event(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6]) for r in rows]

    def _item(self, row: tuple[Any, ...], events: list[Event]) -> Item:
        item_id = row[0]
        candidates = [Candidate(idx, [Message.from_dict(m) for m in json.loads(reply)], json.loads(source))
                      for idx, reply, source in self.db.execute(
                          "SELECT idx, reply, source FROM candidates WHERE item_id = ? ORDER BY idx", (item_id,))]
        return Item(item_id, [Message.from_dict(m) for m in json.loads(row[1])],
                    None if row[2] is None else json.loads(row[2]), candidates, json.loads(row[3]), row[4],
                    ItemState.from_events(events), events)


def _statements(script: str) -> list[str]:
    """The schema's statements one by one (executescript would commit the open transaction)."""
    out, current = [], []
    for line in script.splitlines():
        current.append(line.split("--")[0])
        joined = "\n".join(current).strip()
        if joined.endswith(";") and (not joined.startswith("CREATE TRIGGER") or joined.endswith("END;")):
            out.append(joined)
            current = []
    return out


def _check_reviewer(reviewer: str) -> None:
    if not isinstance(reviewer, str) or not reviewer.strip():
        raise ReviewError("a reviewer name is required")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
