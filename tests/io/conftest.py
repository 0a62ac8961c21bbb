from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture
def write(tmp_path: Path):
    """write(name, records_or_text) -> path: records as a JSON array (.json) or lines (.jsonl)."""

    def _write(name: str, content) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, (bytes, str)):
            path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        elif name.endswith(".jsonl"):
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in content), encoding="utf-8")
        else:
            path.write_text(json.dumps(content, ensure_ascii=False, indent=2), encoding="utf-8")
        return path

    return _write
