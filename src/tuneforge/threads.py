"""How many CPU threads torch's operations use: the cores this process may run on, less the ones other
processes are keeping busy right now.

Each multi-threaded torch operation waits for all of its threads. On a shared machine a thread whose
core another process holds arrives late at every operation, so torch's default (one thread per core)
can be several times slower than fewer threads: measurements in benchmarks/RESULTS.md. The count is
taken once, when a command starts; `--threads N` (or `TUNEFORGE_THREADS`) fixes it instead.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV = "TUNEFORGE_THREADS"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's cpuset), not all the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def busy_cores(samples: int = 5, interval_s: float = 0.02) -> float:
    """Cores that other processes keep busy now: tasks running, as the kernel counts them a few times over
    a tenth of a second, less this one. Where that count is not available, the 1-minute load average."""
    stat = Path("/proc/stat")
    counts = []
    for i in range(samples):
        try:
            line = next(ln for ln in stat.read_text().splitlines() if ln.startswith("procs_running"))
        except (OSError, StopIteration):
            break
        counts.append(int(line.split()[1]) - 1)  # without this process
        if i + 1 < samples:
            time.sleep(interval_s)
    if counts:
        return max(0.0, sum(counts) / len(counts))
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def default_threads() -> int:
    cores = available_cores()
    return max(1, min(cores, cores - round(busy_cores())))


def use_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads: `threads`, else `$TUNEFORGE_THREADS`, else `default_threads()`.
    Returns the number set."""
    import torch

    from tuneforge.errors import ConfigError

    if threads is None and os.environ.get(ENV):
        try:
            threads = int(os.environ[ENV])
        except ValueError:
            raise ConfigError(f"{ENV}={os.environ[ENV]!r}: expected a whole number of threads") from None
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be at least 1, got {threads}")
    n = threads or default_threads()
    torch.set_num_threads(n)
    return n
