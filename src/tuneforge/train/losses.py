"""The preference and alignment losses (DPO, KTO, ORPO, SimPO) and the sequence log-probs they compare.
The language-modelling loss itself is `tuneforge.lm_loss`, shared with evaluation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tuneforge.constants import IGNORE


def sequence_logprobs(logits: torch.Tensor, labels: torch.Tensor, average: bool = False) -> torch.Tensor:
    """Sum of log p(label) per sequence over labelled positions: (B, T, V), (B, T) -> (B,); with
    `average`, divided by each sequence's labelled positions (the length-normalised log-prob)."""
    targets = labels[:, 1:]
    keep = targets != IGNORE
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = logp.gather(2, targets.clamp(min=0)[..., None]).squeeze(-1)  # (B, T-1)
    total = (picked * keep).sum(-1)
    return total / keep.sum(-1).clamp(min=1) if average else total


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float = 0.1, kind: str = "sigmoid"):
    """DPO (Rafailov et al. 2023) on sequence log-probs (B,); IPO (Azar et al. 2023) as an option.

    Returns the per-pair losses (B,), reward margins (B,) and whether the chosen reply won (B,)."""
    logits = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)  # (B,)
    if kind == "sigmoid":
        losses = -F.logsigmoid(beta * logits)
    elif kind == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(f"unknown DPO loss '{kind}' (sigmoid, ipo)")
    margin = beta * logits.detach()
    return losses, margin, (margin > 0).float()


def kto_loss(policy: torch.Tensor, ref: torch.Tensor, desirable: torch.Tensor, kl: torch.Tensor, *,
             beta: float = 0.1, desirable_weight: float = 1.0, undesirable_weight: float = 1.0):
    """KTO (Ethayarajh et al. 2024, eq. 7) on completion log-probs (B,) of unpaired examples.

    `desirable` (B,) bool is each example's label; `kl` is the reference point z0, the policy's KL
    from the reference estimated on mismatched prompt / completion pairs (see `kto_reference_point`).
    A desirable example's loss is λ_D·(1 - σ(β(r - z0))), an undesirable one's λ_U·(1 - σ(β(z0 - r))),
    with r = log π(y|x) - log π_ref(y|x). Returns the per-example losses (B,) and rewards β·r (B,)."""
    logratio = policy - ref  # (B,)
    z = torch.where(desirable, logratio - kl, kl - logratio)
    weight = torch.where(desirable, desirable_weight, undesirable_weight).to(logratio.dtype)
    losses = weight * (1 - torch.sigmoid(beta * z))
    return losses, beta * logratio.detach()


def kto_reference_point(policy_mismatched: torch.Tensor, ref_mismatched: torch.Tensor) -> torch.Tensor:
    """z0: the mean log-ratio of completions under prompts they do not answer (B,) -> (), clamped at 0
    (a KL is never negative) and detached, as in the paper: the gradient does not flow through it."""
    return (policy_mismatched - ref_mismatched).mean().detach().clamp(min=0)


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, accurate on both sides of -ln 2 (Mächler 2012)."""
    return torch.where(x < -0.6931471805599453, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def orpo_loss(chosen_mean: torch.Tensor, rejected_mean: torch.Tensor, beta: float = 0.1):
    """ORPO (Hong et al. 2024) on length-normalised log-probs (B,) of the chosen and rejected replies.

    The loss is the SFT loss on the chosen reply (its mean token NLL) minus λ·log σ(log odds ratio),
    where odds(y) = P(y) / (1 - P(y)) with P the mean token probability. Returns the per-pair losses
    (B,) and the log odds ratios (B,)."""
    chosen_mean, rejected_mean = chosen_mean.float(), rejected_mean.float()
    log_odds = (chosen_mean - rejected_mean) - (_log1mexp(chosen_mean) - _log1mexp(rejected_mean))  # (B,)
    return -chosen_mean - beta * F.logsigmoid(log_odds), log_odds.detach()


def simpo_loss(chosen_mean: torch.Tensor, rejected_mean: torch.Tensor, beta: float = 2.0, gamma: float = 1.0):
    """SimPO (Meng et al. 2024) on length-normalised log-probs (B,): -log σ(β·mean log π(y_w) - β·mean
    log π(y_l) - γ), with no reference model. Returns the per-pair losses (B,)."""
    return -F.logsigmoid(beta * (chosen_mean - rejected_mean) - gamma)
