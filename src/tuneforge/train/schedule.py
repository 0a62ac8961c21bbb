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


def set_peak(scheduler: LambdaLR, peak: float) -> bool:
    """Rescale a (resumed) schedule to the peak rate `peak` from its current step on: the rest keeps its
    shape (warmup, decay) and the optimizer's groups take the new rate at once. A restored scheduler
    otherwise keeps the peak it was saved with, and a lambda recomputed for a new length would only
    reach the groups one step late. Returns whether anything changed."""
    rates = [peak * f(scheduler.last_epoch) for f in scheduler.lr_lambdas]
    groups = scheduler.optimizer.param_groups
    if scheduler.base_lrs == [peak] * len(groups) and [g["lr"] for g in groups] == rates:
        return False
    scheduler.base_lrs = [peak] * len(groups)
    for group, rate in zip(groups, rates):
        group["initial_lr"], group["lr"] = peak, rate
    scheduler._last_lr = rates
    return True
