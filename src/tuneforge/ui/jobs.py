"""Background jobs: `tuneforge train` / `tuneforge compare` as subprocesses, recorded in SQLite.

A job is its own process (never the server's), started in a new session so that closing the browser or
restarting the workbench leaves it running; its pid, command, run directory and log live in the
`jobs` table, so a restarted workbench lists it again. Stopping sends SIGINT, on which training
writes a checkpoint and ends cleanly; resuming starts `tuneforge train CONFIG --resume auto`.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal

from tuneforge.errors import TuneforgeError

JobKind = Literal["train", "compare"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    log TEXT NOT NULL,
    pid INTEGER,
    started REAL NOT NULL,
    ended REAL,
    exit_code INTEGER,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    segments INTEGER NOT NULL DEFAULT 1
)
"""


class JobError(TuneforgeError):
    """An action the job's state does not allow (stop a finished job, resume a running one)."""


class NoSuchJob(JobError):
    pass


@dataclass
class Job:
    id: int
    kind: str
    name: str
    config: str
    run_dir: str
    log: str
    pid: int | None
    started: float
    ended: float | None
    exit_code: int | None
    stop_requested: bool
    segments: int

    @property
    def status(self) -> str:
        """running, stopped (by the user: resumable), finished or failed."""
        if self.ended is None:
            return "running"
        if self.stop_requested:
            return "stopped"
        return "finished" if self.exit_code == 0 else "failed"

    def to_dict(self) -> dict:
        return {**asdict(self), "status": self.status}


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (a child of ours that ended but was not yet reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False


class Jobs:
    """The job table and the processes it names. Thread-safe: one connection, one lock."""

    def __init__(self, db: Path, *, cwd: Path) -> None:
        db.parent.mkdir(parents=True, exist_ok=True)
        self.cwd = cwd
        self._db = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(SCHEMA)
        self._lock = threading.Lock()
        self._children: dict[int, subprocess.Popen] = {}  # pid -> process started by this workbench

    def close(self) -> None:
        self._db.close()

    def _row(self, job_id: int) -> Job:
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NoSuchJob(f"no job {job_id}")
        values = dict(zip((f.name for f in fields(Job)), row))
        return Job(**{**values, "stop_requested": bool(values["stop_requested"])})

    def get(self, job_id: int) -> Job:
        with self._lock:
            self._refresh(job_id)
            return self._row(job_id)

    def all(self) -> list[Job]:
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT id FROM jobs ORDER BY id DESC")]
            for job_id in ids:
                self._refresh(job_id)
            return [self._row(i) for i in ids]

    def _refresh(self, job_id: int) -> None:
        """Record the end of a job whose process is gone: its exit code where it was our child, else
        what its log says (a workbench restarted meanwhile)."""
        job = self._row(job_id)
        if job.ended is not None or job.pid is None:
            return
        child = self._children.get(job.pid)
        if child is not None:
            code = child.poll()
            if code is None:
                return
            self._children.pop(job.pid)
        elif _alive(job.pid):
            return
        else:
            code = _exit_code_from_log(Path(job.log))
        self._db.execute("UPDATE jobs SET ended = ?, exit_code = ? WHERE id = ?", (time.time(), code, job_id))

    def start(self, kind: JobKind, name: str, config: Path, run_dir: Path) -> Job:
        log = run_dir.parent / f".{run_dir.name}.ui.log" if kind == "compare" else run_dir / "ui.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO jobs (kind, name, config, run_dir, log, started) VALUES (?, ?, ?, ?, ?, ?)",
                (kind, name, str(config), str(run_dir), str(log), time.time()))
            job_id = int(cur.lastrowid or 0)
            self._spawn(job_id, [kind, str(config)], log)
            return self._row(job_id)

    def resume(self, job_id: int) -> Job:
        with self._lock:
            self._refresh(job_id)
            job = self._row(job_id)
            if job.kind != "train" or job.status not in ("stopped", "failed"):
                raise JobError(f"job {job_id} is {job.status}: only a stopped or failed training run resumes")
            self._db.execute("UPDATE jobs SET ended = NULL, exit_code = NULL, stop_requested = 0, "
                             "segments = segments + 1 WHERE id = ?", (job_id,))
            self._spawn(job_id, ["train", job.config, "--resume", "auto"], Path(job.log))
            return self._row(job_id)

    def stop(self, job_id: int) -> Job:
        """SIGINT, as Ctrl-C: training checkpoints at the end of its current step, then exits."""
        with self._lock:
            self._refresh(job_id)
            job = self._row(job_id)
            if job.status != "running" or job.pid is None:
                raise JobError(f"job {job_id} is {job.status}, not running")
            self._db.execute("UPDATE jobs SET stop_requested = 1 WHERE id = ?", (job_id,))
            try:
                os.killpg(job.pid, signal.SIGINT)  # the job's own session: the command and any workers it made
            except ProcessLookupError:  # it ended meanwhile
                self._refresh(job_id)
            return self._row(job_id)

    def _spawn(self, job_id: int, args: list[str], log: Path) -> None:
        with log.open("a", encoding="utf-8") as out:
            out.write(f"$ tuneforge {' '.join(args)}\n")
            out.flush()
            proc = subprocess.Popen([sys.executable, "-m", "tuneforge", *args], cwd=self.cwd, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._children[proc.pid] = proc
        self._db.execute("UPDATE jobs SET pid = ? WHERE id = ?", (proc.pid, job_id))


def _exit_code_from_log(log: Path) -> int:
    """For a job that ended while no workbench watched it: 0 when its command printed its `done` line."""
    try:
        tail = log.read_text(encoding="utf-8", errors="replace")[-4000:]
    except OSError:
        return 1
    return 0 if any(line.startswith(("done ", "recommendation:")) for line in tail.splitlines()) else 1


def read_log(job: Job, limit: int = 20_000) -> str:
    try:
        text = Path(job.log).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text[-limit:]
