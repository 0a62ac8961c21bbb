"""The loss of one micro-batch, as modules so that DDP / FSDP wrap (and synchronise) them."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from torch import nn

from tuneforge.constants import IGNORE
from tuneforge.methods._peft import peft_quiet
from tuneforge.train.losses import (
    dpo_loss,
    kto_loss,
    kto_reference_point,
    orpo_loss,
    sequence_logprobs,
    simpo_loss,
)


class StepStats:
    """Means over one optimizer step's micro-batches (training only) of what a preference loss logs:
    its implicit rewards, their margin and accuracy."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, **values: torch.Tensor) -> None:
        for key, v in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(v.detach().float().sum())
            self.counts[key] = self.counts.get(key, 0) + v.numel()

    def pop(self) -> dict[str, float]:
        out = {key: self.sums[key] / n for key, n in self.counts.items() if n}
        self.sums, self.counts = {}, {}
        return out


def sequence_logprobs_of(model: nn.Module, ids: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                         average: bool = False) -> torch.Tensor:
    """Sequence log-probs (B,) of the labelled tokens of (B, T) inputs under `model`."""
    with peft_quiet():
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits  # (B, V_tokens + T, V)
    # Prompt methods (prompt, p-tuning) put their virtual tokens in front: the last T positions are the inputs'.
    return sequence_logprobs(logits[:, -labels.shape[1]:], labels, average=average)


