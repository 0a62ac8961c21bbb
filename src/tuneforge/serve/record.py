"""Recorded chats and their feedback (`tuneforge serve --record DIR`), and the training data built from them.

Recording is opt in. With it, the server stores every chat completion it answers in `DIR/traffic.sqlite`
(stdlib sqlite3, WAL, so a reader such as `tuneforge data from-feedback` never blocks the server):
the conversation and tools as the model saw them, the model id (base or adapter), the sampling
parameters, and each choice's reply, under the response's own `id`. Nothing from the request's headers
is stored, so neither is the API key. `POST /v1/feedback` adds ratings (`up` / `down`) and
corrections to a recorded reply; every feedback is kept, and the latest one for a reply is the one
that counts when exporting.

`export_feedback` turns the feedback into a data set:

- `kto`: each rated reply as the conversation plus that reply, with `label` true (up) or false (down);
- `dpo`: each correction as a pair, chosen = the correction, rejected = the original reply;
- `sft`: each correction as the conversation with the corrected reply.

Every recorded reply is either exported or skipped with a counted reason, so the counts add up.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tuneforge.errors import TuneforgeError
from tuneforge.io.writers import write_samples
from tuneforge.types import Message, Sample

DB_NAME = "traffic.sqlite"
SCHEMA_VERSION = 1
Rating = Literal["up", "down"]
ExportKind = Literal["kto", "dpo", "sft"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS exchanges (
    id TEXT PRIMARY KEY,            -- the chat completion's id, as the client got it
    created REAL NOT NULL,
    model TEXT NOT NULL,            -- the served model id: the base or an adapter's name
    messages TEXT NOT NULL,         -- JSON: the conversation (tuneforge's message shape)
    tools TEXT,                     -- JSON: the tools offered, or NULL
    params TEXT NOT NULL,           -- JSON: sampling parameters as the request gave them
    replies TEXT NOT NULL,          -- JSON: one {content, tool_calls?, finish_reason} per choice
    stream INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- order of arrival: the latest per reply wins on export
    exchange_id TEXT NOT NULL REFERENCES exchanges(id),
    choice INTEGER NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    correction TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_exchange ON feedback(exchange_id);
"""


class UnknownExchange(TuneforgeError):
    """Feedback named an id no recorded chat completion has (HTTP 404)."""


class NoSuchChoice(TuneforgeError):
    """Feedback named a choice `index` the recorded completion does not have (HTTP 422)."""


@dataclass(frozen=True)
class Exchange:
    """One answered chat completion request."""

    id: str
    model: str
    messages: list[dict[str, Any]]
    """The conversation as `Message.to_dict` writes it."""
    tools: list[dict[str, Any]] | None
    params: dict[str, Any]
    replies: list[dict[str, Any]]
    """Per choice: the reply message (`content`, `tool_calls` when it made calls) and `finish_reason`."""
    stream: bool
    created: float = field(default_factory=time.time)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # WAL keeps the database consistent; a power cut may lose the last rows
    return conn


