"""Worker processes die with their runner: after `kill -9` of a curate run none keeps running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tuneforge.curate import RunOptions, parse_op, run

HERE = Path(__file__).parent


def slow_pool_run(out: str) -> None:
    """Run in a child process by the test: two workers, each in a shard that takes 20 s. (A worker
    waiting for work ends by itself when the runner dies; one in the middle of a long shard, such
    as an LLM judge's, did not.)"""
    from curate_samples import chat

    data = [chat(f"question {i}", f"answer {i}") for i in range(100)]
    run(data, [parse_op({"op": "test_sleep", "seconds": 1.0}, "ops[0]")], out, RunOptions(workers=2, shard_size=20))


def children(pid: int) -> list[int]:
    try:
        import psutil
    except ImportError:
        return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _stat(int(p.name))[1] == pid]
    return [c.pid for c in psutil.Process(pid).children()]


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie may wait for a reaper that never comes)."""
    try:
        import psutil
    except ImportError:
        state = _stat(pid)[0]
        return state not in ("", "Z", "X")
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _stat(pid: int) -> tuple[str, int]:
    """(state, parent pid) from /proc/PID/stat; ("", 0) once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return "", 0
    return fields[0], int(fields[1])


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the workers")
def test_workers_die_when_the_runner_is_killed(tmp_path):
    # test_pipeline registers the test_sleep operator
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import test_pipeline, test_workers; "
            f"test_workers.slow_pool_run({str(tmp_path / 'out')!r})")
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 60
        while len(children(child.pid)) < 2 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # the workers take their first shards
        workers = children(child.pid)
        assert len(workers) >= 2 and child.poll() is None, "the run ended before its workers could be seen"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    deadline = time.monotonic() + 5
    while any(running(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [w for w in workers if running(w)]
    for w in alive:  # leave no orphan behind, even when the test fails
        os.kill(w, signal.SIGKILL)
    assert not alive, f"workers {alive} outlived their killed runner"


def test_the_fallback_watcher_ends_an_orphan(tmp_path):
    """Where prctl is not available, a thread notices the parent id change."""
    code = ("import os, sys, time; from tuneforge import workers; "
            "workers.sys.platform = 'other'; "  # skip prctl: take the portable path
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    workers.die_with_parent(os.getppid()); print(os.getpid(), flush=True); time.sleep(60)\n"
            "else:\n"
            "    time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(parent.stdout.readline())
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 5
    while running(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    if running(worker):
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the orphan kept running")
