"""What a read kept, what it rejected and why; the rejects file.

DESIGN.md's rule: a user's data is never silently lost. Every record read is either kept or rejected
with a named reason, and `read == kept + sum(rejected.values())` always holds.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class BadRecord(Exception):
    """A record that cannot become a sample.

    `reason` is the short, stable label that rejects are counted by ("missing required field
    'output'"); `detail` says what exactly was wrong with this record.
    """

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


@dataclass
class ReadReport:
    rejects_path: Path | None = None
    """Where rejected records are written as jsonl (`source`, `line`, `reason`, `record`); None: only count."""
    read: int = 0
    """Records seen (a JSON object, a csv row, a .txt line)."""
    kept: int = 0
    """Records that became samples."""
    samples: int = 0
    """Samples produced; more than `kept` when one record holds several (self-instruct instances)."""
    rejected: Counter[str] = field(default_factory=Counter)
    """Rejected records by reason."""
    first_rejected_at: dict[str, str] = field(default_factory=dict)
    """`file:line` of the first record rejected for each reason, to point the user at an example."""
    unfilled: Counter[str] = field(default_factory=Counter)
    """Placeholder name -> records that still contain `{{name}}` because no value was given."""
    atomic: bool = False
    """Write rejects to a hidden `.NAME.partial` beside `rejects_path` and move it into place in
    `finish()`, so that a run that stops never leaves a rejects file that looks complete."""
    _rejects_started: bool = False

    def __post_init__(self) -> None:
        if self.rejects_path is not None:
            self.rejects_path = Path(self.rejects_path)

    @property
    def n_rejected(self) -> int:
        return sum(self.rejected.values())

    @property
    def balanced(self) -> bool:
        return self.read == self.kept + self.n_rejected

    def reject(self, source: str, line: int | None, where: str, error: BadRecord, record: Any) -> None:
        self.rejected[error.reason] += 1
        self.first_rejected_at.setdefault(error.reason, where)
        if self.rejects_path is None:
            return
        # Truncate on the first reject of this report, append afterwards: rejects are rare, and
        # opening per record keeps no handle alive across a generator the caller may abandon.
        mode = "a" if self._rejects_started else "w"
        self._rejects_started = True
        self.rejects_path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"source": source, "line": line, "reason": error.message, "record": record}
        try:  # surrogateescape: invalid bytes are written back as they were read
            data = json.dumps(entry, ensure_ascii=False, default=str).encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # an unpaired surrogate has no bytes: keep its JSON escape
            data = json.dumps(entry, default=str).encode()
        with self._writing.open(mode + "b") as f:
            f.write(data + b"\n")

    @property
    def _writing(self) -> Path:
        assert self.rejects_path is not None
        return self.rejects_path.with_name(f".{self.rejects_path.name}.partial") if self.atomic else self.rejects_path

    def finish(self) -> None:
        """The read is complete: move an atomic rejects file into place (or drop one a stopped run left)."""
        if self.atomic and self._rejects_started:
            os.replace(self._writing, self.rejects_path)  # type: ignore[arg-type]
        elif self.atomic and self.rejects_path is not None:
            self._writing.unlink(missing_ok=True)

    def discard(self) -> None:
        """The read failed: drop an atomic rejects file still being written."""
        if self.atomic and self._rejects_started:
            self._writing.unlink(missing_ok=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "kept": self.kept,
            "samples": self.samples,
            "rejected": dict(self.rejected),
            "first_rejected_at": dict(self.first_rejected_at),
            "unfilled_placeholders": dict(self.unfilled),
            "rejects_path": str(self.rejects_path) if self.rejects_path and self._rejects_started else None,
        }
