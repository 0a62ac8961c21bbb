from __future__ import annotations

import json
from pathlib import Path

import pytest
from stub_llm import StubLLM

SEEDS = ["Write a haiku about the autumn rain falling.", "Suggest a healthy breakfast without any eggs.",
         "Explain why the sky looks blue to a child.", "Translate a friendly greeting into French.",
         "Give three tips for a job interview."]


@pytest.fixture
def stub():
    server = StubLLM()
    yield server
    server.close()


@pytest.fixture
def seeds(tmp_path) -> Path:
    """Seed tasks in Self-Instruct's seed_tasks.jsonl format."""
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps({"id": f"seed_task_{i}", "name": f"t{i}", "instruction": text,
                                        "instances": [{"input": "", "output": "An answer."}],
                                        "is_classification": False}) + "\n" for i, text in enumerate(SEEDS)))
    return path
