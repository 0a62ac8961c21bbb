"""The quickstart: teach the default model a fixed JSON output shape with LoRA, on this CPU, in
minutes, and show the change on held-out notes (cities and phrasings never seen in training)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tuneforge.config import Config, build_config
from tuneforge.types import Message, Sample

DATA = Path(__file__).parent / "data"
KEYS = {"city", "temp_c", "condition"}


def quickstart_config(output_dir: str, epochs: float = 1.0) -> Config:
    return build_config({
        "data": str(DATA / "train.jsonl"),
        "template": {"cutoff_len": 256},
        "method": {"name": "lora", "r": 16, "alpha": 32, "target_modules": "all-linear"},
        "train": {"output_dir": output_dir, "epochs": epochs, "batch_size": 4, "learning_rate": 1e-3,
                  "warmup_ratio": 0.05, "packing": True, "seed": 0},
    })


@dataclass
class Score:
    compliant: float
    """Replies that are a JSON object with exactly the keys city, temp_c, condition."""
    correct: float
    """Replies whose three values are all right."""


def score(replies: list[str], references: list[str]) -> Score:
    compliant = correct = 0
    for reply, ref in zip(replies, references):
        try:
            got = json.loads(reply)
        except json.JSONDecodeError:
            continue
        if isinstance(got, dict) and set(got) == KEYS:
            compliant += 1
            correct += got == json.loads(ref)
    n = max(len(replies), 1)
    return Score(compliant / n, correct / n)


def held_out() -> list[Sample]:
    from tuneforge.io import read_samples

    samples, _ = read_samples(str(DATA / "test.jsonl"))
    return samples


def answers(model, tokenizer, samples: list[Sample]) -> list[str]:
    from tuneforge.serve.generate import generate_batch

    prompts: list[list[Message]] = [s.messages[:-1] for s in samples]
    return generate_batch(model, tokenizer, prompts, max_new_tokens=40)
