"""Helpers the data generation tests share."""

from __future__ import annotations

import json
from pathlib import Path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def teacher(url: str, **extra) -> dict:
    return {"url": url, "model": "teacher", "concurrency": 4, "retries": 1, "timeout": 10, **extra}
