"""Losses. The LM loss is computed only where labels are set, in chunks, with the gradient taken in
the forward pass: with a 49k vocabulary the (tokens × vocab) logits dominate time and memory, and most
positions of an SFT batch (prompts, padding) carry no label at all.

Per-token weights (a turn's `loss_weight`) scale each labelled position's cross-entropy: the sum becomes
sum_i w_i * CE_i while the caller's normaliser stays the count of labelled positions (not sum_i w_i), as
LLaMA-Factory normalises; so a 0.5-weighted reply counts half as much as a full one in the same step.
Without weights the code runs exactly as before (no extra tensors, no extra products)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tuneforge.constants import IGNORE


class _LinearCrossEntropy(torch.autograd.Function):
    """sum_i CE(h_i @ W.T, y_i) (times w_i with `token_weights`) without keeping logits: each chunk's
    softmax gradient is folded into dL/dh (and dL/dW when W trains) immediately, so peak memory is one
    chunk of logits."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk_size: int, with_grad: bool, token_weights=None):
        # hidden (N, H), weight (V, H), targets (N,), token_weights (N,) float32 or None. Without
        # `with_grad` (evaluation, no_grad) only the loss is computed: no gradient buffers, no products.
        grad_hidden = torch.empty_like(hidden) if with_grad else None
        grad_weight = torch.zeros_like(weight) if with_grad and weight.requires_grad else None
        total = hidden.new_zeros((), dtype=torch.float32)
        for start in range(0, hidden.shape[0], chunk_size):
            h = hidden[start:start + chunk_size]  # (C, H)
            y = targets[start:start + chunk_size]  # (C,)
            logits = (h @ weight.T).float()  # (C, V); no copy in fp32
            picked = logits.gather(1, y[:, None]).squeeze(1)  # (C,)
            top = logits.amax(dim=-1, keepdim=True)  # (C, 1)
            # The softmax in place, in one buffer (no logsumexp temporaries): exp(logits - max) / sum.
            probs = logits.sub_(top).exp_()  # (C, V)
            norm = probs.sum(dim=-1, keepdim=True)  # (C, 1)
            ce = top.squeeze(1) + norm.log().squeeze(1) - picked  # (C,) lse - logit_y
            w = None if token_weights is None else token_weights[start:start + chunk_size]  # (C,)
            total += ce.sum() if w is None else (ce * w).sum()
            if grad_hidden is None:
                continue
            # d(lse - logit_y)/d logits = softmax - onehot (times w_i)
            grad_logits = probs.div_(norm)
            grad_logits[torch.arange(y.shape[0], device=y.device), y] -= 1
            if w is not None:
                grad_logits.mul_(w[:, None])
            grad_logits = grad_logits.to(h.dtype)
            grad_hidden[start:start + chunk_size] = grad_logits @ weight  # (C, H)
            if grad_weight is not None:
                grad_weight.addmm_(grad_logits.T, h)  # (V, H)
        ctx.save_for_backward(grad_hidden, grad_weight)
        return total

    @staticmethod
    def backward(ctx, grad_out):
        grad_hidden, grad_weight = ctx.saved_tensors
        grad_weight = None if grad_weight is None else grad_weight * grad_out.to(grad_weight.dtype)
        return grad_hidden * grad_out.to(grad_hidden.dtype), grad_weight, None, None, None, None


def lm_loss_sum(hidden: torch.Tensor, labels: torch.Tensor, lm_head: torch.nn.Linear,
                chunk_size: int = 2048, weights: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over labelled positions, and how many there were.

    hidden (B, T, H) are the final hidden states; labels (B, T) are aligned with the inputs (the
    shift happens here), and so are the optional per-token `weights` (B, T): the sum is then
    sum_i w_i * CE_i, while the count stays the number of labelled positions (the normaliser does
    not become sum_i w_i). Summing, not averaging, lets the caller normalise by the token count of
    the whole optimizer step, across micro-batches and processes.
    """
    targets = labels[:, 1:]  # (B, T-1)
    keep = targets != IGNORE
    h = hidden[:, :-1][keep]  # (N, H)
    y = targets[keep]  # (N,)
    if lm_head.bias is not None:
        raise ValueError("lm_loss_sum expects an LM head without bias")
    if h.shape[0] == 0:
        return hidden.sum() * 0.0, 0
    with_grad = torch.is_grad_enabled() and (h.requires_grad or lm_head.weight.requires_grad)
    w = None if weights is None else weights[:, 1:][keep].float()  # (N,)
    return _LinearCrossEntropy.apply(h, lm_head.weight, y, chunk_size, with_grad, w), int(y.shape[0])


def logits_loss_sum(logits: torch.Tensor, labels: torch.Tensor,
                    weights: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """The same sum from full logits (B, T, V), for models whose forward must run whole (prompt methods);
    `weights` (B, T) as for `lm_loss_sum`."""
    targets = labels[:, 1:]
    keep = targets != IGNORE
    n = int(keep.sum())
    if weights is None:
        loss = F.cross_entropy(logits[:, :-1][keep].float(), targets[keep], reduction="sum")
        return loss, n
    per_token = F.cross_entropy(logits[:, :-1][keep].float(), targets[keep], reduction="none")  # (N,)
    return (per_token * weights[:, 1:][keep].float()).sum(), n


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