def _check_version(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version != SCHEMA_VERSION:
        raise TuneforgeError(f"{path}: recorded with schema version {version}, this tuneforge reads version "
                             f"{SCHEMA_VERSION}; record into a new directory")


class Recorder:
    """The server's side: stores exchanges and feedback. Thread-safe (one connection behind a lock), so
    the server calls it from worker threads, off its event loop."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.path = self.directory / DB_NAME
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._conn = _connect(self.path)
            if self._conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                self._conn.executescript(_SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")
        except (OSError, sqlite3.Error) as e:
            raise TuneforgeError(f"--record {directory}: cannot record there: {e}") from None
        try:
            _check_version(self._conn, self.path)
        except TuneforgeError:
            self._conn.close()
            raise
        self._lock = threading.Lock()

    def record(self, exchange: Exchange) -> None:
        row = (exchange.id, exchange.created, exchange.model, _json(exchange.messages),
               None if exchange.tools is None else _json(exchange.tools), _json(exchange.params),
               _json(exchange.replies), int(exchange.stream))
        with self._lock:
            self._conn.execute("INSERT INTO exchanges VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)

    def add_feedback(self, exchange_id: str, rating: Rating, correction: str | None = None, choice: int = 0) -> int:
        """Store one feedback for choice `choice` of a recorded exchange; returns its sequence number."""
        with self._lock:
            found = self._conn.execute("SELECT replies FROM exchanges WHERE id = ?", (exchange_id,)).fetchone()
            if found is None:
                raise UnknownExchange(f"no recorded chat completion has the id '{exchange_id}'")
            choices = len(json.loads(found[0]))
            if choice >= choices:
                raise NoSuchChoice(f"index: the completion '{exchange_id}' has {choices} choice(s), "
                                   f"so index {choice} does not exist")
            cursor = self._conn.execute(
                "INSERT INTO feedback (exchange_id, choice, rating, correction, created) VALUES (?, ?, ?, ?, ?)",
                (exchange_id, choice, rating, correction, time.time()))
            return int(cursor.lastrowid or 0)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# ---------------------------------------------------------------- export


@dataclass
class FeedbackExport:
    """What `export_feedback` did. `replies` = `written` + the sum of `skipped`."""

    replies: int = 0
    """Recorded replies (choices of recorded completions)."""
    written: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    """Replies not exported, by reason: `no_feedback`, `no_correction` (dpo / sft),
    `correction_same_as_reply` (dpo: a pair needs two different replies)."""
    feedback: int = 0
    """Feedback entries read, superseded ones included."""
    superseded: int = 0
    """Feedback entries replaced by a later one for the same reply."""
    labels: Counter[str] = field(default_factory=Counter)
    """kto: records written per label (`desirable` / `undesirable`)."""


def export_feedback(directory: str | Path, kind: ExportKind, output: str | Path) -> FeedbackExport:
    """Build a `kind` data set from the feedback recorded in `directory` and write it to `output`
    (kto: JSON lines of messages + `label`; dpo and sft: any container `write_samples` takes)."""
    path = Path(directory) / DB_NAME
    if not path.is_file():
        raise TuneforgeError(f"{directory}: no recorded traffic here ({DB_NAME} is missing); record with "
                             f"`tuneforge serve --record {directory}`")
    if kind == "kto" and not str(output).endswith(".jsonl"):
        raise TuneforgeError(f"-o {output}: kto data is written as JSON lines; name the output .jsonl")
    report = FeedbackExport()
    try:
        conn = _connect(path)
    except sqlite3.Error as e:
        raise TuneforgeError(f"{path}: cannot read it: {e}") from None
    try:
        _check_version(conn, path)
        latest: dict[tuple[str, int], tuple[str, str | None]] = {}
        for exchange_id, choice, rating, correction in conn.execute(
                "SELECT exchange_id, choice, rating, correction FROM feedback ORDER BY seq"):
            report.feedback += 1
            latest[(exchange_id, choice)] = (rating, correction)
        report.superseded = report.feedback - len(latest)
        records: list[Sample | dict[str, Any]] = []
        for row in conn.execute("SELECT id, model, messages, tools, replies FROM exchanges ORDER BY created, id"):
            records.extend(_records(kind, row, latest, report))
    finally:
        conn.close()
    report.written = _write(kind, records, Path(output))
    return report


def _records(kind: ExportKind, row: tuple, latest: dict[tuple[str, int], tuple[str, str | None]],
             report: FeedbackExport) -> list[Sample | dict[str, Any]]:
    """The records one exchange yields, counting each of its replies as written or skipped."""
    exchange_id, model, messages, tools, replies = row
    prompt = [Message.from_dict(m) for m in json.loads(messages)]
    tool_defs = json.loads(tools) if tools else None
    out: list[Sample | dict[str, Any]] = []
    for k, reply in enumerate(json.loads(replies)):
        report.replies += 1
        if (exchange_id, k) not in latest:
            report.skipped["no_feedback"] += 1
            continue
        rating, correction = latest[(exchange_id, k)]
        original = Message.from_dict({"role": "assistant", "content": reply.get("content"),
                                      "tool_calls": reply.get("tool_calls")})
        meta = {"completion_id": exchange_id, "choice": k, "model": model, "rating": rating}
        if kind == "kto":
            sample = Sample(messages=[*prompt, original], tools=tool_defs, id=f"{exchange_id}-{k}", meta=meta)
            report.labels["desirable" if rating == "up" else "undesirable"] += 1
            out.append({**sample.to_dict(), "label": rating == "up"})
            continue
        if correction is None:
            report.skipped["no_correction"] += 1
            continue
        fixed = Message("assistant", correction)
        if kind == "sft":
            out.append(Sample(messages=[*prompt, fixed], tools=tool_defs, id=f"{exchange_id}-{k}", meta=meta))
        elif correction.strip() == (original.content or "").strip() and not original.tool_calls:
            report.skipped["correction_same_as_reply"] += 1
        else:
            out.append(Sample(messages=prompt, chosen=[fixed], rejected=[original], tools=tool_defs,
                              id=f"{exchange_id}-{k}", meta=meta))
    return out


def _write(kind: ExportKind, records: list[Sample | dict[str, Any]], output: Path) -> int:
    if kind != "kto":
        return write_samples([r for r in records if isinstance(r, Sample)], output)
    # Samples have no label, so kto records are written as dicts; through a temporary file, as
    # write_samples does, so that a failure leaves no half-written output.
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.partial")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for record in records:
                f.write(_json(record) + "\n")
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return len(records)
