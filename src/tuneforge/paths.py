"""Where tuneforge keeps what it derives once and reuses: converted models, tokenised datasets, built
native kernels."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """`$TUNEFORGE_CACHE`, else `$XDG_CACHE_HOME/tuneforge`, else `~/.cache/tuneforge`."""
    if env := os.environ.get("TUNEFORGE_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tuneforge"
