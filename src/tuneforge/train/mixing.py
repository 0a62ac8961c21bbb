"""Multi-task mixing and replay: how many samples each dataset contributes to training.

Mixing happens once, on samples, before tokenisation; it is a fixed function of the seed, so a
resumed run sees the same data."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

from tuneforge.config import DataConfig, DatasetConfig
from tuneforge.types import Sample


def with_prefix(sample: Sample, prefix: str) -> Sample:
    """The sample with `prefix` before its first user turn (a per-task instruction)."""
    messages = list(sample.messages)
    for i, m in enumerate(messages):
        if m.role == "user":
            messages[i] = replace(m, content=prefix + m.content)
            return replace(sample, messages=messages)
    return sample


def draw(samples: Sequence[Sample], count: int, rng: random.Random) -> list[Sample]:
    """`count` samples: whole shuffled copies while they fit, then a random remainder."""
    if not samples:
        return []
    out: list[Sample] = []
    while len(out) + len(samples) <= count:
        out += rng.sample(list(samples), len(samples))
    return out + rng.sample(list(samples), count - len(out))


def mixture_shares(sizes: Sequence[int], datasets: Sequence[DatasetConfig], data: DataConfig) -> list[float]:
    if data.mix == "weights":
        raw = [d.weight if d.weight is not None else 1.0 for d in datasets]
    else:  # temperature
        raw = [n ** (1.0 / data.temperature) for n in sizes]
    total = sum(raw)
    return [r / total for r in raw]


def mix(per_dataset: Sequence[list[Sample]], data: DataConfig, seed: int) -> list[Sample]:
    """Combine the datasets' samples as `data.mix` says; the epoch keeps the total sample count."""
    per_dataset = [[with_prefix(s, d.instruction_prefix) for s in samples] if d.instruction_prefix else samples
                   for samples, d in zip(per_dataset, data.datasets)]
    if data.mix == "concat" or len(per_dataset) < 2:
        return [s for samples in per_dataset for s in samples]
    rng = random.Random(seed)
    sizes = [len(s) for s in per_dataset]
    shares = mixture_shares(sizes, data.datasets, data)
    total = sum(sizes)
    return [s for samples, share in zip(per_dataset, shares) for s in draw(samples, round(share * total), rng)]


def add_replay(samples: list[Sample], replay: list[Sample], share: float, seed: int) -> list[Sample]:
    """Mix general-domain samples in so that they make up `share` of the result."""
    if not share or not replay:
        return samples
    count = round(share / (1 - share) * len(samples))
    return samples + draw(replay, count, random.Random(seed + 1))