def stacked_logprobs(model: nn.Module, first: tuple[torch.Tensor, ...], second: tuple[torch.Tensor, ...],
                     average: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequence log-probs (B,) of two batches of (ids, labels, mask), each (B, T), from one forward pass
    over both stacked (2B, T); `average` divides each by its labelled tokens."""
    width = max(first[0].shape[1], second[0].shape[1])
    pad = lambda t, v: nn.functional.pad(t, (0, width - t.shape[1]), value=v)  # noqa: E731
    ids, labels, mask = (torch.cat([pad(a, v), pad(b, v)]) for a, b, v in zip(first, second, (0, IGNORE, 0)))
    logps = sequence_logprobs_of(model, ids, labels, mask, average=average)  # (2B,)
    return logps[:first[0].shape[0]], logps[first[0].shape[0]:]


class Reference:
    """The model a stage compares against: the same model with its adapters disabled for PEFT methods
    (no second copy in memory), or a frozen copy for full fine-tuning."""

    def __init__(self, model: nn.Module, ref_model: nn.Module | None,
                 reference_mode: Callable[[], AbstractContextManager] | None):
        """`reference_mode()` is a context in which `model` behaves as the base (adapters off)."""
        if ref_model is None and reference_mode is None:
            raise ValueError("a reference needs a frozen copy or a way to switch the adapters off")
        self.model, self.ref_model, self.reference_mode = model, ref_model, reference_mode

    @torch.no_grad()
    def logprobs(self, *batches: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.ref_model is not None:
            return stacked_logprobs(self.ref_model, *batches)
        assert self.reference_mode is not None
        with self.reference_mode():
            return stacked_logprobs(self.model, *batches)


def _sides(pair: dict[str, torch.Tensor]) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    return tuple(tuple(pair[f"{side}_{k}"] for k in ("ids", "labels", "mask")) for side in ("chosen", "rejected"))


class DPOLoss(nn.Module):
    """forward(chosen/rejected ids, labels, masks) -> (summed DPO loss over pairs, number of pairs).

    The reference (see `Reference`) runs on the fly, or its log-probs are precomputed once and
    carried in the batch (`ref_chosen`, `ref_rejected`)."""

    def __init__(self, model: nn.Module, *, beta: float, kind: str = "sigmoid", ref_model: nn.Module | None = None,
                 reference_mode: Callable[[], AbstractContextManager] | None = None):
        super().__init__()
        self.model = model
        self.reference = Reference(model, ref_model, reference_mode)
        self.beta, self.kind = beta, kind
        self.stats = StepStats()

    def reference_logprobs(self, **pair: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.reference.logprobs(*_sides(pair))

    def forward(self, ref_chosen: torch.Tensor | None = None, ref_rejected: torch.Tensor | None = None,
                **pair: torch.Tensor) -> tuple[torch.Tensor, int]:
        policy_chosen, policy_rejected = stacked_logprobs(self.model, *_sides(pair))
        if ref_chosen is None or ref_rejected is None:
            ref_chosen, ref_rejected = self.reference_logprobs(**pair)
        losses, margin, won = dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected,
                                       beta=self.beta, kind=self.kind)
        if self.training:
            self.stats.add(reward_chosen=self.beta * (policy_chosen - ref_chosen),
                           reward_rejected=self.beta * (policy_rejected - ref_rejected),
                           reward_margin=margin, reward_accuracy=won)
        return losses.sum(), int(losses.shape[0])

    def pop_stats(self) -> dict[str, float]:
        """Mean rewards, margin and accuracy since the last call (for logging once per step)."""
        return self.stats.pop()


class ReferenceFreeLoss(nn.Module):
    """`orpo` and `simpo` on chosen / rejected pairs: losses on the policy's length-normalised
    log-probs alone, so no reference model runs. forward -> (summed loss over pairs, number of pairs).
    The logged rewards are β times the mean token log-probs (SimPO's implicit reward; TRL logs ORPO's
    the same way)."""

    def __init__(self, model: nn.Module, *, kind: str, beta: float, gamma: float = 0.0):
        super().__init__()
        if kind not in ("orpo", "simpo"):
            raise ValueError(f"unknown reference-free loss '{kind}' (orpo, simpo)")
        self.model, self.kind, self.beta, self.gamma = model, kind, beta, gamma
        self.stats = StepStats()

    def forward(self, **pair: torch.Tensor) -> tuple[torch.Tensor, int]:
        chosen, rejected = stacked_logprobs(self.model, *_sides(pair), average=True)  # (B,) each
        if self.kind == "orpo":
            losses, log_odds = orpo_loss(chosen, rejected, beta=self.beta)
            extra = {"nll": -chosen, "log_odds_ratio": log_odds}
        else:
            losses, extra = simpo_loss(chosen, rejected, beta=self.beta, gamma=self.gamma), {}
        if self.training:
            margin = self.beta * (chosen - rejected)
            self.stats.add(reward_chosen=self.beta * chosen, reward_rejected=self.beta * rejected,
                           reward_margin=margin, reward_accuracy=(margin > 0).float(), **extra)
        return losses.sum(), int(losses.shape[0])

    def pop_stats(self) -> dict[str, float]:
        return self.stats.pop()


class KTOLoss(nn.Module):
    """`kto` on unpaired examples: forward(ids, labels, mask of each prompt + completion, the same for
    each prompt with another example's completion (`mismatched_*`), `desirable` (B,)) -> (summed loss
    over examples, number of examples). The mismatched pairs estimate the reference point z0."""

    def __init__(self, model: nn.Module, *, beta: float, desirable_weight: float = 1.0,
                 undesirable_weight: float = 1.0, ref_model: nn.Module | None = None,
                 reference_mode: Callable[[], AbstractContextManager] | None = None):
        super().__init__()
        self.model = model
        self.reference = Reference(model, ref_model, reference_mode)
        self.beta, self.weights = beta, (desirable_weight, undesirable_weight)
        self.stats = StepStats()

    def forward(self, desirable: torch.Tensor, **batch: torch.Tensor) -> tuple[torch.Tensor, int]:
        own, mismatched = (tuple(batch[f"{prefix}{k}"] for k in ("ids", "labels", "mask"))
                           for prefix in ("", "mismatched_"))
        policy = sequence_logprobs_of(self.model, *own)
        with torch.no_grad():
            policy_mismatched = sequence_logprobs_of(self.model, *mismatched)
        ref, ref_mismatched = self.reference.logprobs(own, mismatched)
        kl = kto_reference_point(policy_mismatched, ref_mismatched)
        losses, rewards = kto_loss(policy, ref, desirable, kl, beta=self.beta, desirable_weight=self.weights[0],
                                   undesirable_weight=self.weights[1])
        if self.training:
            self.stats.add(reward_desirable=rewards[desirable], reward_undesirable=rewards[~desirable],
                           reward_accuracy=((rewards > 0) == desirable).float(), kl=kl.reshape(1))
        return losses.sum(), int(losses.shape[0])

    def pop_stats(self) -> dict[str, float]:
        """Mean rewards of each class, their margin (as TRL logs it: the difference of the means), the
        share of examples whose reward has their label's sign, and the reference point z0."""
        out = self.stats.pop()
        if "reward_desirable" in out and "reward_undesirable" in out:
            out["reward_margin"] = out["reward_desirable"] - out["reward_undesirable"]
        return out
