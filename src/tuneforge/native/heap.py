"""Large CPU tensors from malloc's heap rather than fresh mappings, for training on CPU.

glibc's malloc gives each allocation above its mmap threshold (128 KB to start with) pages of its own
with mmap, and returns them with munmap when it is freed. A training step on CPU allocates thousands
of activation tensors of megabytes each (a 2048-token step maps ~5 GB this way), so every step
starts on fresh pages that the kernel must fault in and zero, in a virtual machine at a high cost per
page: ~1/5 of a long-sequence step on the 2-core EPYC measured. `keep_allocations_on_heap()` asks glibc
never to map an allocation on its own (`mallopt(M_MMAP_MAX, 0)`): blocks come from the heap, and
freed ones serve the next step. The price is peak memory: freed blocks are kept, and fragments of
the heap are not returned, ~1/4 more at 2048 tokens a row. Linux with glibc only; it does nothing
elsewhere, and with `TUNEFORGE_NATIVE=0`.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from functools import cache

from tuneforge.native.build import switched_off

log = logging.getLogger(__name__)

_M_MMAP_MAX = -4  # glibc's mallopt parameter: the most allocations mmap serves (0: none)


@cache
def keep_allocations_on_heap() -> bool:
    """Serve every allocation from glibc's heap from now on (see the module's doc); whether it could."""
    if switched_off() or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        if not hasattr(libc, "gnu_get_libc_version"):  # not glibc (musl, ...): other parameters
            return False
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        done = bool(libc.mallopt(_M_MMAP_MAX, 0))
    except (OSError, AttributeError) as err:
        log.info("allocations stay on glibc's defaults (%s)", err)
        return False
    return done
