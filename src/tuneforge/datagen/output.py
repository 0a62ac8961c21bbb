"""What a generation run leaves behind, written so that a run killed at any moment resumes without
duplicates: `data.jsonl` (kept records) and `rejects.jsonl` (removed and failed ones) are append-only and
flushed record by record; every record has an id derived from its inputs, so a resumed run, which replays
the same steps with every answered request coming from the response cache, skips the ids already
written. A line cut short by the kill is cut off before the run appends.

`stats.json` holds the counts, which always add up: in = kept + removed (by reason) + failed.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.types import Sample

DATA, REJECTS, STATS, REPORT = "data.jsonl", "rejects.jsonl", "stats.json", "report.html"
FAILED = "request_failed"


@dataclass
class Stats:
    mode: str
    kept: int = 0
    removed: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    """Records lost to a request that failed after its retries, by error (e.g. `HTTP 500`)."""

    @property
    def total_in(self) -> int:
        return self.kept + sum(self.removed.values()) + sum(self.failed.values())

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "in": self.total_in, "kept": self.kept, "removed": dict(self.removed),
                "failed": sum(self.failed.values()), "failed_by_reason": dict(self.failed)}


def _clean_tail(path: Path) -> dict[str, str | None]:
    """Ids of the complete records in a jsonl file, with their removal reason (rejects); a partial last
    line (the run was killed while writing it) is cut off."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with path.open("r+b") as f:
            f.truncate(end)
    ids = {}
    for line in data[:end].splitlines():
        if line.strip():
            row = json.loads(line)
            ids[row["id"]] = row.get("reason")
    return ids


class Output:
    """The append-only output of one run: kept records, rejects, stats and the report."""

    def __init__(self, out_dir: Path, mode: str):
        self.dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self.stats = Stats(mode)
        self.written = set(_clean_tail(out_dir / DATA))
        self.resumed = len(self.written)
        self._drop_failures(out_dir / REJECTS)
        self.rejected = _clean_tail(out_dir / REJECTS)
        """Removed records of earlier runs: id -> reason."""
        self.data = (out_dir / DATA).open("a", encoding="utf-8")
        self.rejects = (out_dir / REJECTS).open("a", encoding="utf-8")
        self.started = time.time()

    @staticmethod
    def _drop_failures(path: Path) -> None:
        """Failed records are asked again on resume, so their old rejects lines go (written atomically)."""
        if not path.exists():
            return
        _clean_tail(path)
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        keep = [line for line in lines if json.loads(line).get("reason") != FAILED]
        if len(keep) != len(lines):
            tmp = path.with_suffix(".tmp")
            tmp.write_text("".join(keep), encoding="utf-8")
            os.replace(tmp, path)

    def keep(self, sample: Sample) -> None:
        assert sample.id is not None
        self.stats.kept += 1
        if sample.id not in self.written:
            self._append(self.data, sample.to_dict())
            self.written.add(sample.id)

    def remove(self, record_id: str, reason: str, record: dict[str, Any], detail: str = "") -> None:
        self.stats.removed[reason] += 1
        self._reject(record_id, reason, record, detail)

    def fail(self, record_id: str, error: str, record: dict[str, Any]) -> None:
        """A record lost to a request that failed after its retries; a resumed run asks again."""
        self.stats.failed[error.split(":")[0][:60]] += 1
        self._reject(record_id, FAILED, record, error)

    def _reject(self, record_id: str, reason: str, record: dict[str, Any], detail: str) -> None:
        if record_id in self.rejected:
            return
        self._append(self.rejects, {"id": record_id, "reason": reason, "detail": detail[:500], "record": record})
        self.rejected[record_id] = reason

    def earlier_decision(self, record_id: str) -> str | None:
        """'kept', or the reason an earlier run removed this record; None when it has not been decided.
        Steps whose decisions depend on earlier ones (near-copies of instructions so far) follow what
        was written, even where a request that failed then and succeeds now changes what came before."""
        if record_id in self.written:
            return "kept"
        return self.rejected.get(record_id)

    @staticmethod
    def _append(f, row: dict[str, Any]) -> None:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()

    def finish(self, usage: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
        from tuneforge.datagen.report import write_report

        self.close()
        stats = {**self.stats.as_dict(), "resumed_records": self.resumed, "usage": usage,
                 "seconds": round(time.time() - self.started, 2), **(extra or {})}
        (self.dir / STATS).write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        write_report(self.dir, stats)
        return stats

    def close(self) -> None:
        self.data.close()
        self.rejects.close()
