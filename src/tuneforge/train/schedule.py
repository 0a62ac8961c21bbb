"""Learning-rate schedules with linear warmup, as multipliers of the peak rate."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def lr_multiplier(step: int, total: int, warmup: int, kind: str) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if kind == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))  # cosine


def make_scheduler(optimizer: Optimizer, total_steps: int, warmup_ratio: float, kind: str) -> LambdaLR:
    warmup = int(round(total_steps * warmup_ratio))
    return LambdaLR(optimizer, lambda step: lr_multiplier(step, total_steps, warmup, kind))
