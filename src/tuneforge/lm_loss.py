"""The causal-LM loss as training computes it, for training and for evaluation's reference-answer
perplexity alike: only where labels are set, in chunks, with the gradient taken in the forward pass
(with a 49k vocabulary the (tokens × vocab) logits dominate time and memory, and most positions of an
SFT batch carry no label at all), and packed rows attended one sample at a time.

Per-token weights (a turn's `loss_weight`) scale each labelled position's cross-entropy: the sum becomes
sum_i w_i * CE_i while the caller's normaliser stays the count of labelled positions (not sum_i w_i), as
LLaMA-Factory normalises; so a 0.5-weighted reply counts half as much as a full one in the same step.
Without weights the code runs exactly as before (no extra tensors, no extra products)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tuneforge.constants import IGNORE
from tuneforge.methods._peft import peft_quiet
from tuneforge.native.fused_attention import packed_causal_attention
from tuneforge.native.onednn_mm import linear, mm


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
            logits = linear(h, weight).float()  # (C, V); no copy in fp32
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
            grad_hidden[start:start + chunk_size] = mm(grad_logits, weight)  # (C, H)
            if grad_weight is not None:
                grad_weight.add_(mm(grad_logits.T, h))  # (V, H)
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


SEGMENT_ATTENTION = "tuneforge_segments"


def _base(model: Any) -> Any:
    """The transformers model under a PEFT wrapper (its decoder, head and config), or the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def segment_lengths(position_ids: torch.Tensor) -> list[list[int]]:
    """Lengths of the packed samples of each row: a sample starts wherever the position does not
    follow on from the previous one (transformers' own rule for packed rows). (B, T) -> B lists."""
    starts = torch.ones_like(position_ids, dtype=torch.bool)  # (B, T)
    starts[:, 1:] = position_ids[:, 1:] != position_ids[:, :-1] + 1
    out = []
    for row in starts:
        at = row.nonzero().flatten().tolist() + [row.shape[0]]
        out.append([b - a for a, b in zip(at, at[1:])])
    return out


def _segment_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
                       segment_lengths: list[list[int]] | None = None, **kwargs):
    """Causal SDPA on each packed sample separately: the block-diagonal mask's result without computing
    the masked-out blocks. query (B, H, T, D), key/value (B, H_kv, T, D) -> (B, T, H, D), as
    transformers' attention functions return it. Without `segment_lengths` (padded batches,
    generation) it is transformers' own SDPA attention, with the mask transformers built."""
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    if segment_lengths is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    fused = packed_causal_attention(query, key, value, segment_lengths,
                                    query.shape[-1] ** -0.5 if scaling is None else scaling, dropout)
    if fused is not None:  # float32 on CPU: tuneforge's kernels, all samples at once
        return fused, None
    groups = query.shape[1] // key.shape[1]
    # Repeated kv heads and contiguous slices: SDPA's GQA mode on strided slices is ~3x slower on CPU.
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    rows = []
    for b, lengths in enumerate(segment_lengths):
        pieces = zip(*(t[b:b + 1].split(lengths, dim=2) for t in (query, key, value)))
        rows.append(torch.cat([nn.functional.scaled_dot_product_attention(
            q.contiguous(), k.contiguous(), v.contiguous(), dropout_p=dropout, scale=scaling,
            is_causal=q.shape[2] > 1) for q, k, v in pieces], dim=2))
    return torch.cat(rows).transpose(1, 2).contiguous(), None  # (B, H, T, D) -> (B, T, H, D)


def _route_attention_through_segments(config) -> None:
    """Point an SDPA model's attention at `_segment_attention` for good, not only around the forward
    pass: activation checkpointing recomputes each layer during backward, and the recomputation must
    attend per sample too. Masks are built as for SDPA, so every other caller sees SDPA unchanged."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if SEGMENT_ATTENTION not in AttentionInterface._global_mapping:
        AttentionInterface.register(SEGMENT_ATTENTION, _segment_attention)
        AttentionMaskInterface.register(SEGMENT_ATTENTION, sdpa_mask)
    config._attn_implementation = SEGMENT_ATTENTION


class CausalLMLoss(nn.Module):
    """forward(**inputs, labels, weights=None) -> (summed loss over labelled positions, their count);
    `weights` (B, T), where the batch has them, scale each position's loss (see `losses.lm_loss_sum`).

    Methods that modify modules in place (full, freeze, LoRA, DoRA, IA3, adapters) take the fast path:
    the decoder's hidden states go straight into the chunked LM-head cross-entropy. Methods that add
    virtual tokens (prefix, prompt, p-tuning) must run the wrapped model's own forward.
    """

    def __init__(self, model: nn.Module, *, whole_forward: bool, chunk_size: int = 2048):
        super().__init__()
        self.model = model
        head = _base(model).get_output_embeddings()
        # A LoRA-wrapped head is not a plain Linear: its delta would be skipped by the fused loss.
        self.whole_forward = whole_forward or type(head) is not nn.Linear or head.bias is not None
        self.chunk_size = chunk_size
        config = _base(model).config
        self.per_sample_attention = (not self.whole_forward
                                     and config._attn_implementation in ("sdpa", SEGMENT_ATTENTION))
        if self.per_sample_attention:
            _route_attention_through_segments(config)

    def forward(self, labels: torch.Tensor, weights: torch.Tensor | None = None,
                **inputs: Any) -> tuple[torch.Tensor, int]:  # labels, weights (B, T)
        if self.whole_forward:
            with peft_quiet():
                logits = self.model(**inputs, use_cache=False).logits  # (B, V_tokens + T, V)
            return logits_loss_sum(logits[:, -labels.shape[1]:], labels, weights)
        base = _base(self.model)
        if self.per_sample_attention and set(inputs) == {"input_ids", "position_ids"}:
            # Packed rows: attention per sample instead of a block-diagonal mask over the whole row
            # (a row of ~5 samples does ~1/5 of the attention work).
            inputs["segment_lengths"] = segment_lengths(inputs["position_ids"])
        hidden = base.get_decoder()(**inputs, use_cache=False).last_hidden_state  # (B, T, H)
        return lm_loss_sum(hidden, labels, base.get_output_embeddings(), self.chunk_size, weights)
