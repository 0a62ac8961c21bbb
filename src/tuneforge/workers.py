"""Worker processes, started one way for every package: a `multiprocessing` pool whose workers fork
where the OS can (they start in milliseconds with what the parent holds already in memory, and a
user's script needs no `if __name__ == "__main__"` guard, which spawn would re-import), and die with
the process that started them."""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.pool import Pool
from typing import Any


@contextmanager
def worker_pool(processes: int, initializer: Callable[..., None] | None = None,
                initargs: tuple[Any, ...] = ()) -> Iterator[Pool]:
    """A pool of `processes` workers, each running `initializer(*initargs)` first (arguments are
    inherited, not pickled, where processes fork). On leaving, the pool takes no more work and waits
    for what it has."""
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    pool = ctx.Pool(processes, _start_worker, (os.getpid(), initializer, initargs))
    try:
        yield pool
    finally:
        pool.close()
        pool.join()


def _start_worker(parent: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    if initializer is not None:
        initializer(*initargs)
    die_with_parent(parent)


def die_with_parent(parent: int) -> None:
    """End this worker when the runner `parent` dies: after `kill -9` the pool cannot stop its
    workers, which would otherwise wait on its queue (or go on working) forever."""
    if sys.platform.startswith("linux"):
        try:
            # PR_SET_PDEATHSIG: the kernel sends SIGKILL when the parent goes. It fires when the thread
            # that forked us ends; the pool forks its workers from the thread that entered
            # worker_pool, which waits for the pool to close.
            if ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent:  # it died before prctl took effect
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    # Portable fallback: an orphan is adopted by another process, so its parent id changes.
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)
