"""Artefact directories are read as a whole (weights, configs, tokenizer files), so a symbolic link
inside one that leads out of it would have serving or export read, and perhaps copy into an export,
a file nobody meant to hand over (`adapter_model.safetensors -> /etc/passwd`). Links that stay inside
the directory are how some tools deduplicate files, and are fine."""

from __future__ import annotations

import os
from pathlib import Path

from tuneforge.errors import TuneforgeError


def check_links(directory: str | Path) -> None:
    """Raise naming the first link under `directory` whose target lies outside it (or that loops).
    The directory itself may be a link (`runs/x/final -> /data/...`): its contents are judged against
    where it really is."""
    root = Path(directory).resolve()
    for folder, dirs, files in os.walk(root):  # does not descend into linked folders: they are checked here
        for name in dirs + files:
            path = Path(folder) / name
            if not path.is_symlink():
                continue
            try:
                target = path.resolve()
            except (OSError, RuntimeError):  # a loop of links
                target = None
            if target is None or not target.is_relative_to(root):
                shown = os.readlink(path)
                where = f"{shown} (a loop)" if target is None else (
                    shown if str(target) == shown else f"{shown}, that is {target}")
                raise TuneforgeError(f"{path}: a symbolic link to {where}, outside the artefact directory "
                                     f"{root}; refusing to read it (copy the file in if it belongs there)")
