"""Where tuneforge keeps what it derives once and reuses: converted models, tokenised datasets, built
native kernels."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_root() -> Path:
    """`$TUNEFORGE_CACHE`, else `$XDG_CACHE_HOME/tuneforge`, else `~/.cache/tuneforge`."""
    if env := os.environ.get("TUNEFORGE_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tuneforge"


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks (checkpoints and data files may be large)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
