"""Sample builders shared by the curation tests (a module of its own: `from conftest import` would
resolve to whichever folder's conftest was imported first)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.types import Message, Sample

DATASETS = Path(__file__).parents[2] / ".." / "shared" / "datasets"


def chat(user: str, answer: str, **meta) -> Sample:
    return Sample(messages=[Message("user", user), Message("assistant", answer)], meta=meta)


def load_alpaca(name: str) -> list[Sample]:
    """The alpaca demo sets as chat samples, with source/line provenance (record index + 1)."""
    path = DATASETS / name
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared reference datasets live beside the repository)")
    out = []
    for i, r in enumerate(json.loads(path.read_text(encoding="utf-8"))):
        user = r["instruction"] + (f"\n\n{r['input']}" if r.get("input") else "")
        out.append(chat(user, r["output"], source=name, line=i + 1))
    return out
